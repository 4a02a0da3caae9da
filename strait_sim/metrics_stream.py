"""summary.json's request metrics from a results file, row group by row group.

A run of 100,000,000 requests cannot load its own results table to summarise it, so the
summary is computed from requests.parquet in passes over its row groups, in bounded memory,
giving the *same numbers, bit for bit*, as :func:`strait_sim.metrics.summarize` on the
whole table (a test holds the two equal):

- counts are counts;
- means are numpy's pairwise sums: numpy sums a float64 array by a recursion that depends
  only on its length, so with the length known (first pass) the same tree is rebuilt over
  the stream, each small subtree summed by numpy itself (:class:`PairwiseSum`);
- percentiles are numpy's "linear" percentiles of exact order statistics, found by radix
  selection on the floats' order-preserving 64-bit keys, 16 bits per pass, until a bucket
  is small enough to collect and sort (:class:`OrderStatistics`).

Files of up to ``IN_MEMORY_ROWS`` rows are simply read and passed to ``summarize`` (so a
metric added there reaches ordinary runs at once); only larger ones take the streamed path,
which covers the metrics ``summarize`` had when it was written (see ``STREAMED_KEYS``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from strait_sim.metrics import STATUSES, jain_index, label_mask, summarize
from strait_sim.requests import PRIORITY_NAMES

IN_MEMORY_ROWS = 1 << 20
COLUMNS = ["priority", "status", "arrival_s", "start_s", "finish_s", "predicted_ms"]
PERCENTILES = (50, 90, 95, 99)
COLLECT_LIMIT = 1 << 20  # a bucket this small is collected and sorted
_SIGN = np.uint64(1 << 63)


class PairwiseSum:
    """``np.sum`` of a float64 array of known length ``n`` fed in consecutive pieces,
    with the same bits: numpy's pairwise recursion (halve, rounded down to a multiple of 8)
    is replayed above ``block`` elements and numpy sums each piece of at most ``block``.
    numpy sums up to 128 elements without splitting, so ``block`` must be at least 128."""

    def __init__(self, n: int, block: int = 1 << 16) -> None:
        if block < 128:
            raise ValueError("block must be at least 128 (numpy's unsplit leaf)")
        self._leaves: list[int] = []
        self._tree = self._plan(n, block) if n else None
        self._sums: list[float] = []
        self._buf: list[np.ndarray] = []
        self._buffered = 0

    def _plan(self, m: int, block: int) -> int | tuple:
        if m <= block:
            self._leaves.append(m)
            return len(self._leaves) - 1
        half = m // 2
        half -= half % 8
        return (self._plan(half, block), self._plan(m - half, block))

    def add(self, values: np.ndarray) -> None:
        if len(values):
            self._buf.append(values)
            self._buffered += len(values)
        leaves, sums = self._leaves, self._sums
        while len(sums) < len(leaves) and self._buffered >= leaves[len(sums)]:
            need = leaves[len(sums)]
            data = self._buf[0] if len(self._buf) == 1 else np.concatenate(self._buf)
            sums.append(float(np.sum(data[:need])))
            rest = data[need:]
            self._buf = [rest] if len(rest) else []
            self._buffered = len(rest)

    def total(self) -> float:
        if self._tree is None:
            return 0.0
        if len(self._sums) != len(self._leaves):
            raise ValueError("PairwiseSum: fewer values than announced")

        def combine(node: int | tuple) -> float:
            if isinstance(node, int):
                return self._sums[node]
            return combine(node[0]) + combine(node[1])

        return combine(self._tree)


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving map of float64 to uint64 (negative floats flipped whole)."""
    u = np.ascontiguousarray(values, dtype=np.float64).view(np.uint64)
    return np.where(u >= _SIGN, ~u, u | _SIGN)


def _unkey(key: int) -> float:
    u = key ^ (1 << 63) if key >> 63 else ~key & ((1 << 64) - 1)
    return float(np.array(u, dtype=np.uint64).view(np.float64))


