"""``strait-sim profile show``: print a bundle's digest and draw its three plots.

Plots (PNG, each written atomically): ``slowdown_heatmap.png`` (mean slowdown per model
pair), ``latency_vs_batch.png`` (solo median with p5-p95 band per model) and
``transfer_vs_size.png`` (copy time against size per direction and contention, with the
fitted line of lone copies).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from strait_sim.atomic import atomic_path
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.profiler.analysis import fit_link, slowdown_matrix, solo_summary


def print_summary(bundle: ProfileBundle, console: Console | None = None) -> None:
    console = console or Console()
    meta = bundle.meta
    be = meta.get("backend", {})
    console.print(f"[bold]{bundle.name}[/bold]: {bundle.device_name} ({bundle.device_kind}), "
                  f"backend {be.get('name')} {be.get('precision')}, created {meta.get('created')}")
    parts = meta.get("parts", {})
    if parts:
        console.print("parts: " + ", ".join(
            f"{k} {v.get('seconds', 0):.0f} s{'' if v.get('completed') else ' (incomplete)'}"
            for k, v in parts.items()))

    solo = solo_summary(bundle)
    t = Table(title="Solo latency (ms, device-timed forward)")
    for col in ("model", "batch", "n", "median", "p5", "p95", "cv"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for r in solo.itertuples(index=False):
        t.add_row(r.model, str(r.batch), str(r.n), f"{r.median_ms:.3f}", f"{r.p5_ms:.3f}",
                  f"{r.p95_ms:.3f}", f"{r.cv:.2f}")
    console.print(t)

    mat = slowdown_matrix(bundle)
    if len(mat):
        t = Table(title="Slowdown: co-located / solo latency (row model beside column model)")
        t.add_column("model")
        for c in mat.columns:
            t.add_column(str(c), justify="right")
        for m, row in mat.iterrows():
            t.add_row(str(m), *("" if np.isnan(v) else f"{v:.2f}" for v in row.to_numpy()))
        console.print(t)
        console.print(f"({len(bundle.pairs)} pair runs)")  # type: ignore[arg-type]
        print_calibration(bundle, console)
    else:
        console.print("no pairs measured")

    fits = fit_link(bundle.transfers)
    if fits:
        t = Table(title="Link fit: time = fixed + bytes / bandwidth (lone copies)")
        for col in ("direction", "fixed (us)", "GB/s", "samples", "median rel. err",
                    "GB/s of largest", "sharing", "opposite x"):
            t.add_column(col, justify="right")
        for f in fits.values():
            rule = f.rule if f.rule != "partial" else f"partial ({f.share:.2f}/copy)"
            t.add_row(f.direction, f"{f.fixed_ms * 1e3:.2f}", f"{f.gbps:.2f}", str(f.samples),
                      f"{f.median_rel_error:.1%}",
                      f"{f.largest_gbps:.2f} ({f.largest_bytes / 2**20:g} MiB)", rule,
                      f"{f.opposite_factor:.2f}")
        console.print(t)
        console.print("sharing: chosen from the concurrent copies (fair, serial or partial; "
                      "docs/architecture.md); opposite x: bandwidth while the other "
                      "direction is busy")
    else:
        console.print("no transfers measured")


def label_colour(rgba: tuple[float, float, float, float]) -> str:
    """Black on a light cell, white on a dark one (relative luminance, Rec. 709)."""
    r, g, b, _a = rgba
    return "white" if 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5 else "black"


def print_calibration(bundle: ProfileBundle, console: Console, limit: int = 12) -> None:
    """The truth model's co-location calibration: its summary, the least certain keys,
    and a warning naming the keys the samples cannot identify."""
    from strait_sim.truth.colocation import calibrate_bundle

    cal = calibrate_bundle(bundle)
    tab = cal.table()
    if len(tab) == 0:
        return
    kept = [p for p in cal.pairs.values() if p.fixed_cost_kept]
    console.print(
        f"calibration (truth model, {'even reps' if cal.out_of_sample else 'all reps'}): "
        f"{len(tab)} keys from {cal.views} views; slowdown median {tab['slowdown'].median():.2f}"
        f" (range {tab['slowdown'].min():.2f}-{tab['slowdown'].max():.2f}); "
        f"{len(cal.unidentified)} unidentified; {cal.unexplained} views lost more than they "
        f"overlapped; fixed cost kept for {len(kept)} of {len(cal.pairs)} model pairs")
    console.print(cal.three_way.describe())
    width = (tab["hi"] / tab["lo"]).to_numpy()
    t = Table(title=f"Least certain slowdowns (of {len(tab)}; all: profile show --calibration F)")
    for col in ("model@batch", "co@batch", "views", "slowdown", "90% interval", "identified"):
        t.add_column(col, justify="left" if "@" in col else "right")
    for i in np.argsort(-width)[:limit]:
        r = tab.iloc[int(i)]
        t.add_row(f"{r['model']}@{r['batch']}", f"{r['co_model']}@{r['co_batch']}",
                  str(r["views"]), f"{r['slowdown']:.2f}", f"{r['lo']:.2f}-{r['hi']:.2f}",
                  "yes" if r["identified"] else f"no: {r['reason']}")
    console.print(t)
    for w in cal.warnings():
        console.print(f"warning: {w}")


def write_plots(bundle: ProfileBundle, folder: Path) -> list[Path]:
    """Draw the three plots into ``folder``; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from strait_sim.plotting import bytes_axis, integer_axis, log_axis

    folder = Path(folder)
    written = []

    def save(fig, name: str) -> None:  # noqa: ANN001
        path = folder / name
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    mat = slowdown_matrix(bundle)
    if len(mat):
        fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(mat.columns), 1 + 0.6 * len(mat)))
        values = mat.to_numpy(dtype=float)
        im = ax.imshow(values, cmap="magma_r")
        ax.set_xticks(range(len(mat.columns)), [str(c) for c in mat.columns], rotation=45,
                      ha="right")
        ax.set_yticks(range(len(mat.index)), [str(i) for i in mat.index])
        for (i, j), v in np.ndenumerate(values):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8,
                        color=label_colour(im.cmap(im.norm(v))))
        ax.set_xlabel("co-runner")
        ax.set_ylabel("model")
        ax.set_title(f"Mean slowdown of the model beside each co-runner, {bundle.name}",
                     fontsize=10)
        bar = fig.colorbar(im, ax=ax, shrink=0.8)
        bar.set_label("mean slowdown (× solo latency)")
        save(fig, "slowdown_heatmap.png")

    solo = solo_summary(bundle)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for model, g in solo.groupby("model"):
        ax.plot(g["batch"], g["median_ms"], marker="o", label=str(model))
        ax.fill_between(g["batch"], g["p5_ms"], g["p95_ms"], alpha=0.2)
    ax.set_xscale("log", base=2)
    integer_axis(ax, "x", sorted(int(b) for b in solo["batch"].unique()))
    log_axis(ax, "y")
    ax.set_xlabel("batch size (items)")
    ax.set_ylabel("solo latency (ms), median and p5-p95")
    ax.set_title(f"Latency vs batch, {bundle.name}")
    ax.legend(fontsize=8)
    save(fig, "latency_vs_batch.png")

    if bundle.has("transfers"):
        tr = bundle.transfers
        assert tr is not None
        fits = fit_link(tr)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
        for ax, direction in zip(axes, ("h2d", "d2h"), strict=True):
            g = tr[tr["direction"] == direction]
            for (k, opp), h in g.groupby(["concurrent", "opposite_active"]):
                med = h.groupby("bytes")["time_ms"].median()
                ax.plot(med.index, med.to_numpy(), marker=".",
                        label=f"{k} concurrent{', opposite busy' if opp else ''}")
            if direction in fits:
                f = fits[direction]
                xs = np.array(sorted(g["bytes"].unique()), dtype=float)
                ax.plot(xs, f.fixed_ms + xs / (f.gbps * 1e6), "k--", lw=1,
                        label=f"fit: {f.fixed_ms * 1e3:.1f} us + B/{f.gbps:.1f} GB/s")
            bytes_axis(ax, "x")
            log_axis(ax, "y")
            ax.set_xlabel("copy size (bytes, log scale)")
            ax.set_title(direction)
            ax.legend(fontsize=7)
        axes[0].set_ylabel("copy time (ms), median")
        fig.suptitle(f"Transfer time vs size, {bundle.name}")
        save(fig, "transfer_vs_size.png")
    return written
