"""Figures cannot show impossible values: bounded intervals, readable log and integer
axes, a heatmap whose numbers contrast with their cells."""

from __future__ import annotations

import numpy as np
import pytest

from strait_sim.plotting import bounded_interval, bytes_axis, integer_axis, log_axis


@pytest.mark.parametrize("values", [[0.0, 0.8], [0.0, 0.0, 0.05], [1.0, 0.9], [0.4]])
def test_rate_intervals_stay_in_range(values):
    mean, lo, hi, n = bounded_interval(values, lo=0.0, hi=1.0)
    assert 0.0 <= lo <= mean <= hi <= 1.0 and n == len(values)
    assert mean == pytest.approx(np.mean(values))


def test_interval_is_deterministic_and_handles_nothing():
    assert bounded_interval([1, 5, 2, 8]) == bounded_interval([1, 5, 2, 8])
    mean, lo, hi, n = bounded_interval([None, float("nan")])
    assert n == 0 and np.isnan(mean) and np.isnan(lo) and np.isnan(hi)


def labels_of(fig, axis) -> list:  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer))
            for t in axis.get_ticklabels() if t.get_visible() and t.get_text()]


@pytest.mark.parametrize("lo, hi", [(30, 60), (20, 2000), (0.5, 50_000), (1e-3, 1e6)])
def test_log_labels_are_plain_and_never_overlap(lo, hi):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    ax.plot([lo, hi], [0, 1])
    log_axis(ax, "x")
    ax.set_xlim(lo, hi)
    labels = labels_of(fig, ax.xaxis)
    assert len(labels) >= 2
    for text, _box in labels:
        assert "e" not in text and "^" not in text and "$" not in text, text
    for (_t1, a), (_t2, b) in zip(labels, labels[1:], strict=False):
        assert a.x1 < b.x0, (lo, hi, [t for t, _ in labels])


def test_batch_axis_shows_the_measured_sizes_as_integers():
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.plot([1, 2, 4, 8], [1, 2, 3, 4])
    ax.set_xscale("log", base=2)
    integer_axis(ax, "x", [1, 2, 4, 8])
    assert [t for t, _ in labels_of(fig, ax.xaxis)] == ["1", "2", "4", "8"]


def test_bytes_axis_reads_kib_mib_without_overlap():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3))
    ax = fig.add_subplot()
    ax.plot([4096, 2**26], [1, 2])
    bytes_axis(ax, "x")
    labels = labels_of(fig, ax.xaxis)
    assert 2 <= len(labels) <= 6 and all(t.endswith("iB") for t, _ in labels)
    for (_t1, a), (_t2, b) in zip(labels, labels[1:], strict=False):
        assert a.x1 < b.x0


def test_heatmap_numbers_contrast_with_their_cells():
    from matplotlib import colormaps

    from strait_sim.profiler.show import label_colour

    cmap = colormaps["magma_r"]
    assert label_colour(cmap(0.0)) == "black"  # lightest cell
    assert label_colour(cmap(1.0)) == "white"  # darkest cell


def test_sweep_and_compare_tables_never_leave_the_range(tmp_path):
    from strait_sim.cli import compare_report as rep

    records = [(None, p, s, {"by_class": {c: {"violation_rate": v, "p50_ms": 1.0,
                                                 "p95_ms": 2.0, "p99_ms": 3.0,
                                                 "dropped": 0, "rejected": 0, "count": 10}
                                             for c in ("high", "low")},
                               "overall": {"goodput_rps": 1.0}, "gpu_busy_fraction": 0.5,
                               "jain_fairness": 0.9, "engine": {"preemptions": 0,
                                                                "lost_work_s": 0.0}})
               for p, s, v in (("a", 0, 0.0), ("a", 1, 0.8), ("b", 0, 0.1), ("b", 1, 0.0))]
    runs = rep.runs_frame(records)
    table = rep.comparison_table(runs, ["a", "b"])
    assert (table["hp_violation_lo"] >= 0).all() and (table["hp_violation_hi"] <= 1).all()
    assert (table["hp_violation"] - table["hp_violation_ci"] < 0).any()  # t would go below
    ref = rep.reference_table(runs, "a", ["a", "b"])
    assert (ref["hp_reduction_pp_lo"] >= -100).all() and (ref["hp_reduction_pp_hi"] <= 100).all()
