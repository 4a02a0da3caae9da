"""The tables and plots of ``strait-sim compare``: policies side by side over seeds.

Every policy runs on identical workloads (same seeds, so the same arrivals), so the
comparison of two policies at one seed is paired. Per (load, policy) the table holds the
mean over seeds and a t-based 95% confidence half-width (``scipy.stats.t``; none with one
seed). The reference comparison (``strait`` against each other policy by default) takes
the per-seed *differences* first, then their mean and t interval (a paired comparison),
in percentage points:

- ``hp_reduction_pp``: baseline HP violation rate minus the reference's (positive: the
  reference misses fewer HP deadlines);
- ``lp_cost_pp``: the reference's LP violation rate minus the baseline's (positive: the
  reference makes LP pay);
- ``jain_diff``: the reference's Jain index minus the baseline's (positive: more even).

Intervals: ``*_ci`` is the t half-width (kept for continuity; with two seeds it can
reach far outside the possible range); ``*_lo``/``*_hi`` a percentile-bootstrap 95%
interval clipped to the metric's range (rates 0..1, differences -100..100 pp), which the
printed tables and plots show, so that no table or figure shows an impossible value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_file, atomic_path
from strait_sim.plotting import bounded_interval, clamp_ylim, log_axis

CLASSES = ("high", "low")
SHORT = {"high": "hp", "low": "lp"}


def mean_ci(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and t-based 95% half-width (None for the half-width with fewer than 2 values)."""
    xs = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(xs) == 0:
        return None, None
    mean = float(xs.mean())
    if len(xs) < 2:
        return mean, None
    from scipy.stats import t

    half = float(t.ppf(0.975, len(xs) - 1) * xs.std(ddof=1) / math.sqrt(len(xs)))
    return mean, half


def run_row(summary: dict) -> dict:
    """The flat metrics of one run (one policy, one seed, one load)."""
    row: dict = {}
    for cls in CLASSES:
        c = summary["by_class"][cls]
        s = SHORT[cls]
        row[f"{s}_violation"] = c["violation_rate"]
        for q in ("p50_ms", "p95_ms", "p99_ms"):
            row[f"{s}_{q}"] = c[q]
        row[f"{s}_dropped"] = c["dropped"] + c["rejected"]
        row[f"{s}_count"] = c["count"]
    row["goodput_rps"] = summary["overall"]["goodput_rps"]
    row["gpu_busy"] = summary["gpu_busy_fraction"]
    row["jain"] = summary["jain_fairness"]
    row["pred_mape"] = summary.get("prediction", {}).get("mape")
    row["preemptions"] = summary["engine"]["preemptions"]
    row["lost_work_s"] = summary["engine"]["lost_work_s"]
    row.update(slo_row(summary.get("slo")))
    return row


def slo_row(slo: dict | None) -> dict:
    """The SLO-attainment view of one run (summary.json's ``slo`` block), flat: per class
    the p95/p99 latency with dropped, rejected and failed requests counted as never served
    (``inf``: the percentile falls among them, unbounded) and the share on time; Jain's
    index over (model, class) groups weighted by requests; goodput over the arrival
    window. All None when the run has no ``slo`` block (streamed runs of >4M requests)."""
    row: dict = {}
    have = isinstance(slo, dict)
    by_class = (slo or {}).get("by_class") or {}
    for cls in CLASSES:
        c = by_class.get(cls) or {}
        s = SHORT[cls]
        for q in SLO_QUANTILES:
            v = c.get(q)
            row[f"{s}_slo_{q}"] = None if not have or not c else (
                math.inf if v is None else v)
        row[f"{s}_attainment"] = c.get("slo_attainment")
    row["jain_model_class"] = (slo or {}).get("jain_model_class")
    row["goodput_arrival_rps"] = (slo or {}).get("goodput_arrival_rps")
    return row


def runs_frame(records: list[tuple[float | None, str, int, dict]]) -> pd.DataFrame:
    """One row per run: load, policy, seed and :func:`run_row`."""
    rows = [{"load": load, "policy": policy, "seed": seed, **run_row(summary)}
            for load, policy, seed, summary in records]
    return pd.DataFrame(rows)