class OrderStatistics:
    """Exact k-th smallest values (several k at once) of a stream read in passes."""

    def __init__(self, n: int, ranks: set[int]) -> None:
        # per rank: bits of the key known, their value, rank inside that bucket, bucket size
        self._state = {k: (0, 0, k, n) for k in ranks}
        self.values: dict[int, float] = {}
        self._buckets: dict[tuple[int, int], dict] = {}

    def done(self) -> bool:
        return len(self.values) == len(self._state)

    def begin_pass(self) -> None:
        self._buckets = {}
        for k, (bits, prefix, _, size) in self._state.items():
            if k not in self.values:
                collect = size <= COLLECT_LIMIT
                self._buckets.setdefault((bits, prefix), {
                    "collect": collect, "parts": [],
                    "hist": None if collect else np.zeros(1 << 16, dtype=np.int64)})

    def feed(self, values: np.ndarray) -> None:
        if not self._buckets or not len(values):
            return
        keys = _keys(values)
        for (bits, prefix), b in self._buckets.items():
            sel = keys if bits == 0 else keys[(keys >> np.uint64(64 - bits)) ==
                                              np.uint64(prefix)]
            if b["collect"]:
                b["parts"].append(sel)
            else:
                digit = (sel >> np.uint64(48 - bits)) & np.uint64(0xFFFF)
                b["hist"] += np.bincount(digit.astype(np.intp), minlength=1 << 16)

    def end_pass(self) -> None:
        for k, (bits, prefix, rank, _) in list(self._state.items()):
            if k in self.values:
                continue
            b = self._buckets[(bits, prefix)]
            if b["collect"]:
                if "sorted" not in b:
                    b["sorted"] = np.sort(np.concatenate(b["parts"]))
                self.values[k] = _unkey(int(b["sorted"][rank]))
                continue
            cum = np.cumsum(b["hist"])
            digit = int(np.searchsorted(cum, rank, side="right"))
            before = int(cum[digit - 1]) if digit else 0
            bits, prefix = bits + 16, (prefix << 16) | digit
            self._state[k] = (bits, prefix, rank - before, int(b["hist"][digit]))
            if bits == 64:
                self.values[k] = _unkey(prefix)
        self._buckets = {}


def percentile_ranks(n: int, q: float) -> tuple[int, ...]:
    """The order statistics ``np.percentile(values, q)`` reads (n values)."""
    v = (n - 1) * (q / 100)
    if v >= n - 1:
        return (n - 1,)
    lo = math.floor(v)
    return (lo, lo + 1)


def percentile_from(n: int, q: float, value_at: dict[int, float]) -> float:
    """``np.percentile(values, q)`` (method "linear") from its order statistics."""
    v = (n - 1) * (q / 100)
    if v >= n - 1:
        return value_at[n - 1]
    lo = math.floor(v)
    t = v - lo
    a, b = value_at[lo], value_at[lo + 1]
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


class _FileStreams:
    """The value streams the summary needs, per row group of a results file."""

    def __init__(self, path: Path) -> None:
        self.file = pq.ParquetFile(path)

    def frames(self) -> Iterator[pd.DataFrame]:
        for i in range(self.file.num_row_groups):
            yield self.file.read_row_group(i, columns=COLUMNS).to_pandas()

    @staticmethod
    def streams(df: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict]:
        """Value streams (latencies per group, prediction errors) and counts of one
        frame, computed exactly as metrics.class_metrics/prediction_error do."""
        status, prio = df["status"], df["priority"]
        fin, arr = df["finish_s"].to_numpy(), df["arrival_s"].to_numpy()
        done = label_mask(status, "on_time", "late")
        status_masks = {s: label_mask(status, s) for s in STATUSES}
        out = {"lat": (fin[done] - arr[done]) * 1e3}
        counts: dict = {"": {"count": len(df)}}
        counts[""].update({s: int(np.count_nonzero(m)) for s, m in status_masks.items()})
        for name in PRIORITY_NAMES:
            rows = label_mask(prio, name)
            sel = done & rows
            out[f"lat:{name}"] = (fin[sel] - arr[sel]) * 1e3
            counts[name] = {"count": int(np.count_nonzero(rows))}
            counts[name].update({s: int(np.count_nonzero(m & rows))
                                 for s, m in status_masks.items()})
        pred = df["predicted_ms"].to_numpy()[done]
        obs = (fin[done] - df["start_s"].to_numpy()[done]) * 1e3
        ok = ~np.isnan(pred) & (obs > 0)
        out["rel"] = np.abs(pred[ok] - obs[ok]) / obs[ok]
        out["bias"] = pred[ok] - obs[ok]
        return out, counts


