"""Statistics of a trace file, streamed: what ``strait-sim workload show`` prints.

Two passes over the file, never holding it whole: the first counts and sums (rate, CV of
inter-arrival times, model mix, HP share, items, deadlines), the second bins arrivals over
time for the rate curve, once the span is known.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_path
from strait_sim.requests import HIGH
from strait_sim.workloads.tracefile import TraceReader, public_mode


@dataclass
class TraceStats:
    label: str
    format: str
    count: int = 0
    first_s: float = 0.0
    last_s: float = 0.0
    gap_count: int = 0
    gap_sum: float = 0.0
    gap_sumsq: float = 0.0
    models: Counter = field(default_factory=Counter)
    hp: int | None = None
    items_sum: int | None = None
    deadline_ms_sum: float | None = None
    deadline_ms_min: float = math.inf
    deadline_ms_max: float = -math.inf
    bin_s: float = 0.0
    bin_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def span_s(self) -> float:
        return self.last_s - self.first_s

    @property
    def mean_rate(self) -> float | None:
        """Requests per second over the span (n - 1 gaps over the span)."""
        return (self.count - 1) / self.span_s if self.span_s > 0 else None

    @property
    def cv(self) -> float | None:
        """Coefficient of variation of the inter-arrival times."""
        if self.gap_count < 2 or self.gap_sum <= 0:
            return None
        mean = self.gap_sum / self.gap_count
        var = max(self.gap_sumsq / self.gap_count - mean**2, 0.0)
        return math.sqrt(var) / mean

    @property
    def hp_share(self) -> float | None:
        return None if self.hp is None else self.hp / self.count

    @property
    def mean_items(self) -> float | None:
        return None if self.items_sum is None else self.items_sum / self.count

    @property
    def mean_deadline_ms(self) -> float | None:
        return None if self.deadline_ms_sum is None else self.deadline_ms_sum / self.count

    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """(bin start times, requests per second in each bin)."""
        starts = self.first_s + self.bin_s * np.arange(len(self.bin_counts))
        return starts, self.bin_counts / self.bin_s


def trace_stats(path: Path | str, *, bins: int = 20, bin_s: float | None = None) -> TraceStats:
    """Read the trace at ``path`` twice and summarise it (errors name file and line)."""
    reader = TraceReader(path)
    st = TraceStats(label=str(path), format=reader.format)
    prev: float | None = None
    for b in reader.blocks():
        t = b.time_s
        if st.count == 0:
            st.first_s = float(t[0])
        st.count += len(b)
        st.last_s = float(t[-1])
        gaps = np.diff(t) if prev is None else np.diff(np.concatenate(([prev], t)))
        prev = float(t[-1])
        st.gap_count += len(gaps)
        st.gap_sum += float(gaps.sum())
        st.gap_sumsq += float((gaps**2).sum())
        if b.model is not None:
            st.models.update(pd.Series(b.model).value_counts().to_dict())
        if b.priority is not None:
            st.hp = (st.hp or 0) + int((b.priority == HIGH).sum())
        if b.items is not None:
            st.items_sum = (st.items_sum or 0) + int(b.items.sum())
        rel = None
        if b.deadline_ms is not None:
            rel = b.deadline_ms
        elif b.deadline_s is not None:
            rel = (b.deadline_s - t) * 1e3
        if rel is not None:
            st.deadline_ms_sum = (st.deadline_ms_sum or 0.0) + float(rel.sum())
            st.deadline_ms_min = min(st.deadline_ms_min, float(rel.min()))
            st.deadline_ms_max = max(st.deadline_ms_max, float(rel.max()))
    span = st.span_s
    if bin_s is None:
        bin_s = span / bins if span > 0 else 1.0
    n_bins = max(1, math.ceil(span / bin_s)) if span > 0 else 1
    counts = np.zeros(n_bins, dtype=np.int64)
    for b in reader.blocks():
        idx = np.minimum(((b.time_s - st.first_s) / bin_s).astype(np.int64), n_bins - 1)
        counts += np.bincount(idx, minlength=n_bins)
    st.bin_s = float(bin_s)
    st.bin_counts = counts
    return st


def plot_rate(st: TraceStats, out: Path | str) -> None:
    """Write the rate-over-time curve to a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    starts, rates = st.rates()
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=120)
    ax.step(np.append(starts, starts[-1] + st.bin_s) - st.first_s,
            np.append(rates, rates[-1]), where="post", lw=1.2)
    if st.mean_rate is not None:
        ax.axhline(st.mean_rate, color="grey", ls="--", lw=0.8,
                   label=f"mean {st.mean_rate:.3g}/s")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlabel("time since first request (s)")
    ax.set_ylabel(f"requests/s ({st.bin_s:.3g} s bins)")
    ax.set_title(Path(st.label).name, fontsize=10)
    ax.set_ylim(bottom=0)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
        public_mode(tmp)
    plt.close(fig)
