"""Per-request results in preallocated, chunk-grown column arrays.

Requests are numbered 0, 1, 2, ... by the driver; their results live in fixed-size numpy
chunks (2^20 rows each) indexed by id, so that 10,000,000 requests cost about 50 bytes
each and nothing is ever copied to grow. ``to_frame`` builds one DataFrame at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from strait_sim.requests import PRIORITY_NAMES, STATUS_NAMES

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


class RequestRecords:
    """Column store of per-request results, indexed by request id."""

    def __init__(self) -> None:
        self.count = 0
        self.cols: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}

    def _grow(self) -> None:
        for name, (dtype, fill) in COLUMNS.items():
            self.cols[name].append(np.full(CHUNK, fill, dtype=dtype))

    def ensure(self, n: int) -> None:
        """Make room for ids < n."""
        while len(self.cols["status"]) * CHUNK < n:
            self._grow()
        self.count = max(self.count, n)

    def column(self, name: str, rid: int) -> tuple[np.ndarray, int]:
        """The chunk array holding ``rid`` in column ``name``, and the offset in it."""
        return self.cols[name][rid >> CHUNK_BITS], rid & MASK

    def get(self, name: str, rid: int):
        arr, i = self.column(name, rid)
        return arr[i]

    def set(self, name: str, rid: int, value) -> None:
        arr, i = self.column(name, rid)
        arr[i] = value

    def full(self, name: str) -> np.ndarray:
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
        n = self.count

        def take(name: str) -> np.ndarray:
            col = self.full(name)
            if release:
                self.cols[name] = []
            return col

        columns = {
            "id": np.arange(n, dtype=np.int64),
            "model": pd.Categorical.from_codes(take("model"), categories=list(models)),
            "priority": pd.Categorical.from_codes(take("priority"),
                                                  categories=list(PRIORITY_NAMES)),
        }
        for name in ("arrival_s", "deadline_s", "start_s", "finish_s", "gpu", "slot"):
            columns[name] = take(name)
        columns["status"] = pd.Categorical.from_codes(take("status"),
                                                      categories=list(STATUS_NAMES))
        for name in ("predicted_ms", "batch_size", "items", "compute_ms", "preemptions"):
            columns[name] = take(name)
        return pd.DataFrame(columns, copy=False)