def summarize_file(path: Path | str, *, duration_s: float,
                   busy_fraction: float | None = None,
                   in_memory_rows: int = IN_MEMORY_ROWS) -> dict:
    """``summarize`` of the table in ``path`` (a requests.parquet), in bounded memory."""
    path = Path(path)
    if pq.ParquetFile(path).metadata.num_rows <= in_memory_rows:
        return summarize(pd.read_parquet(path), duration_s=duration_s,
                         busy_fraction=busy_fraction)
    src = _FileStreams(path)
    # pass 1: counts and the length of every stream
    lengths: dict[str, int] = {}
    counts: dict[str, dict[str, int]] = {}
    rel_max = -math.inf
    for df in src.frames():
        streams, c = src.streams(df)
        for name, values in streams.items():
            lengths[name] = lengths.get(name, 0) + len(values)
        for group, cs in c.items():
            acc = counts.setdefault(group, {})
            for k, v in cs.items():
                acc[k] = acc.get(k, 0) + v
        if len(streams["rel"]):
            rel_max = max(rel_max, float(streams["rel"].max()))
    sums = {name: PairwiseSum(n) for name, n in lengths.items()}
    quantiles = {name: (90,) if name == "rel" else PERCENTILES
                 for name in lengths if name != "bias"}
    select = {name: OrderStatistics(lengths[name], {r for q in qs
                                                    for r in percentile_ranks(lengths[name], q)})
              for name, qs in quantiles.items() if lengths[name]}
    # pass 2 (sums and the first digit), then more digits until every rank is known
    first = True
    while first or not all(s.done() for s in select.values()):
        for s in select.values():
            s.begin_pass()
        for df in src.frames():
            streams, _ = src.streams(df)
            for name, values in streams.items():
                if first:
                    sums[name].add(values)
                if name in select:
                    select[name].feed(values)
        for s in select.values():
            s.end_pass()
        first = False

    def pct(name: str, q: float) -> float | None:
        n = lengths[name]
        return percentile_from(n, q, select[name].values) if n else None

    def group_metrics(group: str, stream: str) -> dict:
        c, n_lat = counts[group], lengths[stream]
        n = c["count"]
        mean = sums[stream].total() / n_lat if n_lat else None
        return {"count": n, "completed": c["on_time"] + c["late"],
                **{s: c[s] for s in STATUSES},
                "violation_rate": (n - c["on_time"]) / n if n else None,
                "mean_ms": mean, "p50_ms": pct(stream, 50), "p90_ms": pct(stream, 90),
                "p95_ms": pct(stream, 95), "p99_ms": pct(stream, 99)}

    by_class = {name: group_metrics(name, f"lat:{name}") for name in PRIORITY_NAMES}
    overall = group_metrics("", "lat")
    for block in (overall, *by_class.values()):
        block["goodput_rps"] = block["on_time"] / duration_s if duration_s > 0 else None
    satisfaction = [1 - by_class[n]["violation_rate"] for n in PRIORITY_NAMES
                    if by_class[n]["count"]]
    n_pred = lengths["rel"]
    prediction = {"predictions": 0} if not n_pred else {
        "predictions": n_pred, "mape": sums["rel"].total() / n_pred,
        "p90_rel_error": pct("rel", 90), "max_rel_error": rel_max,
        "mean_bias_ms": sums["bias"].total() / n_pred}
    return {"requests": counts[""]["count"], "by_class": by_class, "overall": overall,
            "jain_fairness": jain_index(satisfaction), "gpu_busy_fraction": busy_fraction,
            "prediction": prediction, "duration_s": duration_s}
