"""Run results on disk: ``requests.parquet`` + ``summary.json``, written atomically.

The same writer and reader serve simulated and live runs, so that a live run "loads with
the same code as a simulated one". Schema (docs/architecture.md): one row per request with
id, model, priority (high|low), arrival_s, deadline_s, start_s, finish_s, gpu, slot,
status (on_time|late|dropped|rejected|failed), predicted_ms, batch_size, items,
compute_ms, preemptions. ``start_s`` is the dispatch of the batch that served it (NaN if
never served); ``predicted_ms`` the policy's predicted service time of that batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from strait_sim.atomic import atomic_dir
from strait_sim.errors import UserError

REQUIRED_COLUMNS = ("id", "model", "priority", "arrival_s", "deadline_s", "start_s",
                    "finish_s", "gpu", "status", "predicted_ms")

# What a summary.json must hold for the readers (the HTML report, ``load_run``, the
# validation report) to use it: each class block's counts as numbers; the rest as they
# index it. A JSON file of the wrong shape is then one line naming what is missing rather
# than a KeyError deep in a page.
_COUNTS = ("count", "on_time", "late", "dropped", "rejected")
_LATENCIES = ("violation_rate", "p50_ms", "p95_ms", "p99_ms")
RUN_SUMMARY_SHAPE: dict[str, str] = {
    **{f"{block}.{key}": "number" for block in ("by_class.high", "by_class.low", "overall")
       for key in _COUNTS},
    **{f"{block}.{key}": "optional number"
       for block in ("by_class.high", "by_class.low", "overall") for key in _LATENCIES},
    "profile": "optional object", "workload": "optional object",
    "system": "optional object", "device": "optional object",
    "gpu_busy_fraction": "optional number", "jain_fairness": "optional number",
}


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# A kind's test; "optional X": absent, null or X; "X or null": present, null or X.
_KINDS = {
    "object": lambda v: isinstance(v, dict),
    "number": _is_number,
    "number or null": lambda v: v is None or _is_number(v),
    "boolean or null": lambda v: v is None or isinstance(v, bool),
    "optional object": lambda v: v is None or isinstance(v, dict),
    "optional number": lambda v: v is None or _is_number(v),
    "optional list": lambda v: v is None or isinstance(v, list),
}
_JSON_NAMES = {list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


def shape_problem(value: object, shape: dict[str, str], *, prefix: str = "") -> str | None:
    """Why ``value`` (parsed JSON) lacks ``shape`` ({dotted key: kind}, kinds as in
    ``_KINDS``), in a few words, or None when it has it. Objects along each dotted path
    are required, except that an optional key is met when its path stops early (a block
    absent or null); ``prefix`` is put before the keys named (a nested block's path)."""
    if not isinstance(value, dict):
        what = _JSON_NAMES.get(type(value), type(value).__name__)
        return f"{prefix.rstrip('.') + ' is ' if prefix else ''}{what}, not a JSON object"
    for key, kind in shape.items():
        optional = kind.startswith("optional ")
        node: object = value
        parts = key.split(".")
        for i, part in enumerate(parts):
            if node is None and optional and i:
                break
            if not isinstance(node, dict):
                return f"'{prefix}{'.'.join(parts[:i])}' is not an object"
            if part not in node:
                if optional:
                    break
                return f"no '{prefix}{'.'.join(parts[:i + 1])}'"
            node = node[part]
            if i == len(parts) - 1 and not _KINDS[kind](node):
                return f"'{prefix}{key}' is not {_article(kind)}"
    return None


def _article(kind: str) -> str:
    kind = kind.removeprefix("optional ")
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def read_json(path: Path) -> object:
    """A JSON file's content; a file that is not JSON is one UserError line."""
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}, line {exc.lineno}: not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not valid JSON (not UTF-8 text)") from None


def check_shape(value: object, shape: dict[str, str], source: Path | str, what: str, *,
                prefix: str = "") -> dict:
    """``value``, known to be an object of ``shape``; otherwise one UserError line naming
    ``source``, ``what`` it should be and what it lacks."""
    problem = shape_problem(value, shape, prefix=prefix)
    if problem:
        raise UserError(f"{source}: not {what} written by strait-sim ({problem})")
    return cast(dict, value)  # shape_problem found it an object


