"""Per-request results in preallocated, chunk-grown column arrays, optionally streamed.

Requests are numbered 0, 1, 2, ... by the driver; their results live in fixed-size numpy
chunks (2^20 rows each) indexed by id, so that 10,000,000 requests cost about 50 bytes
each and nothing is ever copied to grow. ``to_frame`` builds one DataFrame at the end.

Streaming (issue 15): with :meth:`RequestRecords.stream` the records write themselves to a
sink (a Parquet file) in row groups while the run goes on, so that memory holds only the
requests still in flight, not the whole run. The rule is a *watermark*: a request has ended
when its status is no longer PENDING, and a row below the lowest id still pending can never
change again (the driver writes only to requests in flight), so every row below the
watermark is final. The watermark is advanced whenever the driver makes room for new
arrivals (:meth:`ensure`), which the driver does anyway, so streaming needs no call from
the driver. Row groups are cut at the same row counts as pandas/pyarrow cut an in-memory
table (2^20 rows), so the streamed file has the same bytes as ``to_frame().to_parquet()``.
Chunks wholly written are replaced by zero-stride read-only views: a late write to an
ended request then fails loudly instead of being lost, and the status check of
``record_dispatch``/``record_unserved`` still sees "ended".
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from strait_sim.requests import ON_TIME, PENDING, PRIORITY_NAMES, STATUS_NAMES

CHUNK_BITS = 20
CHUNK = 1 << CHUNK_BITS
MASK = CHUNK - 1

COLUMNS: dict[str, tuple[type, object]] = {
    "arrival_s": (np.float64, np.nan),
    "deadline_s": (np.float64, np.nan),
    "start_s": (np.float64, np.nan),
    "finish_s": (np.float64, np.nan),
    "predicted_ms": (np.float64, np.nan),
    "compute_ms": (np.float32, np.nan),
    "model": (np.int16, -1),
    "priority": (np.int8, -1),
    "gpu": (np.int16, -1),
    "slot": (np.int16, -1),
    "status": (np.int8, 0),
    "batch_size": (np.int16, 0),
    "items": (np.int16, 0),
    "preemptions": (np.int16, 0),
}


class FrameSink(Protocol):
    """Where streamed rows go: consecutive row groups of the results table, in id order."""

    def write(self, frame: pd.DataFrame) -> None: ...


def _released(name: str) -> np.ndarray:
    """A zero-stride, read-only stand-in for a chunk already written to the sink."""
    dtype, fill = COLUMNS[name]
    value = ON_TIME if name == "status" else fill
    return np.broadcast_to(np.array(value, dtype=dtype), (CHUNK,))


def frame_from_columns(columns: dict[str, np.ndarray], first_id: int,
                       models: tuple[str, ...]) -> pd.DataFrame:
    """The results table (schema in docs/architecture.md) from one array per column, the
    first row being request ``first_id``. Column order is the file's column order."""
    n = len(columns["status"])
    out = {
        "id": np.arange(first_id, first_id + n, dtype=np.int64),
        "model": pd.Categorical.from_codes(columns.pop("model"), categories=list(models)),
        "priority": pd.Categorical.from_codes(columns.pop("priority"),
                                              categories=list(PRIORITY_NAMES)),
    }
    for name in ("arrival_s", "deadline_s", "start_s", "finish_s", "gpu", "slot"):
        out[name] = columns.pop(name)
    out["status"] = pd.Categorical.from_codes(columns.pop("status"),
                                              categories=list(STATUS_NAMES))
    for name in ("predicted_ms", "batch_size", "items", "compute_ms", "preemptions"):
        out[name] = columns.pop(name)
    return pd.DataFrame(out, copy=False)


