"""PNG figures of a predictor evaluation (matplotlib, headless).

Three figures, each answering one question of the study: how large is each predictor's
error per scenario (``accuracy.png``), does the error fall as online learners observe
more (``learning_curve.png``), and where do coarse models err, as a function of how much
of the batch overlapped its co-runner (``error_by_overlap.png``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_accuracy(acc: pd.DataFrame, path: Path, title: str) -> None:
    plt = _plt()
    pivot = acc.pivot(index="predictor", columns="scenario", values="mape_pct")
    pivot = pivot.reindex(acc["predictor"].drop_duplicates())
    pivot = pivot[list(acc["scenario"].drop_duplicates())]  # protocol order, not alphabetical
    fig, ax = plt.subplots(figsize=(8, 4))
    pivot.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("MAPE (%)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_learning_curves(curves: pd.DataFrame, path: Path, title: str) -> None:
    from strait_sim.plotting import log_axis

    plt = _plt()
    scenarios = list(curves["scenario"].drop_duplicates())
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.6),
                             squeeze=False)
    for ax, sc in zip(axes[0], scenarios, strict=True):
        sub = curves[curves["scenario"] == sc]
        for name, g in sub.groupby("predictor", sort=False):
            ax.plot(g["observations"], g["block_mape_pct"], marker="o", ms=3, label=name)
        ax.set_title(sc)
        ax.set_xlabel("test observations seen")
        ax.set_ylabel("MAPE of block (%, log scale)")
        log_axis(ax, "y")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_by_overlap(by_ov: pd.DataFrame, path: Path, title: str) -> None:
    plt = _plt()
    sub = by_ov[by_ov["scenario"] == "random"]
    if sub.empty:
        sub = by_ov
    pivot = sub.pivot(index="overlap_fraction", columns="predictor", values="bias_pct")
    pivot = pivot[list(sub["predictor"].drop_duplicates())]
    fig, ax = plt.subplots(figsize=(8, 4))
    pivot.plot(ax=ax, marker="o")
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xlabel("overlap fraction of the test batch (overlap_ms / solo_ms)")
    ax.set_ylabel("mean signed error (%), > 0 over-predicts")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