SLO_QUANTILES = ("p95_ms", "p99_ms")
SLO_COLUMNS = tuple(f"{s}_slo_{q}" for s in ("hp", "lp") for q in SLO_QUANTILES) + (
    "hp_attainment", "lp_attainment", "jain_model_class", "goodput_arrival_rps")
SLO_PERCENTILES = SLO_COLUMNS[:4]
MEAN_ONLY = ("hp_p50_ms", "hp_p95_ms", "hp_p99_ms", "lp_p50_ms", "lp_p95_ms", "lp_p99_ms",
             "hp_dropped", "lp_dropped", "goodput_rps", "gpu_busy", "pred_mape",
             "preemptions", "lost_work_s", *SLO_COLUMNS)
WITH_CI = ("hp_violation", "lp_violation", "jain")


def comparison_table(runs: pd.DataFrame, policies: Sequence[str]) -> pd.DataFrame:
    """Per (load, policy): seeds, mean (and CI for rates and fairness) of every metric."""
    rows = []
    loads = list(dict.fromkeys(runs["load"].tolist()))
    for load in loads:
        for policy in policies:
            sel = runs[(runs["policy"] == policy) & _same_load(runs["load"], load)]
            if sel.empty:
                continue
            row = {"load": load, "policy": policy, "seeds": len(sel)}
            for col in WITH_CI:
                row[col], row[f"{col}_ci"] = mean_ci(sel[col].tolist())
                _, row[f"{col}_lo"], row[f"{col}_hi"], _n = bounded_interval(
                    sel[col].tolist(), lo=0.0, hi=1.0)
            for col in MEAN_ONLY:
                if col in SLO_PERCENTILES:
                    if col in sel:  # unbounded in any seed: unbounded, not a mean of the rest
                        vals = [v for v in sel[col].tolist() if v is not None and v == v]
                        unbounded = sum(1 for v in vals if math.isinf(v))
                        row[f"{col}_unbounded"] = unbounded
                        row[col] = (math.inf if unbounded else float(np.mean(vals))) \
                            if vals else None
                elif col in sel:
                    row[col] = mean_ci(sel[col].tolist())[0]
            rows.append(row)
    return pd.DataFrame(rows)


REFERENCE_COLUMNS = ("load", "reference", "baseline", "seeds",
                     *(f"{name}{end}" for name in ("hp_reduction_pp", "lp_cost_pp", "jain_diff")
                       for end in ("", "_ci", "_lo", "_hi")),
                     "reference_jain", "baseline_jain")


def reference_table(runs: pd.DataFrame, reference: str, policies: Sequence[str]
                    ) -> pd.DataFrame:
    """Paired differences (percentage points) of ``reference`` against each policy.

    Its columns are there even with no row (one policy: no pair), so that reference.csv
    keeps its header line and reads back as an empty table rather than as no table."""
    rows = []
    loads = list(dict.fromkeys(runs["load"].tolist()))
    for load in loads:
        at = runs[_same_load(runs["load"], load)]
        ref = at[at["policy"] == reference].set_index("seed")
        for other in policies:
            if other == reference:
                continue
            base = at[at["policy"] == other].set_index("seed")
            seeds = sorted(set(ref.index) & set(base.index))
            if not seeds:
                continue
            r, b = ref.loc[seeds], base.loc[seeds]
            hp = ((b["hp_violation"] - r["hp_violation"]) * 100).tolist()
            lp = ((r["lp_violation"] - b["lp_violation"]) * 100).tolist()
            jd = (r["jain"].astype(float) - b["jain"].astype(float)).tolist()
            row = {"load": load, "reference": reference, "baseline": other,
                   "seeds": len(seeds)}
            for name, vals, bound in (("hp_reduction_pp", hp, 100.0),
                                      ("lp_cost_pp", lp, 100.0), ("jain_diff", jd, 1.0)):
                row[name], row[f"{name}_ci"] = mean_ci(vals)
                _, row[f"{name}_lo"], row[f"{name}_hi"], _n = bounded_interval(
                    vals, lo=-bound, hi=bound)
            row["reference_jain"] = mean_ci(r["jain"].tolist())[0]
            row["baseline_jain"] = mean_ci(b["jain"].tolist())[0]
            rows.append(row)
    return pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))


