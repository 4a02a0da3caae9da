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
def atomic_dir(target: Path | str) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``target`` only if the block succeeds.

    An existing ``target`` is replaced whole (its old content is removed after the new one
    is in place). On any exception the temporary folder is removed and ``target`` is left
    as it was.
    """
    target = Path(target)
    check_writable_parent(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    _publish_mode(tmp, folder=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