class RequestRecords:
    """Column store of per-request results, indexed by request id."""

    def __init__(self) -> None:
        self.count = 0
        self.cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
        self._sink: FrameSink | None = None
        self._models: tuple[str, ...] = ()
        self._row_group = CHUNK
        self.written = 0  # rows [0, written) are in the sink (streaming only)

    def _grow(self) -> None:
        # Uninitialised: rows get their defaults as ids are registered (_fill). Filling
        # 14 columns of 2^20 rows up front cost 13-15 ms of CPU per run (measured in a
        # fresh process), whatever the run's size: 0.3 us per request of 50,000.
        for name, (dtype, _) in COLUMNS.items():
            self.cols[name].append(np.empty(CHUNK, dtype=dtype))

    def _fill(self, start: int, stop: int) -> None:
        """Write every column's default into rows [start, stop)."""
        pos = start
        while pos < stop:
            c, off = pos >> CHUNK_BITS, pos & MASK
            end = off + min(stop - pos, CHUNK - off)
            for name, (_, fill) in COLUMNS.items():
                self.cols[name][c][off:end] = fill
            pos += end - off

    def ensure(self, n: int) -> None:
        """Make room for ids < n (and, when streaming, write out the rows that are final)."""
        if self._sink is not None:
            self.flush_final()
        while len(self.cols["status"]) * CHUNK < n:
            self._grow()
        if n > self.count:
            self._fill(self.count, n)
            self.count = n

    def column(self, name: str, rid: int) -> tuple[np.ndarray, int]:
        """The chunk array holding ``rid`` in column ``name``, and the offset in it."""
        return self.cols[name][rid >> CHUNK_BITS], rid & MASK

    def get(self, name: str, rid: int):
        arr, i = self.column(name, rid)
        return arr[i]

    def set(self, name: str, rid: int, value) -> None:
        arr, i = self.column(name, rid)
        arr[i] = value

    def _rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of one column as one array (a copy across chunks)."""
        parts = []
        pos = start
        while pos < stop:
            c, off = pos >> CHUNK_BITS, pos & MASK
            take = min(stop - pos, CHUNK - off)
            parts.append(self.cols[name][c][off:off + take])
            pos += take
        if not parts:
            return np.empty(0, dtype=COLUMNS[name][0])
        return parts[0].copy() if len(parts) == 1 else np.concatenate(parts)

    def full(self, name: str) -> np.ndarray:
        if self.written:
            raise RuntimeError("the records were streamed: read the results file instead")
        parts = self.cols[name]
        if not parts:
            return np.empty(0, dtype=COLUMNS[name][0])
        return np.concatenate(parts)[: self.count]

    def to_frame(self, models: tuple[str, ...], *, release: bool = False) -> pd.DataFrame:
        """The results table (schema in docs/architecture.md).

        With ``release=True`` each column's chunks are dropped as soon as the column is
        built, so peak memory is one copy of the results rather than two (the records are
        unusable afterwards: the engine does this once, at the very end of a run).
        """
        columns = {}
        for name in COLUMNS:
            columns[name] = self.full(name)
            if release:
                self.cols[name].clear()  # in place: holders of the list (the driver) too
        return frame_from_columns(columns, 0, models)

    # -- streaming -----------------------------------------------------------------------------
    def stream(self, sink: FrameSink, models: tuple[str, ...], *,
               row_group: int = CHUNK) -> None:
        """Write rows to ``sink`` in row groups of ``row_group`` rows as they become final
        (call before the first request; then :meth:`finish_stream` at the end)."""
        if self.count:
            raise RuntimeError("stream() must be called before the first request")
        if row_group < 1 or (row_group < CHUNK and CHUNK % row_group) or \
                (row_group > CHUNK and row_group % CHUNK):
            raise ValueError(f"row_group must divide or be a multiple of {CHUNK}")
        self._sink, self._models, self._row_group = sink, tuple(models), row_group

    def watermark(self) -> int:
        """The lowest id still pending (``count`` when none is): rows below it are final."""
        pos = self.written
        status = self.cols["status"]
        while pos < self.count:
            c, off = pos >> CHUNK_BITS, pos & MASK
            stop = min(CHUNK, self.count - (c << CHUNK_BITS))
            pending = np.flatnonzero(status[c][off:stop] == PENDING)
            if len(pending):
                return pos + int(pending[0])
            pos = (c << CHUNK_BITS) + stop
        return self.count

    def flush_final(self, *, last: bool = False) -> None:
        """Write every whole row group below the watermark (with ``last``: every row,
        the final group possibly short) and release the chunks fully written."""
        mark = self.watermark()
        size = self._row_group
        while mark - self.written >= size or (last and mark > self.written):
            self._write_group(self.written, min(self.written + size, mark))
        for c in range(self.written >> CHUNK_BITS):
            if self.cols["status"][c].base is None:  # still an owned array
                for name in COLUMNS:
                    self.cols[name][c] = _released(name)

    def _write_group(self, start: int, stop: int) -> None:
        columns = {name: self._rows(name, start, stop) for name in COLUMNS}
        self._sink.write(frame_from_columns(columns, start, self._models))
        self.written = stop

    def finish_stream(self) -> None:
        """Write the remaining rows; every request must have ended."""
        pending = self.count - self.watermark()
        if pending:
            raise RuntimeError(f"{pending} request(s) or more never ended")
        self.flush_final(last=True)
        if self.count == 0:  # an empty run still writes the table's schema
            self._sink.write(frame_from_columns(
                {name: np.empty(0, dtype=dtype) for name, (dtype, _) in COLUMNS.items()},
                0, self._models))