def _same_load(col: pd.Series, load: float | None) -> pd.Series:
    if load is None or (isinstance(load, float) and math.isnan(load)):
        return col.isna()
    return col == load


# -- text ------------------------------------------------------------------------------------

def _fmt(v: object, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pm(mean: object, ci: object, scale: float = 1.0, digits: int = 2) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{float(mean) * scale:.{digits}f}"
    if ci is not None and not (isinstance(ci, float) and math.isnan(ci)):
        text += f" ± {float(ci) * scale:.{digits}f}"
    return text


def _interval(mean: object, lo: object, hi: object, scale: float = 100.0,
              digits: int = 1) -> str:
    """``mean (lo–hi)``, scaled (rates as percentages); ``-`` when there is no value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{float(mean) * scale:.{digits}f}"
    if lo is not None and hi is not None and not (
            isinstance(lo, float) and math.isnan(lo)) and float(hi) > float(lo):
        text += f" ({float(lo) * scale:.{digits}f}–{float(hi) * scale:.{digits}f})"
    return text


def _p(r: dict, key: str, scale: float = 100.0, digits: int = 1) -> str:
    return _interval(r[key], r.get(f"{key}_lo"), r.get(f"{key}_hi"), scale, digits)


INTERVAL_NOTE = ("mean over seeds (95% bootstrap interval, kept within the possible "
                 "range); violated = not on time")
SIGN_NOTE = ("HP avoided = baseline's HP violation rate minus the reference's: positive "
             "means the reference misses fewer high-priority deadlines. LP added = the "
             "reference's LP violation rate minus the baseline's: positive means the "
             "reference makes low-priority requests pay. pp = percentage points.")


def comparison_markdown(table: pd.DataFrame) -> str:
    head = ("| load | policy | seeds | HP violated (%) | LP violated (%) | "
            "HP p50/p95/p99 (ms) | LP p50/p95/p99 (ms) | goodput (req/s) | HP dropped | "
            "LP dropped | busy (%) | Jain |")
    lines = [head, "|" + "---|" * 12]
    for r in table.to_dict("records"):
        hp_lat = "/".join(_fmt(r[f"hp_{q}"], 1) for q in ("p50_ms", "p95_ms", "p99_ms"))
        lp_lat = "/".join(_fmt(r[f"lp_{q}"], 1) for q in ("p50_ms", "p95_ms", "p99_ms"))
        busy = r["gpu_busy"]
        lines.append(
            f"| {_fmt(r['load'])} | {r['policy']} | {r['seeds']} | "
            f"{_p(r, 'hp_violation')} | {_p(r, 'lp_violation')} | {hp_lat} | {lp_lat} | "
            f"{_fmt(r['goodput_rps'])} | {_fmt(r['hp_dropped'], 1)} | "
            f"{_fmt(r['lp_dropped'], 1)} | "
            f"{'-' if busy is None or busy != busy else f'{100 * busy:.1f}'} | "
            f"{_p(r, 'jain', 1.0, 3)} |")
    return "\n".join(lines) + "\n\n" + INTERVAL_NOTE + ".\n"


SLO_NOTE = ("SLO view: every dropped, rejected or failed request counts as never served "
            "(an infinite latency), so dropping cannot flatter a tail; 'unbounded (k/n)': "
            "the percentile falls among the unserved requests in k of the n seeds (the "
            "mean is then unbounded). On time = SLO attainment. Jain (model, class): over "
            "every (model, class) group's on-time share, weighted by its requests. Goodput "
            "over the arrival window (first to last arrival), not the run's span.")


def _slo_ms(r: dict, col: str) -> str:
    """A mean SLO-view percentile over seeds, or how many seeds left it unbounded."""
    v = r.get(col)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if math.isinf(float(v)):
        k = r.get(f"{col}_unbounded")
        return f"unbounded ({_fmt(int(k)) if k == k and k is not None else '?'}/{r['seeds']})"
    return _fmt(float(v), 1)


def has_slo(table: pd.DataFrame) -> bool:
    """Whether any run of the table carries the SLO view (summary.json's ``slo`` block)."""
    return "hp_attainment" in table and table["hp_attainment"].notna().any()


def slo_markdown(table: pd.DataFrame) -> str:
    """The SLO-attainment view per (load, policy): drops and rejections count as misses."""
    if not has_slo(table):
        return ""
    lines = ["| load | policy | seeds | HP p95 (ms) | HP p99 (ms) | LP p95 (ms) | "
             "LP p99 (ms) | HP on time (%) | LP on time (%) | Jain (model, class) | "
             "goodput over arrivals (req/s) |", "|" + "---|" * 11]
    for r in table.to_dict("records"):
        lines.append(f"| {_fmt(r['load'])} | {r['policy']} | {r['seeds']} | "
                     + " | ".join(slo_cells(r)) + " |")
    return "\n".join(lines) + "\n\n" + SLO_NOTE + "\n"


def slo_cells(r: dict) -> list[str]:
    """HP p95, HP p99, LP p95, LP p99, HP and LP on time, Jain (model, class), goodput
    over arrivals: one row of the SLO view as text."""
    return [_slo_ms(r, "hp_slo_p95_ms"), _slo_ms(r, "hp_slo_p99_ms"),
            _slo_ms(r, "lp_slo_p95_ms"), _slo_ms(r, "lp_slo_p99_ms"),
            _share(r.get("hp_attainment")), _share(r.get("lp_attainment")),
            _fmt(r.get("jain_model_class"), 3), _fmt(r.get("goodput_arrival_rps"))]


def _share(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{100 * float(v):.1f}"


def reference_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    ref = table["reference"].iloc[0]
    lines = [f"| load | {ref} vs | seeds | HP avoided (pp) | LP added (pp) | "
             f"Jain {ref} | Jain baseline | Jain diff |", "|" + "---|" * 8]
    for r in table.to_dict("records"):
        lines.append(
            f"| {_fmt(r['load'])} | {r['baseline']} | {r['seeds']} | "
            f"{_p(r, 'hp_reduction_pp', 1.0)} | {_p(r, 'lp_cost_pp', 1.0)} | "
            f"{_fmt(r['reference_jain'], 3)} | {_fmt(r['baseline_jain'], 3)} | "
            f"{_p(r, 'jain_diff', 1.0, 3)} |")
    return "\n".join(lines) + "\n\n" + SIGN_NOTE + "\n"


def terminal_tables(table: pd.DataFrame, ref_table: pd.DataFrame) -> list:
    """Rich tables for the terminal, each readable at 80 columns."""
    from rich import box
    from rich.table import Table

    def new(title: str, caption: str, cols: list[tuple[str, str]]) -> Table:
        t = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, padding=(0, 1),
                  caption_justify="left", title_justify="left")
        for name, justify in cols:
            t.add_column(name, justify=justify)  # type: ignore[arg-type]
        return t

    swept = table["load"].notna().any()
    lead = [("load", "right")] if swept else []
    viol = new("Deadline violations and tail latency", INTERVAL_NOTE + ".",
               lead + [("policy", "left"), ("seeds", "right"), ("HP violated %", "right"),
                       ("LP violated %", "right"), ("HP p99 ms", "right"),
                       ("LP p99 ms", "right")])
    work = new("Work done", "dropped = dropped or rejected, mean per run.",
               lead + [("policy", "left"), ("goodput req/s", "right"), ("busy %", "right"),
                       ("HP dropped", "right"), ("LP dropped", "right"), ("Jain", "right")])
    for r in table.to_dict("records"):
        first = [_fmt(r["load"])] if swept else []
        viol.add_row(*first, str(r["policy"]), str(r["seeds"]), _p(r, "hp_violation"),
                     _p(r, "lp_violation"), _fmt(r["hp_p99_ms"], 1),
                     _fmt(r["lp_p99_ms"], 1))
        busy = r["gpu_busy"]
        work.add_row(*first, str(r["policy"]), _fmt(r["goodput_rps"]),
                     "-" if busy is None or busy != busy else f"{100 * busy:.1f}",
                     _fmt(r["hp_dropped"], 1), _fmt(r["lp_dropped"], 1),
                     _fmt(r["jain"], 3))
    out = [viol, work]
    if has_slo(table):
        slo = new("SLO view: drops count as misses",
                  "p99 with dropped/rejected requests as never served; 'unb. k/n': "
                  "unbounded in k of n seeds. Jain over (model, class) groups.",
                  lead + [("policy", "left"), ("HP p99 ms", "right"), ("LP p99 ms", "right"),
                          ("HP on time %", "right"), ("LP on time %", "right"),
                          ("Jain m×c", "right")])
        for r in table.to_dict("records"):
            first = [_fmt(r["load"])] if swept else []
            slo.add_row(*first, str(r["policy"]),
                        _slo_ms(r, "hp_slo_p99_ms").replace("unbounded (", "unb. ")
                        .rstrip(")"),
                        _slo_ms(r, "lp_slo_p99_ms").replace("unbounded (", "unb. ")
                        .rstrip(")"),
                        _share(r.get("hp_attainment")), _share(r.get("lp_attainment")),
                        _fmt(r.get("jain_model_class"), 3))
        out.append(slo)
    if not ref_table.empty:
        ref = ref_table["reference"].iloc[0]
        paired = new(f"{ref} against each policy, paired over seeds", SIGN_NOTE,
                     lead + [(f"{ref} vs", "left"), ("seeds", "right"),
                             ("HP avoided pp", "right"), ("LP added pp", "right"),
                             ("Jain diff", "right")])
        for r in ref_table.to_dict("records"):
            first = [_fmt(r["load"])] if swept else []
            paired.add_row(*first, str(r["baseline"]), str(r["seeds"]),
                           _p(r, "hp_reduction_pp", 1.0), _p(r, "lp_cost_pp", 1.0),
                           _p(r, "jain_diff", 1.0, 3))
        out.append(paired)
    return out


# -- files -----------------------------------------------------------------------------------

def write_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_file(path) as fh:
        df.to_csv(fh, index=False)


def write_text(text: str, path: Path) -> None:
    with atomic_file(path) as fh:
        fh.write(text)


def plot_violation_vs_load(table: pd.DataFrame, path: Path) -> None:
    """Violation rate (%) against offered load, one line per policy, 95% CI error bars."""
    from matplotlib.figure import Figure  # not pyplot: a notebook keeps its backend

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2, sharey=False)
    for ax, cls in zip(axes, CLASSES, strict=True):
        s = SHORT[cls]
        for policy, grp in table.groupby("policy", sort=False):
            grp = grp.sort_values("load")
            mean = grp[f"{s}_violation"].astype(float).to_numpy() * 100
            lo = grp[f"{s}_violation_lo"].astype(float).fillna(
                grp[f"{s}_violation"]).to_numpy() * 100
            hi = grp[f"{s}_violation_hi"].astype(float).fillna(
                grp[f"{s}_violation"]).to_numpy() * 100
            seeds = int(grp["seeds"].min())
            ax.errorbar(grp["load"].astype(float), mean,
                        yerr=np.vstack([np.clip(mean - lo, 0, None),
                                        np.clip(hi - mean, 0, None)]),
                        marker="o", capsize=3, label=f"{policy} (n={seeds} seeds)")
        clamp_ylim(ax, 0.0, 100.0)
        ax.set_title(f"{cls}-priority requests")
        ax.set_xlabel("offered load (share of solo capacity)")
        ax.set_ylabel("deadline violations (%)")
        ax.grid(alpha=0.3)
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=PLOT_METADATA)


