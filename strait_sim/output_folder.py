"""Where a command may write: the one output-folder rule, shared by every command.

A command writes only into

* a folder that does not exist yet (it is created),
* an empty folder, or
* a folder holding an earlier result **of the same kind**, recognised by the marker file
  :data:`MARKER` the tool leaves in every result folder (or, for folders written before the
  marker existed, by the files that kind always has).

An earlier one-shot result (``run``, ``validate``, ``predict evaluate``) is replaced only
with ``--overwrite``, atomically, and only when the folder holds nothing but what the tool
wrote there: a file the tool did not write is never deleted, the command refuses instead.
Resumable results (``compare``, ``sweep``, ``profile``, a ``validate`` study) continue an
earlier result of their kind: finished points are reused. Anything else (a non-empty
folder of the user's, a git checkout, a result of another kind, a file) is refused before
any work, in one line that names the folder.

Why a marker file and not "the folder looks like a result": a folder that happens to hold a
``summary.json`` may be the user's own; the marker says the tool wrote it, and lists what
it wrote, so that ``--overwrite`` can tell the tool's files from the user's.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from strait_sim.errors import UserError

MARKER = ".strait-sim.json"

#: Files that make a folder without a marker count as an earlier result of a kind (results
#: written before the marker existed). Every name listed must be present.
LEGACY_SIGNS: dict[str, tuple[tuple[str, ...], ...]] = {
    "run": (("requests.parquet", "summary.json"),),
    "validation": (("report.json", "report.md"),),
    "validation-study": (("study.json",),),
    "predict-evaluate": (("summary.json", "accuracy.csv"),),
    "compare": (("runs.csv", "comparison.csv"),),
    "sweep": (("sweep.json",), ("points",)),
    "profile": (("profile.json",),),
    "plan": (("plan.json",),),
}

#: What each kind is called in messages.
KIND_NAMES = {
    "run": "run result", "validation": "validation report",
    "validation-study": "validation study",
    "predict-evaluate": "'predict evaluate' output", "compare": "compare folder",
    "sweep": "sweep folder", "profile": "profile bundle", "sweep-report": "sweep report",
    "plan": "plan folder", "profile-plots": "profile plots folder",
}


#: Files the tool adds to a result folder after writing it (the producing command, the
#: HTML page of ``strait-sim report``), each recognised by its first bytes: the command
#: (``strait-sim ...``, or ``strait_sim.verb(...)`` from Python) and the page's generator
#: tag. A user's file of the same name is not the tool's: --overwrite keeps it.
TOOL_EXTRAS: dict[str, re.Pattern[bytes]] = {
    "command.txt": re.compile(rb"\Astrait(-sim |_sim\.)"),
    "report.html": re.compile(rb'<meta name="generator" content="strait-sim'),
}


def _name(kind: str) -> str:
    return KIND_NAMES.get(kind, f"{kind} result")


def read_marker(folder: Path) -> dict | None:
    """The marker's content, or None when there is none (or it is not the tool's)."""
    path = Path(folder) / MARKER
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
        return None
    return data


def marker_text(kind: str, files: list[str] | None) -> str:
    """The marker's bytes: no time stamp, so the same run writes the same bytes."""
    body = {"tool": "strait-sim", "kind": kind,
            "files": sorted(files) if files is not None else None}
    return json.dumps(body, indent=2) + "\n"


def write_marker(folder: Path, kind: str, files: list[str] | None) -> None:
    (Path(folder) / MARKER).write_text(marker_text(kind, files))


def note_written(folder: Path | str, names: list[str]) -> None:
    """Add ``names`` to the marker's list of the tool's files: for what a command writes
    into its result folder after the result itself (validate's drift.json and
    recalibrated-profile), which ``--overwrite`` would otherwise take for the user's. A
    folder managed as a whole, or without a marker, is left as it is."""
    marker = read_marker(Path(folder))
    files = marker.get("files") if marker is not None else None
    if marker is None or not isinstance(files, list):
        return
    write_marker(Path(folder), marker["kind"], sorted(set(files) | set(names)))


