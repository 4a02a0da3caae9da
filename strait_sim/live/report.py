"""The validation report: one workload run live and in simulation, side by side.

For each class (high, low, all):

- latency (arrival to end of device-to-host copy, completed requests) mean, p50, p90,
  p95, p99, live and simulated, with the relative difference ``(sim - live) / live``;
- deadline violation rate, live and simulated, and the difference in percentage points;
- a two-sample Kolmogorov-Smirnov test of the two latency distributions
  (``scipy.stats.ks_2samp``);
- an equivalence test of the means (TOST: two one-sided Welch t-tests,
  ``scipy.stats.ttest_ind(equal_var=False)``) with margin +-``margin`` x the simulated
  mean: "equivalent" when both one-sided nulls are rejected at ``alpha``;
- the policy's prediction error (predicted vs observed service time), live and simulated:
  MAPE, p90 relative error, mean bias in ms and as a share of the mean observed service
  (:mod:`strait_sim.live.prediction`).

A stored comparison is a folder: ``live/`` and ``sim/`` (each a run folder that
:func:`strait_sim.results.load_results` reads), ``report.json``, ``report.md`` and one
PNG CDF overlay per class (``cdf_high.png``, ``cdf_low.png``, ``cdf_all.png``), all
written atomically. :func:`rerender` rebuilds the report from ``live/`` and ``sim/``.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.atomic import atomic_dir, atomic_file
from strait_sim.errors import UserError
from strait_sim.live.busy_check import describe_load
from strait_sim.live.prediction import prediction_accuracy
from strait_sim.metrics import class_metrics
from strait_sim.requests import PRIORITY_NAMES
from strait_sim.results import RunResult, dumps, load_results, nan_to_none, write_results

CLASSES = (*PRIORITY_NAMES, "all")
STATS = ("mean_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms")


def _subset(df: pd.DataFrame, cls: str) -> pd.DataFrame:
    return df if cls == "all" else df[df["priority"].astype(str) == cls]


def latencies_ms(df: pd.DataFrame) -> np.ndarray:
    """Latencies of the completed requests (on time or late), in ms."""
    done = df["status"].astype(str).isin(["on_time", "late"]).to_numpy()
    return (df["finish_s"].to_numpy()[done] - df["arrival_s"].to_numpy()[done]) * 1e3


def _rel(sim: float | None, live: float | None) -> float | None:
    if sim is None or live is None or live == 0:
        return None
    return (sim - live) / live


def ks_test(live: np.ndarray, sim: np.ndarray) -> dict:
    from scipy.stats import ks_2samp

    if len(live) < 1 or len(sim) < 1:
        return {"statistic": None, "pvalue": None, "n_live": len(live), "n_sim": len(sim)}
    res = ks_2samp(live, sim)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue),
            "n_live": len(live), "n_sim": len(sim)}


def tost_welch(live: np.ndarray, sim: np.ndarray, margin: float, alpha: float) -> dict:
    """Equivalence of the means within +-margin x mean(sim), by two one-sided Welch tests.

    H0 (not equivalent): mean(live) - mean(sim) <= -delta or >= +delta, delta =
    margin x mean(sim). Shifting one sample by delta leaves its variance unchanged, so each
    one-sided test is an ordinary Welch t-test of the shifted sample.
    """
    from scipy.stats import t as student_t
    from scipy.stats import ttest_ind

    out: dict = {"margin": margin, "alpha": alpha, "n_live": len(live), "n_sim": len(sim)}
    if len(live) < 2 or len(sim) < 2:
        return {**out, "pvalue": None, "equivalent": None, "why": "fewer than 2 samples"}
    delta = margin * float(np.mean(sim))
    diff = float(np.mean(live) - np.mean(sim))
    with warnings.catch_warnings():  # (near-)constant samples: the p-value says enough
        warnings.simplefilter("ignore", RuntimeWarning)
        lower = ttest_ind(live + delta, sim, equal_var=False, alternative="greater")
        upper = ttest_ind(live - delta, sim, equal_var=False, alternative="less")
    p = max(float(lower.pvalue), float(upper.pvalue))
    va, vb = np.var(live, ddof=1) / len(live), np.var(sim, ddof=1) / len(sim)
    se = math.sqrt(va + vb)
    ci = None
    if se > 0:
        dof = (va + vb) ** 2 / (va**2 / (len(live) - 1) + vb**2 / (len(sim) - 1))
        half = float(student_t.ppf(1 - alpha, dof)) * se
        ci = [diff - half, diff + half]
    if math.isnan(p):
        return {**out, "delta_ms": delta, "diff_ms": diff, "pvalue": None,
                "equivalent": None, "why": "zero variance"}
    return {**out, "delta_ms": delta, "diff_ms": diff, "pvalue": p, "equivalent": p < alpha,
            f"ci{int(round(100 * (1 - 2 * alpha)))}_diff_ms": ci}


def compare(live: RunResult, sim: RunResult, *, margin: float = 0.10,
            alpha: float = 0.05) -> dict:
    """The comparison's numbers (report.json's ``classes`` and ``overall`` blocks)."""
    classes = {}
    for cls in CLASSES:
        dl, ds = _subset(live.requests, cls), _subset(sim.requests, cls)
        ml, ms = class_metrics(dl), class_metrics(ds)
        ll, ls = latencies_ms(dl), latencies_ms(ds)
        latency = {s.removesuffix("_ms"): {"live_ms": ml[s], "sim_ms": ms[s],
                                           "rel_diff": _rel(ms[s], ml[s])} for s in STATS}
        vl, vs = ml["violation_rate"], ms["violation_rate"]
        classes[cls] = {
            "counts": {"live": {k: ml[k] for k in ("count", "on_time", "late", "dropped",
                                                   "rejected", "failed")},
                       "sim": {k: ms[k] for k in ("count", "on_time", "late", "dropped",
                                                  "rejected", "failed")}},
            "latency": latency,
            "violation": {"live": vl, "sim": vs,
                          "diff_pp": None if vl is None or vs is None else 100 * (vs - vl)},
            "ks": ks_test(ll, ls),
            "tost": tost_welch(ll, ls, margin, alpha),
            "prediction": {"live": prediction_accuracy(dl), "sim": prediction_accuracy(ds)},
        }
    return classes


def breakdown(live: RunResult, sim: RunResult) -> dict:
    """Where the time goes, per model: batch size, queueing wait, compute, service time.

    Medians over completed requests; ``wait`` is arrival to dispatch, ``service`` dispatch
    to end of device-to-host copy, ``compute`` the batch's compute phase.
    """
    out = {}
    for mode, run in (("live", live), ("sim", sim)):
        df = run.requests
        done = df[df["status"].astype(str).isin(["on_time", "late"])]
        for model, g in done.groupby(done["model"].astype(str), observed=True):
            row = out.setdefault(model, {})
            row[mode] = {
                "completed": len(g),
                "batch_size_mean": float(g["batch_size"].mean()) if "batch_size" in g else None,
                "wait_p50_ms": float(((g["start_s"] - g["arrival_s"]) * 1e3).median()),
                "compute_p50_ms": float(g["compute_ms"].median()) if "compute_ms" in g
                else None,
                "service_p50_ms": float(((g["finish_s"] - g["start_s"]) * 1e3).median()),
            }
    return out


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:+.1f}%"


def _p(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def render_markdown(report: dict) -> str:
    """report.md: the tables a reader needs, in the order they read them."""
    s = report["setup"]
    lines = [f"# Validation: `{s['policy']}` live on {s['device']} vs simulated", "",
             f"Command: `{report['command']}`", "",
             f"- profile: `{s['profile']}` ({s['profile_device']}), content hash "
             f"`{str(s['profile_hash'])[:12]}`",
             f"- live backend: {s['backend']}, {s['slots']} slot(s), max batch "
             f"{s['max_batch']}, seed {s['seed']}",
             f"- workload: `{json.dumps(s['workload'], sort_keys=True)}`",
             f"- live wall time {s['live_wall_s']:.1f} s; created {report['created']}",
             ""]
    if s.get("drift"):
        lines += [f"- drift probe before the run: {s['drift']['message']}", ""]
    if s.get("warnings"):
        lines += ["**Warnings:**", ""] + [f"- {w}" for w in s["warnings"]] + [""]
    lines += ["## Latency (ms, completed requests) and deadline violations", "",
              "| class | metric | live | sim | sim vs live |",
              "|---|---|---:|---:|---:|"]
    for cls in CLASSES:
        c = report["classes"][cls]
        for stat, v in c["latency"].items():
            lines.append(f"| {cls} | {stat} | {_ms(v['live_ms'])} | {_ms(v['sim_ms'])} | "
                         f"{_pct(v['rel_diff'])} |")
        v = c["violation"]
        pp = "-" if v["diff_pp"] is None else f"{v['diff_pp']:+.1f} pp"
        lines.append(f"| {cls} | violation rate | {_pct(v['live']).lstrip('+')} | "
                     f"{_pct(v['sim']).lstrip('+')} | {pp} |")
    margin = report["margin"]
    lines += ["", f"## Tests (alpha {report['alpha']})", "",
              "| class | n live | n sim | KS D | KS p | TOST p (means within "
              f"+-{100 * margin:.0f}% of sim) | equivalent |",
              "|---|---:|---:|---:|---:|---:|---|"]
    for cls in CLASSES:
        k, t = report["classes"][cls]["ks"], report["classes"][cls]["tost"]
        eq = {True: "yes", False: "no", None: "-"}[t.get("equivalent")]
        lines.append(f"| {cls} | {k['n_live']} | {k['n_sim']} | {_p(k['statistic'])} | "
                     f"{_p(k['pvalue'])} | {_p(t.get('pvalue'))} | {eq} |")
    lines += ["", "## Policy prediction error (predicted vs observed service time)", "",
              "| class | live MAPE | sim MAPE | live p90 rel. error | sim p90 rel. error | "
              "live bias ms | sim bias ms | live bias / mean service | "
              "sim bias / mean service |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cls in CLASSES:
        pl, ps = (report["classes"][cls]["prediction"][m] for m in ("live", "sim"))
        if not pl.get("predictions") and not ps.get("predictions"):
            lines.append(f"| {cls} | (policy makes no predictions) | | | | | | | |")
            continue
        lines.append(
            f"| {cls} | {_pct(pl.get('mape')).lstrip('+')} | {_pct(ps.get('mape')).lstrip('+')}"
            f" | {_pct(pl.get('p90_rel_error')).lstrip('+')} | "
            f"{_pct(ps.get('p90_rel_error')).lstrip('+')} | {_ms(pl.get('mean_bias_ms'))} | "
            f"{_ms(ps.get('mean_bias_ms'))} | {_pct(pl.get('bias_share'))} | "
            f"{_pct(ps.get('bias_share'))} |")
    parts = report.get("breakdown", {})
    if parts:
        lines += ["", "## Where the time goes (medians per model, completed requests)", "",
                  "| model | mode | completed | mean batch | wait ms | compute ms | "
                  "service ms |", "|---|---|---:|---:|---:|---:|---:|"]
        for model, modes in parts.items():
            for mode in ("live", "sim"):
                r = modes.get(mode)
                if r:
                    lines.append(f"| {model} | {mode} | {r['completed']} | "
                                 f"{_p(r['batch_size_mean'])} | {_ms(r['wait_p50_ms'])} | "
                                 f"{_ms(r['compute_p50_ms'])} | {_ms(r['service_p50_ms'])} |")
    cvp = report.get("executor", {}).get("compute_vs_profile", {})
    if cvp:
        lines += ["", "## Live compute time alone and co-located vs the profile's solo median",
                  "", "| model@batch | profile solo p50 ms | live alone n | live alone p50 ms "
                  "| live co-located n | live co-located p50 ms |",
                  "|---|---:|---:|---:|---:|---:|"]
        for key, r in cvp.items():
            a, c = r.get("alone", {}), r.get("co_run", {})
            lines.append(f"| {key} | {_ms(r['profile_solo_p50_ms'])} | {a.get('count', 0)} | "
                         f"{_ms(a.get('p50_ms'))} | {c.get('count', 0)} | "
                         f"{_ms(c.get('p50_ms'))} |")
    counts = ["", "## Request outcomes", "", "| class | mode | requests | on time | late | "
              "dropped | rejected | failed |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for cls in CLASSES:
        for mode in ("live", "sim"):
            c = report["classes"][cls]["counts"][mode]
            counts.append(f"| {cls} | {mode} | {c['count']} | {c['on_time']} | {c['late']} | "
                          f"{c['dropped']} | {c['rejected']} | {c['failed']} |")
    lines += counts
    ex = report.get("executor", {})
    if ex:
        lines += ["", "## Live executor overheads (ms)", "",
                  "| quantity | count | mean | p50 | p90 | p99 | max |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        rows = [(k, ex.get(k, {})) for k in ("dispatch_delay_ms", "release_lag_ms",
                                              "completion_lag_ms", "timer_lag_ms", "event_ms")]
        rows += [(f"policy {hook}", d) for hook, d in ex.get("policy_ms", {}).items()]
        for name, d in rows:
            if not d.get("count"):
                continue
            lines.append(f"| {name} | {d['count']} | " + " | ".join(
                _ms(d.get(q)) for q in ("mean", "p50", "p90", "p99", "max")) + " |")
        lines += ["", f"Executor busy {100 * (ex.get('executor_busy_fraction') or 0):.1f}% of "
                  f"wall time (policy {100 * (ex.get('policy_busy_fraction') or 0):.2f}%); "
                  f"failed batches {ex.get('failed_batches', 0)}; interrupted "
                  f"{ex.get('interrupted', False)}; device load check: "
                  f"{_busy_text(ex.get('busy_check', {}))}."]
    lines += ["", "## CDFs", ""] + [f"![{cls}](cdf_{cls}.png)" for cls in CLASSES] + [""]
    return "\n".join(lines)


def _busy_text(b: dict) -> str:
    if not b.get("checked"):
        return f"not checked ({b.get('why', '?')})"
    return describe_load(b) + (" (forced)" if b.get("busy_reasons") else "")


def cdf_png(live: np.ndarray, sim: np.ndarray, title: str) -> bytes:
    """One CDF overlay, live vs simulated latency, as PNG bytes."""
    from matplotlib.figure import Figure  # not pyplot: a notebook keeps its backend

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    for values, label, style in ((live, "live", "-"), (sim, "simulated", "--")):
        if len(values):
            xs = np.sort(values)
            ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), style, where="post",
                    label=f"{label} (n={len(xs)})")
    from strait_sim.plotting import log_axis

    log_axis(ax, "x")
    ax.set_xlabel("latency, arrival to end of D2H (ms, log scale)")
    ax.set_ylabel("share of completed requests")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def build_report(live: RunResult, sim: RunResult, *, command: str, margin: float = 0.10,
                 alpha: float = 0.05, created: str | None = None) -> dict:
    """report.json: setup, per-class comparison, live executor overheads."""
    ls, ss = live.summary, sim.summary
    warnings = []
    if ls.get("mode") != "live" or ss.get("mode") != "sim":
        warnings.append(f"expected a live and a simulated run, got modes {ls.get('mode')} "
                        f"and {ss.get('mode')}")
    if ls.get("workload") != ss.get("workload") or ls.get("seed") != ss.get("seed"):
        warnings.append("the two runs do not share workload and seed")
    prof = ls.get("profile", {})
    device = ls.get("device", {}).get("name", "?")
    if prof.get("kind") != ls.get("device", {}).get("kind"):
        warnings.append(f"the profile describes a {prof.get('kind')} device, the live run "
                        f"was on a {ls.get('device', {}).get('kind')} device")
    elif prof.get("device") not in (device, None) and not str(prof.get("device")).startswith(
            "synthetic"):
        warnings.append(f"the profile was measured on '{prof.get('device')}', the live run "
                        f"on '{device}'")
    if str(prof.get("device", "")).startswith("synthetic"):
        warnings.append("the profile is a synthetic test fixture, not a measurement of this "
                        "device: the comparison exercises the machinery only")
    ex = ls.get("executor", {})
    if ex.get("interrupted"):
        warnings.append(f"the live run was interrupted; {ex.get('unfinished_marked_failed')} "
                        f"unfinished request(s) were marked failed")
    if ex.get("failed_batches"):
        warnings.append(f"{ex['failed_batches']} batch(es) failed on the device")
    busy = ex.get("busy_check", {})
    if busy.get("busy_reasons"):
        warnings.append("the device was busy when the live run started ("
                        + "; ".join(busy["busy_reasons"]) + "), run with --force")
    system = ls.get("system", {})
    return {
        "command": command,
        "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "margin": margin,
        "alpha": alpha,
        "setup": {"policy": ls.get("policy"), "device": device,
                  "backend": ex.get("backend"), "profile": prof.get("name"),
                  "profile_device": prof.get("device"), "profile_hash": prof.get("content_hash"),
                  "slots": system.get("slots"), "max_batch": system.get("max_batch"),
                  "seed": ls.get("seed"), "workload": ls.get("workload"),
                  "live_wall_s": ex.get("wall_s", ls.get("engine", {}).get("wall_s", 0.0)),
                  "warnings": warnings},
        "classes": compare(live, sim, margin=margin, alpha=alpha),
        "breakdown": breakdown(live, sim),
        "executor": {k: v for k, v in ex.items() if k not in ("failures",)},
    }


def _figures(live: RunResult, sim: RunResult, policy: str) -> dict[str, bytes]:
    out = {}
    for cls in CLASSES:
        out[f"cdf_{cls}.png"] = cdf_png(latencies_ms(_subset(live.requests, cls)),
                                        latencies_ms(_subset(sim.requests, cls)),
                                        f"{policy}: {cls} priority" if cls != "all"
                                        else f"{policy}: all requests")
    return out


def write_validation(out: Path | str, live: RunResult, sim: RunResult, *, command: str,
                     margin: float = 0.10, alpha: float = 0.05) -> dict:
    """Write the whole comparison folder atomically; return the report dict."""
    report = build_report(live, sim, command=command, margin=margin, alpha=alpha)
    figures = _figures(live, sim, str(report["setup"]["policy"]))
    with atomic_dir(Path(out), "validation") as tmp:
        write_results(tmp / "live", live.requests, live.summary)
        write_results(tmp / "sim", sim.requests, sim.summary)
        (tmp / "report.json").write_text(dumps(nan_to_none(report)))
        (tmp / "report.md").write_text(render_markdown(report))
        for name, data in figures.items():
            (tmp / name).write_bytes(data)
    return report


def rerender(folder: Path | str, *, margin: float | None = None,
             alpha: float | None = None) -> dict:
    """Rebuild report.json, report.md and the CDFs from a stored comparison's runs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not found (expected a folder written by "
                        f"`strait-sim validate --live --out`)")
    old: dict = {}
    rpath = folder / "report.json"
    if rpath.is_file():
        try:
            old = json.loads(rpath.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{rpath}, line {exc.lineno}: not valid JSON: {exc.msg}") from None
    live, sim = load_results(folder / "live"), load_results(folder / "sim")
    report = build_report(live, sim, command=old.get("command", "(unknown)"),
                          margin=old.get("margin", 0.10) if margin is None else margin,
                          alpha=old.get("alpha", 0.05) if alpha is None else alpha,
                          created=old.get("created"))
    report["rendered"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for name, data in _figures(live, sim, str(report["setup"]["policy"])).items():
        with atomic_file(folder / name, "wb") as fh:
            fh.write(data)
    with atomic_file(folder / "report.md") as fh:
        fh.write(render_markdown(report))
    with atomic_file(folder / "report.json") as fh:
        fh.write(dumps(nan_to_none(report)))
    return report


def attach_drift(folder: Path | str, drift: dict, message: str) -> None:
    """Record the pre-run drift probe (strait_sim.live.drift) in a written comparison:
    report.json's setup.drift, a warning when flagged, and report.md re-rendered."""
    folder = Path(folder)
    report = json.loads((folder / "report.json").read_text())
    setup = report.setdefault("setup", {})
    setup["drift"] = {"ratio": drift.get("ratio"), "flagged": drift.get("flagged"),
                      "tolerance": drift.get("tolerance"), "message": message,
                      "points": [{k: p[k] for k in ("model", "batch", "profile_ms", "now_ms",
                                                    "ratio")} for p in drift.get("points", [])]}
    if drift.get("flagged"):
        setup.setdefault("warnings", []).append(message)
    with atomic_file(folder / "report.json") as fh:
        fh.write(dumps(nan_to_none(report)))
    with atomic_file(folder / "report.md") as fh:
        fh.write(render_markdown(report))