def plot_latency_cdfs(latencies: dict[str, dict[str, np.ndarray]], path: Path,
                      title: str) -> None:
    """Latency CDF per class, one line per policy (completed requests, pooled over seeds)."""
    from matplotlib.figure import Figure  # not pyplot: a notebook keeps its backend

    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for ax, cls in zip(axes, CLASSES, strict=True):
        for policy, by_cls in latencies.items():
            xs = np.sort(by_cls.get(cls, np.empty(0)))
            if len(xs):
                ax.plot(xs, np.arange(1, len(xs) + 1) / len(xs),
                        label=f"{policy} (n={len(xs):,})")
        log_axis(ax, "x")
        ax.set_title(f"{cls}-priority: latency of completed requests")
        ax.set_xlabel("latency, arrival to finish (ms, log scale)")
        ax.set_ylabel("share of completed requests")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata=PLOT_METADATA)


def completed_latencies(requests: pd.DataFrame) -> dict[str, np.ndarray]:
    """Latency (ms) of completed requests per class, from a run's requests table."""
    status = requests["status"].astype(str)
    done = requests[(status == "on_time") | (status == "late")]
    lat = (done["finish_s"] - done["arrival_s"]).to_numpy() * 1e3
    prio = done["priority"].astype(str).to_numpy()
    return {cls: lat[prio == cls] for cls in CLASSES}


