"""Atomic output: a result folder or file appears whole, or not at all.

Everything a command writes goes first into a temporary sibling and is renamed into place
at the end, so an interrupted or failed run never leaves a half-written output behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from strait_sim.errors import UserError


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _publish_mode(path: str | Path, *, folder: bool) -> None:
    """tempfile makes private (0600/0700) entries; give outputs the usual permissions."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_UMASK)


def check_writable_parent(target: Path, *, folder: bool = True) -> None:
    """Fail early, with one line, when ``target`` cannot be created.

    ``folder=False`` (atomic_file/atomic_path): ``target`` is a file that may be replaced.
    """
    parent = target.resolve().parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write output to {target}: {probe} is not a writable folder")
    try:  # access() says yes to root everywhere; only a real attempt is sure
        os.rmdir(tempfile.mkdtemp(prefix=".strait-probe-", dir=probe))
    except OSError as exc:
        raise UserError(f"cannot write output to {target}: {exc.strerror} in {probe}") from None
    if folder and target.exists() and not target.is_dir():
        raise UserError(f"cannot write output folder {target}: a file of that name exists")


@contextlib.contextmanager
def atomic_dir(target: Path | str, kind: str | None = None, *,
               mark: bool = True) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only if the block succeeds.

    An existing ``target`` is replaced whole (its old content is removed after the new one
    is in place). On any exception the temporary folder is removed and ``target`` is left
    as it was.

    ``kind`` (a result kind, see :mod:`strait_sim.output_folder`): an existing non-empty
    ``target`` is replaced only if it holds an earlier result of that kind and nothing the
    tool did not write; ``mark`` leaves the marker file that lists what was written.
    Without ``kind`` (a folder inside a result the tool manages) it is replaced as is.

    When ``target`` is the current folder (``--out .``) or one above it, it cannot be
    renamed away under the user's shell: its entries are swapped one by one instead.
    """
    from strait_sim.output_folder import check_output_folder, result_kind, write_marker

    target = Path(target)
    resolved = target.resolve()
    if target.is_symlink():  # --out LINK: the folder it names is the output; the user's
        target = resolved  # link stays (renaming the link itself replaced it by a folder)
    if kind is not None and target.exists():
        check_output_folder(target, kind, overwrite=True, flag="")
    in_place = target.is_dir() and (resolved.parent == resolved
                                    or Path.cwd().resolve().is_relative_to(resolved))
    if in_place:
        check_writable_parent(target / ".strait-probe")
        tmp = Path(tempfile.mkdtemp(prefix=".strait-sim.tmp-", dir=target))
    else:
        check_writable_parent(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{resolved.name}.tmp-", dir=resolved.parent))
    _publish_mode(tmp, folder=True)
    try:
        yield tmp
        if kind is not None and mark:
            write_marker(tmp, kind, sorted(p.name for p in tmp.iterdir()))
        if in_place:
            old = result_kind(target)[1] if kind is not None else None
            _swap_in_place(tmp, target, old or [])
            return
        old = None
        if target.exists():
            old = resolved.parent / f".{resolved.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _swap_in_place(tmp: Path, target: Path, old_files: list[str]) -> None:
    """Move ``tmp``'s entries into ``target`` (which stays the same folder), removing the
    earlier result's files first; the marker goes last, so a folder without one is a
    result still being written."""
    from strait_sim.output_folder import MARKER

    _remove(target / MARKER)
    new = sorted(p.name for p in tmp.iterdir())
    for name in old_files:
        if name not in new and name != tmp.name:
            _remove(target / name)
    for name in [n for n in new if n != MARKER] + ([MARKER] if MARKER in new else []):
        if (target / name).is_dir() and not (target / name).is_symlink():
            shutil.rmtree(target / name)
        os.replace(tmp / name, target / name)
    tmp.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(target: Path | str, mode: str = "w") -> Iterator:
    """Open a temporary file that replaces ``target`` only if the block succeeds."""
    target = Path(target)
    check_writable_parent(target, folder=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.close(fd)
    _publish_mode(name, folder=False)
    try:
        with open(name, mode) as handle:
            yield handle
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def atomic_path(target: Path | str) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary path (for libraries that write by path) renamed onto ``target``."""

    @contextlib.contextmanager
    def _cm() -> Iterator[Path]:
        dest = Path(target)
        check_writable_parent(dest, folder=False)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.tmp-", dir=dest.parent,
                                    suffix=dest.suffix)
        os.close(fd)
        _publish_mode(name, folder=False)
        try:
            yield Path(name)
            os.replace(name, dest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)
            raise

    return _cm()