def result_kind(folder: Path) -> tuple[str | None, list[str] | None]:
    """(kind, files the tool wrote) of an earlier result in ``folder``; (None, None) when
    the folder holds no recognisable result. ``files`` None means "managed as a whole"."""
    folder = Path(folder)
    marker = read_marker(folder)
    if marker is not None:
        files = marker.get("files")
        if files is not None and not (isinstance(files, list)
                                      and all(isinstance(f, str) for f in files)):
            files = []
        return marker["kind"], files
    for kind, signs in LEGACY_SIGNS.items():
        for sign in signs:
            if all((folder / name).exists() for name in sign):
                return kind, (list(sign) if kind in ("run", "predict-evaluate") else None)
    return None, None


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def check_output_folder(folder: Path | str, kind: str, *, overwrite: bool = False,
                        resume: bool = False, flag: str = "--out",
                        option: str = "--overwrite") -> None:
    """Refuse, in one line naming the folder, any output folder the rule does not allow.

    Called by a command before it starts any work, so that nothing is computed (or left
    behind) for an output that would be refused. ``resume``: the command continues an
    earlier result of its kind (compare, sweep, profile) instead of replacing it.
    ``option``: how the caller asks to replace an earlier result, as the message names it
    (``overwrite=True`` from Python).
    """
    from strait_sim.atomic import check_writable_parent

    folder = Path(folder)
    where = f"{flag} {folder}" if flag else str(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{where}: a file of that name exists; an output needs a folder")
    if not folder.exists():
        check_writable_parent(folder)
        return
    try:
        entries = _entries(folder)
    except OSError as exc:
        raise UserError(f"{where}: cannot list the folder ({exc.strerror})") from None
    if not entries:
        check_writable_parent(folder)
        return
    found, files = result_kind(folder)
    if found is None:
        raise UserError(f"{where}: folder is not empty and holds no strait-sim result; "
                        "choose a new or empty folder")
    if found != kind:
        raise UserError(f"{where}: holds a {_name(found)}, not a {_name(kind)}; "
                        "choose another folder")
    if resume:
        return
    if not overwrite:
        raise UserError(f"{where}: holds an earlier {_name(kind)}; add {option} to "
                        "replace it, or choose another folder")
    foreign = foreign_entries(folder, files)
    if foreign:
        raise UserError(f"{where}: holds '{foreign[0]}', which strait-sim did not write; "
                        f"{option} never deletes such files: move it away or choose "
                        "another folder")


def foreign_entries(folder: Path, files: list[str] | None) -> list[str]:
    """Entries of ``folder`` that the tool did not write (per the marker's file list)."""
    if files is None:
        return []
    own = set(files) | {MARKER}
    return [name for name in _entries(folder)
            if name not in own and not (name in TOOL_EXTRAS
                                        and tool_extra_is_ours(Path(folder) / name))]


def tool_extra_is_ours(path: Path, name: str | None = None) -> bool | None:
    """Whether ``path`` holds what the tool writes as :data:`TOOL_EXTRAS` ``name``
    (default: the path's own name), judged by its first 512 bytes; None when there is no
    such file."""
    start = file_start(path)
    return None if start is None else TOOL_EXTRAS[name or path.name].search(start) is not None


def check_report_target(folder: Path, html: Path | None, *, overwrite: bool = False) -> None:
    """Where ``report`` writes its page: ``--html PATH`` follows the single-file rule; the
    folder's own ``report.html`` is replaced freely, unless it is a user's file of that
    name (kept: the page then needs ``--html``)."""
    if html is not None:
        check_output_file(html, overwrite=overwrite, flag="--html",
                          ours=tool_extra_is_ours(Path(html), "report.html"))
        return
    default = Path(folder) / "report.html"
    if tool_extra_is_ours(default) is False:
        raise UserError(f"{default} was not written by strait-sim and is kept; give --html "
                        "PATH to write the page elsewhere")


def file_start(path: Path | str, size: int = 512) -> bytes | None:
    """The first ``size`` bytes of an existing file: how the tool knows an output of its
    own (a page's generator tag, a timeline's first key). None when there is no such file;
    empty when it cannot be read, so an unreadable file is never taken for the tool's."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except FileNotFoundError:
        return None
    except OSError:
        return b""


def check_output_file(path: Path | str, *, overwrite: bool = False, flag: str = "--out",
                      ours: bool | None = None) -> None:
    """The rule for a single output file: a new file, or with ``--overwrite`` an existing
    one. ``ours`` (when known) says whether the existing file was written by the tool; a
    file known not to be is never replaced."""
    from strait_sim.atomic import check_writable_parent

    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise UserError(f"{where}: is a folder; name a file")
    check_writable_parent(path, folder=False)
    if not path.exists():
        return
    if ours is False:
        raise UserError(f"{where}: the file exists and was not written by strait-sim; "
                        "choose another name")
    if not overwrite:
        raise UserError(f"{where}: the file exists; add --overwrite to replace it, or "
                        "choose another name")


def open_resumable_folder(folder: Path | str, kind: str) -> Path:
    """Create (or keep) a resumable result folder and mark it as the tool's, so that a
    later run recognises it even before its first complete result is in."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if read_marker(folder) is None:
        from strait_sim.atomic import atomic_path

        with atomic_path(folder / MARKER) as tmp:
            tmp.write_text(marker_text(kind, None))
    return folder