def write_comparison(out: Path, comparison, command: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Write the comparison's files into ``out`` (tables as CSV and Markdown, the plots,
    the producing command); return the names written."""
    from strait_sim.html_report import COMMAND_FILE

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names, ref = comparison.policies, comparison.reference
    table, ref_table = comparison.table, comparison.reference_table
    records = [(*k, s) for k, s in zip(comparison.keys, comparison.summaries, strict=True)]
    folders = comparison.folders
    text, ref_text = comparison_markdown(table), reference_markdown(ref_table)
    slo_text = slo_markdown(table)
    if slo_text:
        text += "\n## SLO view (dropped and rejected requests count as misses)\n\n" + slo_text
    runs = comparison.runs.assign(folder=[str(f) if f is not None else None for f in folders])
    write_csv(runs, out / "runs.csv")
    write_csv(table, out / "comparison.csv")
    write_csv(ref_table, out / "reference.csv")
    write_text("# strait-sim compare\n\n" + text +
               (f"\n## {ref} against each policy (percentage points, paired over "
                f"seeds)\n\n" + ref_text if ref_text else ""), out / "comparison.md")
    write_text(command + "\n", out / COMMAND_FILE)
    written = ["runs.csv", "comparison.csv", "reference.csv", "comparison.md", COMMAND_FILE]
    if comparison.swept:
        plot_violation_vs_load(table, out / "violation_vs_load.png")
        written.append("violation_vs_load.png")
    for load in comparison.loads:
        lat: dict = {}
        for name in names:
            parts = [pd.read_parquet(Path(f) / "requests.parquet",
                                     columns=["priority", "status", "arrival_s", "finish_s"])
                     for (ld, pol, _s, _sum), f in zip(records, folders, strict=True)
                     if pol == name and ld == load and f is not None
                     and (Path(f) / "requests.parquet").is_file()]
            if parts:
                lat[name] = completed_latencies(pd.concat(parts, ignore_index=True))
        if lat:
            fname = "latency_cdf.png" if not comparison.swept else f"latency_cdf_load{load:g}.png"
            title = "all seeds pooled" + ("" if load is None else f", load {load:g}")
            plot_latency_cdfs(lat, out / fname, title)
            written.append(fname)
    for stale in _earlier_plots(out, written):
        stale.unlink()
    return written


#: The compare plots' PNG metadata: how a later comparison in the same folder knows a plot
#: of an earlier one (other loads, not swept) as the tool's own, to remove it.
PLOT_METADATA = {"Software": "strait-sim compare"}
PLOT_NAMES = re.compile(r"latency_cdf(_load[^/]+)?\.png|violation_vs_load\.png")


def _earlier_plots(out: Path, written: list[str]) -> list[Path]:
    """Plots an earlier comparison wrote into ``out`` that this one did not (a user's PNG
    of the same name, without the tool's metadata, is kept)."""
    return [p for p in sorted(out.glob("*.png"))
            if p.name not in written and PLOT_NAMES.fullmatch(p.name)
            and b"strait-sim compare" in p.read_bytes()[:4096]]