@dataclass
class RunResult:
    """A run's results. ``requests`` is None when the run was streamed to ``folder`` and
    was too large to hold in memory (read ``folder``/requests.parquet instead)."""

    requests: pd.DataFrame | None
    summary: dict
    timeline: object | None = None  # strait_sim.engine.timeline.Timeline when recorded
    folder: Path | None = None  # where the results were streamed, if they were

    def write(self, out: Path | str, *, overwrite: bool = False,
              extra_files: dict[str, bytes] | None = None) -> Path:
        """requests.parquet and summary.json into ``out``, by ``run --out``'s rule: a new
        or empty folder, or one holding an earlier run result only with ``overwrite=True``
        (the CLI's --overwrite; it replaced one silently before); a folder holding files
        the tool did not write is refused either way, before anything is written."""
        from strait_sim.output_folder import check_output_folder

        if self.requests is None:
            raise ValueError("a streamed run's results are already on disk in "
                             f"{self.folder}")
        check_output_folder(out, "run", overwrite=overwrite, flag="", option="overwrite=True")
        return write_results(out, self.requests, self.summary, extra_files=extra_files)

    def write_trace(self, path: Path | str) -> Path:
        """The Perfetto/Chrome trace of a run simulated with a timeline (``--trace-out``;
        ``simulate(..., timeline=True)``): batches per slot, requests, flows. It replaces
        an earlier timeline at ``path``, never another file."""
        from strait_sim.engine.timeline import is_timeline_file
        from strait_sim.errors import UserError
        from strait_sim.output_folder import check_output_file

        if self.timeline is None:
            raise UserError("this run recorded no timeline: simulate with timeline=True "
                            "(CLI: --trace-out)")
        check_output_file(path, overwrite=True, flag="", ours=is_timeline_file(path))
        requests = self.requests
        if requests is None and self.folder is not None:  # streamed: read it back
            requests = pd.read_parquet(Path(self.folder) / "requests.parquet")
        self.timeline.write(path, requests, self.summary)  # type: ignore[attr-defined]
        return Path(path)


class RequestsParquetStream:
    """requests.parquet written one row group at a time, with the bytes that
    ``DataFrame.to_parquet(index=False)`` gives for the whole table when each group holds
    the rows pyarrow would put in it (2^20; the engine's records cut groups there)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._writer: pq.ParquetWriter | None = None

    def write(self, frame: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="snappy")
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(summary: dict) -> str:
    return json.dumps(summary, indent=2, default=_json_default, allow_nan=False) + "\n"


def summary_text(summary: dict) -> str:
    """summary.json's text (NaN and infinities written as null)."""
    return dumps(nan_to_none(summary))


def write_results(out: Path | str, requests: pd.DataFrame, summary: dict, *,
                  extra_files: dict[str, bytes] | None = None) -> Path:
    """Write DIR/requests.parquet and DIR/summary.json; DIR appears whole or not at all."""
    out = Path(out)
    text = summary_text(summary)
    with atomic_dir(out, "run") as tmp:
        requests.to_parquet(tmp / "requests.parquet", index=False)
        (tmp / "summary.json").write_text(text)
        for name, data in (extra_files or {}).items():
            (tmp / name).write_bytes(data)
    return out


def nan_to_none(obj: object) -> object:
    """NaN and infinities (nested in dicts and lists) to None, so that JSON is strict."""
    if isinstance(obj, dict):
        return {k: nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [nan_to_none(v) for v in obj]
    if isinstance(obj, (float, np.floating)) and not np.isfinite(obj):
        return None
    return obj


def load_results(folder: Path | str) -> RunResult:
    """Read a run folder written by :func:`write_results` (simulated or live)."""
    folder = Path(folder)
    req_path, sum_path = folder / "requests.parquet", folder / "summary.json"
    for p in (req_path, sum_path):
        if not p.is_file():
            raise UserError(f"{p}: not found (is {folder} a strait-sim run folder?)")
    summary = check_shape(read_json(sum_path), RUN_SUMMARY_SHAPE, sum_path, "a run summary")
    try:
        df = pd.read_parquet(req_path)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"{req_path}: not a readable Parquet file ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{req_path}: missing column(s) {', '.join(missing)}")
    return RunResult(df, summary)
