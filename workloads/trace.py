"""Trace replay: a strait-sim trace or an Azure production trace as a workload.

Replay is a pipeline over the streamed blocks of :class:`~strait_sim.workloads.tracefile.
TraceReader`, in this order:

1. **window**: keep rows with ``start <= t < end`` (trace seconds);
2. **rate scale** R: keep the time structure, change the count. R < 1 keeps each request
   with probability R; R > 1 replays each request floor(R) or ceil(R) times (R on
   average), the extra copies placed uniformly between it and the next request, so the
   rate curve keeps its shape at the trace's own time resolution;
3. **time scale** S: ``arrival = (t - start) x S``; S < 1 compresses time (rate x 1/S,
   bursts shorter), S > 1 stretches it. ``--rate``/``--load`` choose S for you, over the
   span from the replay's origin (:meth:`TraceWorkload.trace_origin_s`: the window's
   start, or the trace's first request without a window) to the window's end or the
   last request;
4. **duration**: stop ``duration`` seconds (after scaling) after the origin;
5. **model mapping**: ``column`` (the trace's model column), ``weighted`` (drawn by the
   mix), ``round-robin`` (models in turn) or ``tokens`` (token count bucket: the i-th
   model takes tokens in the i-th bucket; boundaries given, or equal-count quantiles of
   the trace window);
6. columns the trace leaves out (priority, deadline, items) are drawn by the rules.

Deadlines given in the trace are kept relative to arrival through any scaling; with no
window shift, no scaling and no copies, an absolute ``deadline_s`` is kept bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.errors import UserError
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import RequestChunk
from strait_sim.workloads.arrivals import BLOCK
from strait_sim.workloads.attributes import RequestAttributes, SoloTable
from strait_sim.workloads.base import Workload
from strait_sim.workloads.generated import check_duration, check_max_requests, check_seed
from strait_sim.workloads.load import work_s
from strait_sim.workloads.tracefile import TraceBlock, TraceError, TraceReader

MAPPINGS = ("column", "weighted", "round-robin", "tokens")
# Rate scaling expands a block's copies about this many rows at a time (see _rate_scaled).
EXPAND_ROWS = 4 * BLOCK
PACKAGED_TRACES = {
    "azure-conv": "azure-llm-2023-conv.csv.gz",
    "azure-code": "azure-llm-2023-code.csv.gz",
}


def packaged_trace_path(kind: str) -> Path:
    """Where the Azure trace shipped as package data lies (see workloads/data/README.md)."""
    return Path(str(resources.files("strait_sim.workloads") / "data" / PACKAGED_TRACES[kind]))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for part in iter(lambda: fh.read(1 << 20), b""):
            digest.update(part)
    return digest.hexdigest()


def _concat(a: TraceBlock, b: TraceBlock) -> TraceBlock:
    def cat(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
        return None if x is None or y is None else np.concatenate((x, y))

    return TraceBlock(np.concatenate((a.line, b.line)), np.concatenate((a.time_s, b.time_s)),
                      cat(a.model, b.model), cat(a.priority, b.priority),
                      cat(a.deadline_ms, b.deadline_ms), cat(a.deadline_s, b.deadline_s),
                      cat(a.items, b.items), cat(a.tokens, b.tokens))


class TraceWorkload(Workload):
    """Replay of a trace file (``kind`` "trace") or of a shipped Azure trace
    ("azure-conv", "azure-code"). Build it with :func:`scan_trace` +
    :meth:`from_scan` (validates the file) or from a description."""

    closed_loop = False

    def __init__(self, kind: str, path: str, attrs: RequestAttributes, *,
                 mapping: str = "weighted", token_buckets: tuple[float, ...] | None = None,
                 window: tuple[float, float | None] | None = None, time_scale: float = 1.0,
                 rate_scale: float = 1.0, duration_s: float | None = None,
                 max_requests: int | None = None, sha256: str | None = None,
                 rows: int | None = None, span_s: float | None = None,
                 load: dict | None = None, first_row_s: float | None = None) -> None:
        if kind not in ("trace", *PACKAGED_TRACES):
            raise ValueError(f"unknown trace workload kind {kind!r}")
        if mapping not in MAPPINGS:
            raise ValueError(f"model mapping must be one of {', '.join(MAPPINGS)}, "
                             f"got {mapping!r}")
        for name, v in (("time scale", time_scale), ("rate scale", rate_scale)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {v}")
        if duration_s is not None:
            check_duration(duration_s)
        check_max_requests(max_requests)
        if window is not None:
            start, end = window
            if not (math.isfinite(start) and start >= 0):
                raise ValueError(f"window start must be >= 0 seconds, got {start}")
            if end is not None and not end > start:
                raise ValueError(f"window end must be after its start, got {start}:{end}")
        if mapping == "tokens":
            if token_buckets is None or len(token_buckets) != len(attrs.models) - 1:
                raise ValueError(f"token mapping needs {len(attrs.models) - 1} bucket "
                                 f"boundaries for {len(attrs.models)} models")
            if any(b >= c for b, c in zip(token_buckets, token_buckets[1:], strict=False)):
                raise ValueError(f"token bucket boundaries must increase, got "
                                 f"{list(token_buckets)}")
        self.kind = kind  # type: ignore[misc]
        self.path = str(path)
        self.attrs = attrs
        self.models = attrs.models
        self.mapping = mapping
        self.token_buckets = None if token_buckets is None else tuple(map(float, token_buckets))
        self.window = None if window is None else (float(window[0]),
                                                   None if window[1] is None
                                                   else float(window[1]))
        self.time_scale = float(time_scale)
        self.rate_scale = float(rate_scale)
        self.duration_s = None if duration_s is None else float(duration_s)
        self.max_requests = None if max_requests is None else int(max_requests)
        self.sha256 = sha256
        self.rows = rows
        # The window's span in trace seconds, from trace_origin_s() (for expected_count).
        self.span_s = span_s
        self.load = load
        # The time of the file's first row: given by a caller that has read it (the
        # scan that built this workload), else read from the file once, when first
        # needed. Not described: the file's sha256 pins it.
        self._first_row_s = None if first_row_s is None else float(first_row_s)

    # -- where the file is ---------------------------------------------------------------
    @property
    def file(self) -> Path:
        return packaged_trace_path(self.kind) if self.kind in PACKAGED_TRACES \
            else Path(self.path)

    def reader(self) -> TraceReader:
        label = f"{PACKAGED_TRACES[self.kind]} (shipped)" if self.kind in PACKAGED_TRACES \
            else self.path
        return TraceReader(self.file, label=label)

    def verify_file(self) -> None:
        """Refuse to replay a file that changed since this workload was described."""
        if self.sha256 is not None and file_sha256(self.file) != self.sha256:
            raise UserError(f"{self.path}: the trace file changed since the workload was "
                            f"described (sha256 differs); the run cannot be repeated exactly")

    # -- the pipeline --------------------------------------------------------------------
    def _windowed(self, reader: TraceReader) -> Iterator[TraceBlock]:
        start, end = self.window if self.window is not None else (0.0, None)
        for block in reader.blocks():
            t = block.time_s
            keep = t >= start
            if end is not None:
                keep &= t < end
            if not keep.all():
                block = block.take(keep)
            if len(block):
                yield block
            if end is not None and t[-1] >= end:
                return

    def _rate_scaled(self, blocks: Iterator[TraceBlock], rng: np.random.Generator
                     ) -> Iterator[tuple[TraceBlock, np.ndarray, bool]]:
        """Pieces of the rate-scaled blocks: rows, each row's copy number (0 = the
        original row), and whether the piece ends the block it came from.

        A block's copies are made a group of source rows at a time (at most about
        :data:`EXPAND_ROWS` copies per piece), not all at once: at x1,000 one 65,536-row
        block is 65 million rows, and the Azure conversation trace's whole hour (one
        block) took 1.9 GiB. The pieces are the whole block's expansion cut between source
        rows, bit for bit: the copy counts are drawn for the whole block first, then each
        piece draws its copies' offsets in the order the whole block drew them (uniform
        doubles are drawn one 64-bit word each, so consecutive draws are the same numbers
        as one large draw), and a row's copies never straddle two pieces (they are sorted
        by (row, time), so sorting each piece sorts the whole)."""
        if self.rate_scale == 1.0:
            for b in blocks:
                yield b, np.zeros(len(b), dtype=np.int64), True
            return
        whole = math.floor(self.rate_scale)
        frac = self.rate_scale - whole
        carry: TraceBlock | None = None
        last_gap = 0.0
        rows_per_piece = max(1, EXPAND_ROWS // (whole + 1))

        def expand(b: TraceBlock, nxt: np.ndarray
                   ) -> Iterator[tuple[TraceBlock, np.ndarray, bool]]:
            counts = whole + (rng.random(len(b)) < frac)
            n = len(b)
            for r0 in range(0, n, rows_per_piece):
                r1 = min(n, r0 + rows_per_piece)
                c = counts[r0:r1]
                idx = np.repeat(np.arange(r0, r1), c)
                copy_no = np.arange(len(idx)) - np.repeat(np.cumsum(c) - c, c)
                out = b.take(idx)
                extra = copy_no > 0
                if extra.any():
                    t = out.time_s.copy()
                    lo, hi = t[extra], nxt[idx][extra]
                    t[extra] = np.minimum(lo + rng.random(len(lo)) * (hi - lo), hi)
                    if out.deadline_s is not None:  # a copy keeps its relative deadline
                        out.deadline_s = out.deadline_s + (t - out.time_s)
                    order = np.lexsort((t, idx))
                    out = out.take(order)
                    out.time_s = t[order]
                    copy_no = copy_no[order]
                yield out, copy_no, r1 == n

        for b in blocks:
            b = b if carry is None else _concat(carry, b)
            if len(b) < 2:
                carry = b
                continue
            last_gap = float(b.time_s[-1] - b.time_s[-2])
            yield from expand(b.take(slice(0, len(b) - 1)), b.time_s[1:])
            carry = b.take(slice(len(b) - 1, len(b)))
        if carry is not None and len(carry):
            yield from expand(carry, carry.time_s + last_gap)

    def chunks(self, profile: ProfileBundle, seed: int) -> Iterator[RequestChunk]:
        check_seed(seed)
        for m in self.models:
            profile.require_model(m)
        reader = self.reader()
        self._check_reader(reader)
        scale_seq, attr_seq = np.random.SeedSequence(int(seed)).spawn(2)
        scale_rng = np.random.default_rng(scale_seq)
        attr_rng = np.random.default_rng(attr_seq)
        solo = SoloTable(profile, self.models)
        start = self.window[0] if self.window is not None else 0.0
        identity = start == 0.0 and self.time_scale == 1.0
        # --duration counts from the origin: 0 with a window, the first request's arrival
        # on the run's clock without one (so a trace shifted in time keeps its requests).
        origin = self.time_origin_s() if self.duration_s is not None else 0.0
        left = self.max_requests
        served = 0
        # Rows of the current block not yet made into chunks: chunks are cut every BLOCK
        # rows from each block's start, whatever the pieces the block arrives in.
        held: tuple[TraceBlock, np.ndarray, np.ndarray] | None = None
        for block, copy_no, ends in self._rate_scaled(self._windowed(reader), scale_rng):
            arrival = (block.time_s - start) * self.time_scale if not identity \
                else block.time_s
            stop = False
            if self.duration_s is not None and len(block) and \
                    arrival[-1] - origin >= self.duration_s:
                n = int(np.searchsorted(arrival - origin, self.duration_s, side="left"))
                block, copy_no, arrival, stop = block.take(slice(0, n)), copy_no[:n], \
                    arrival[:n], True
            if left is not None and len(block) >= left:
                block, copy_no, arrival, stop = block.take(slice(0, left)), copy_no[:left], \
                    arrival[:left], True
            if left is not None:
                left -= len(block)
            if held is not None:
                block = _concat(held[0], block)
                copy_no = np.concatenate((held[1], copy_no))
                arrival = np.concatenate((held[2], arrival))
                held = None
            last = ends or stop
            full = len(block) if last else len(block) - len(block) % BLOCK
            for lo in range(0, full, BLOCK):
                sl = slice(lo, min(lo + BLOCK, full))
                chunk = self._chunk(block.take(sl), copy_no[sl], arrival[sl], identity,
                                    served, attr_rng, solo, profile)
                served += len(chunk)
                yield chunk
            if full < len(block):
                sl = slice(full, len(block))
                held = (block.take(sl), copy_no[sl], arrival[sl])
            if stop:
                return

    def _check_reader(self, reader: TraceReader) -> None:
        if self.mapping == "column" and not reader.has_model:
            raise TraceError(reader.label, "has no 'model' column; choose a model mapping "
                             "(weighted, round-robin or tokens)", line=1)
        if self.mapping == "tokens" and not reader.has_tokens:
            raise TraceError(reader.label, "has no token counts (a 'tokens' column, or "
                             "ContextTokens in an Azure trace) for the tokens mapping", line=1)

    def _chunk(self, b: TraceBlock, copy_no: np.ndarray, arrival: np.ndarray, identity: bool,
               served: int, rng: np.random.Generator, solo: SoloTable,
               profile: ProfileBundle) -> RequestChunk:
        n = len(b)
        model = self._models(b, served, rng, profile)
        priority = b.priority if b.priority is not None \
            else self.attrs.draw_priority(rng, model)
        items = b.items if b.items is not None else self.attrs.items.draw(rng, n)
        deadline = None
        if b.deadline_s is not None:
            exact = identity & (copy_no == 0)
            deadline = np.where(exact, b.deadline_s, arrival + (b.deadline_s - b.time_s))
        elif b.deadline_ms is not None:
            deadline = arrival + b.deadline_ms / 1e3
        return self.attrs.make_chunk(rng, solo, arrival, model=model, priority=priority,
                                     items=items, deadline=deadline)

    def _models(self, b: TraceBlock, served: int, rng: np.random.Generator,
                profile: ProfileBundle) -> np.ndarray:
        n = len(b)
        if self.mapping == "column":
            assert b.model is not None
            idx = pd.Index(self.models).get_indexer(b.model)
            if (idx < 0).any():
                i = int(np.flatnonzero(idx < 0)[0])
                name = b.model[i]
                where = "profile" if name not in profile.model_names else "workload's models"
                raise TraceError(self.reader().label,
                                 f"model '{name}' is not in the {where} "
                                 f"({', '.join(self.models)})", line=int(b.line[i]),
                                 column="model")
            return idx.astype(np.int16)
        if self.mapping == "round-robin":
            return ((served + np.arange(n)) % len(self.models)).astype(np.int16)
        if self.mapping == "tokens":
            assert b.tokens is not None and self.token_buckets is not None
            return np.searchsorted(np.asarray(self.token_buckets), b.tokens,
                                   side="right").astype(np.int16)
        return self.attrs.draw_models(rng, n)

    # -- description ---------------------------------------------------------------------
    def describe(self) -> dict:
        return {
            "kind": self.kind,
            "path": self.path,
            "sha256": self.sha256,
            "rows": self.rows,
            "span_s": self.span_s,
            "map": self.mapping,
            "token_buckets": None if self.token_buckets is None else list(self.token_buckets),
            "window_s": None if self.window is None else list(self.window),
            "time_scale": self.time_scale,
            "rate_scale": self.rate_scale,
            "duration_s": self.duration_s,
            "max_requests": self.max_requests,
            "requests": self.attrs.describe(),
            "load": self.load,
        }

    def trace_origin_s(self) -> float:
        """Where the replay starts, in the trace's own seconds: the window's start when a
        ``window`` was chosen, else the trace's first row (a trace used as given starts
        where its first request is). Everything that counts time in a replay counts from
        here: the span ``--rate``/``--load`` scale over, ``--duration``, and the run's
        measurement window (:meth:`time_origin_s`, the same point on the run's clock). So
        shifting every time in a file shifts its requests and changes nothing else.

        The first row of the file, not the first request replayed: a rate scale below 1
        may drop that row, but shifting the file must still shift the origin with it."""
        if self.window is not None:
            return self.window[0]
        if self._first_row_s is None:
            blocks = self.reader().blocks()
            try:
                self._first_row_s = float(next(blocks).time_s[0])
            finally:
                blocks.close()
        return self._first_row_s

    def time_origin_s(self) -> float:
        """The replay's time origin on the run's clock: :meth:`trace_origin_s` mapped as
        chunks() maps a time, ``(t - window start) x time scale``. 0 when a ``window``
        was chosen (its start becomes 0 and the window is what is measured), else the
        trace's first row, time-scaled: the metrics of a trace used as given are those of
        the same trace shifted to start at 0."""
        start = self.window[0] if self.window is not None else 0.0
        return (self.trace_origin_s() - start) * self.time_scale

    def expected_count(self) -> int | None:
        if self.rows is None:
            return None
        n = self.rows * self.rate_scale
        if self.duration_s is not None and self.span_s:
            n *= min(1.0, self.duration_s / (self.span_s * self.time_scale))
        n = int(round(n))
        return min(n, self.max_requests) if self.max_requests is not None else n


class TraceScan:
    """What one validating pass over a trace window learns: enough to choose models,
    token buckets, and the time scale for a target rate or load."""

    def __init__(self, reader: TraceReader) -> None:
        self.reader = reader
        self.rows = 0
        self.first_s: float | None = None
        self.last_s: float | None = None
        self.model_order: list[str] = []
        self.model_lines: dict[str, int] = {}
        self.pairs: Counter = Counter()  # (model or None, items or None) -> rows
        self.tokens: list[np.ndarray] = []
        self.token_items: list[np.ndarray | None] = []

    def add(self, block: TraceBlock, keep_tokens: bool) -> None:
        self.rows += len(block)
        if self.first_s is None:
            self.first_s = float(block.time_s[0])
        self.last_s = float(block.time_s[-1])
        if block.model is not None:
            names, first = np.unique(block.model, return_index=True)
            for i in np.argsort(first):
                name = str(names[i])
                if name not in self.model_lines:
                    self.model_lines[name] = int(block.line[first[i]])
                    self.model_order.append(name)
        self.pairs.update(_pair_counts(block.model, block.items, len(block)))
        if keep_tokens and block.tokens is not None:
            self.tokens.append(block.tokens)
            self.token_items.append(block.items)

    def quantile_buckets(self, n_models: int) -> tuple[float, ...]:
        """Equal-count token boundaries for ``n_models`` buckets (bucket i: < b[i])."""
        if n_models == 1:
            return ()
        tokens = np.concatenate(self.tokens)
        qs = np.quantile(tokens, np.arange(1, n_models) / n_models, method="higher")
        out = [float(q) for q in qs]
        for i in range(1, len(out)):  # heavy ties: keep boundaries strictly increasing
            out[i] = max(out[i], out[i - 1] + 1)
        return tuple(out)

    def mean_work_s(self, wl: TraceWorkload, profile: ProfileBundle,
                    capacity_batch: int | None) -> float:
        """Expected offered work per replayed row under ``wl``'s mapping and rules."""
        attrs = wl.attrs
        probs = attrs.probs
        item_vals, item_probs = attrs.items.values, attrs.items.probs

        def row_work(model: str | None, items: int | None) -> float:
            mp = [(model, 1.0)] if model is not None else \
                list(zip(attrs.models, probs, strict=True))
            ip = [(items, 1.0)] if items is not None else \
                list(zip(item_vals, item_probs, strict=True))
            return sum(pm * pi * work_s(profile, m, i, capacity_batch)
                       for m, pm in mp for i, pi in ip if pm > 0 and pi > 0)

        if wl.mapping == "tokens":
            assert wl.token_buckets is not None
            total = 0.0
            for tok, items in zip(self.tokens, self.token_items, strict=True):
                bucket = np.searchsorted(np.asarray(wl.token_buckets), tok, side="right")
                for (b, i), c in _pair_counts(bucket, items, len(tok)).items():
                    total += c * row_work(attrs.models[b], i)
            return total / self.rows
        total = 0.0
        for (model, items), count in self.pairs.items():
            m = model if wl.mapping == "column" else None
            if wl.mapping == "round-robin":
                total += count * sum(row_work(mm, items) for mm in attrs.models) \
                    / len(attrs.models)
            else:
                total += count * row_work(m, items)
        return total / self.rows


def _pair_counts(first: np.ndarray | None, second: np.ndarray | None,
                 n: int) -> dict[tuple, int]:
    """Counts of (first, second) value pairs, None standing for an absent column."""
    if first is None and second is None:
        return {(None, None): n}
    cols = {k: v for k, v in (("a", first), ("b", second)) if v is not None}
    counts = pd.DataFrame(cols).value_counts()
    out = {}
    for key, c in counts.items():
        key = key if isinstance(key, tuple) else (key,)
        vals = iter(k.item() if isinstance(k, np.generic) else k for k in key)
        out[(next(vals) if first is not None else None,
             next(vals) if second is not None else None)] = int(c)
    return out


def scan_trace(reader: TraceReader, window: tuple[float, float | None] | None,
               keep_tokens: bool) -> TraceScan:
    """Validate the whole file (every row, not only the window) and summarise the window."""
    start, end = window if window is not None else (0.0, None)
    scan = TraceScan(reader)
    for block in reader.blocks():
        keep = block.time_s >= start
        if end is not None:
            keep &= block.time_s < end
        if keep.any():
            scan.add(block.take(keep), keep_tokens)
    if scan.rows == 0:  # "1006.0: s" read as a typo: say the interval and the flag
        w = f"from {start:g} s on" if end is None else f"[{start:g} s, {end:g} s)"
        flag = f"{start:g}:" + ("" if end is None else f"{end:g}")
        raise TraceError(reader.label, f"no requests in the time window {w} "
                                       f"(--window {flag})")
    return scan


def check_trace_models(scan: TraceScan, models: tuple[str, ...], profile: ProfileBundle,
                       label: str) -> None:
    """Every model the trace names must be in the profile and in the chosen models."""
    for name in scan.model_order:
        line = scan.model_lines[name]
        if name not in profile.model_names:
            known = ", ".join(profile.model_names)
            raise TraceError(label, f"unknown model '{name}' (profile '{profile.name}' has "
                             f"{known})", line=line, column="model")
        if name not in models:
            raise TraceError(label, f"model '{name}' is not among --models "
                             f"({', '.join(models)})", line=line, column="model")


