"""A validation study: live against simulated, replicated, at several loads, per class.

Why: one live run and one seed give per-request latencies that queueing makes strongly
autocorrelated (a busy period delays everything in it), so treating them as independent
samples (as a KS or Welch test on one run does) is overconfident both ways. The
statistically sound unit is the *run*: ``--repeats K`` runs each (load, policy) cell K
times with seeds ``seed .. seed + K - 1``, live and simulated with the same seed (paired),
and the uncertainty of a sim - live difference comes from the spread of the K paired
differences (the method of independent replications, Student t with K - 1 degrees of
freedom). With K = 1 a moving-block bootstrap over each run's request series (blocks of
about sqrt(n) consecutive requests, which keep the busy periods whole) stands in, and the
report says which was used.

Per policy, load and class (high, low, all): mean, p50, p95, p99 latency of completed
requests and the violation rate, live and simulated; the relative error of each latency
statistic, the violation difference in percentage points, a 95% interval of each, and
whether the cell meets the fidelity targets (|error| <= 10% for mean and p95, <= 3 pp for
violations) where the live device utilisation is at most 0.85 (above it, queueing makes
any model's error explode, and the target does not apply).

Layout: ``OUT/<policy>/load-<L>/rep-<k>/`` is an ordinary validate folder (live/, sim/,
report.md); ``OUT/study.json``, ``OUT/study.md`` and ``OUT/error_vs_load_<policy>.png``
sum it up. Cells already present are reused, so an interrupted study resumes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim.errors import UserError
from strait_sim.results import nan_to_none

CLASSES = ("high", "low", "all")
LAT_STATS = ("mean", "p50", "p95", "p99")
TARGET_REL = 0.10
TARGET_PP = 3.0
MAX_UTIL = 0.85
BOOTSTRAP = 400


def parse_loads(text: str | None) -> list[float] | None:
    """``--loads 0.2,0.4``: positive finite numbers, or one clear error."""
    if text is None:
        return None
    out = []
    for part in text.split(","):
        part = part.strip()
        try:
            v = float(part)
        except ValueError:
            raise UserError(f"--loads: '{part}' is not a number (expected e.g. "
                            f"0.2,0.4,0.6,0.8)") from None
        if not math.isfinite(v) or v <= 0:
            raise UserError(f"--loads: every load must be a positive number, got {part}")
        out.append(v)
    if not out:
        raise UserError("--loads: give at least one load")
    return out


def check_repeats(repeats: int) -> int:
    if repeats < 1:
        raise UserError(f"--repeats must be >= 1, got {repeats}")
    return repeats


def _cls(df: pd.DataFrame, cls: str) -> pd.DataFrame:
    return df if cls == "all" else df[df["priority"].astype(str) == cls]


def run_stats(df: pd.DataFrame) -> dict[str, float]:
    """mean/p50/p95/p99 latency (ms) of completed requests and the violation rate."""
    df = df.sort_values("arrival_s", kind="stable")
    status = df["status"].astype(str).to_numpy()
    done = np.isin(status, ("on_time", "late"))
    lat = (df["finish_s"].to_numpy()[done] - df["arrival_s"].to_numpy()[done]) * 1e3
    n = len(df)
    out = {"n": float(n), "violation": float(np.mean(status != "on_time")) if n else math.nan}
    if len(lat):
        out.update(mean=float(lat.mean()), p50=float(np.percentile(lat, 50)),
                   p95=float(np.percentile(lat, 95)), p99=float(np.percentile(lat, 99)))
    else:
        out.update({s: math.nan for s in LAT_STATS})
    return out


def _block_bootstrap(df: pd.DataFrame, rng: np.random.Generator, n_boot: int
                     ) -> list[dict[str, float]]:
    """Moving-block bootstrap replicas of :func:`run_stats` over the arrival-ordered
    request series (blocks of ~sqrt(n) requests)."""
    df = df.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    n = len(df)
    if n < 4:
        return []
    block = max(2, int(math.sqrt(n)))
    starts = np.arange(0, n - block + 1)
    k = math.ceil(n / block)
    out = []
    for _ in range(n_boot):
        s = rng.choice(starts, size=k)
        idx = (s[:, None] + np.arange(block)[None, :]).ravel()[:n]
        out.append(run_stats(df.iloc[idx]))
    return out


def _interval(diffs: np.ndarray) -> tuple[float, float] | None:
    """95% t interval of the mean of K paired differences (K >= 2)."""
    from scipy.stats import t as student_t

    d = diffs[np.isfinite(diffs)]
    if len(d) < 2:
        return None
    half = float(student_t.ppf(0.975, len(d) - 1)) * float(np.std(d, ddof=1)) / math.sqrt(len(d))
    m = float(np.mean(d))
    return (m - half, m + half)


def summarize_cell(pairs: list[tuple[pd.DataFrame, pd.DataFrame]], util: list[float | None],
                   *, seed: int = 0) -> dict:
    """Per class: live and sim values (means over repeats), errors and 95% intervals."""
    rng = np.random.default_rng(seed)
    out: dict = {"repeats": len(pairs),
                 "method": "independent replications (paired by seed), t interval"
                 if len(pairs) >= 2 else "moving-block bootstrap within the one run",
                 "live_utilization": float(np.mean([u for u in util if u is not None]))
                 if any(u is not None for u in util) else None,
                 "classes": {}}
    for cls in CLASSES:
        lv = [run_stats(_cls(live, cls)) for live, _ in pairs]
        sv = [run_stats(_cls(sim, cls)) for _, sim in pairs]
        if not any(r["n"] for r in lv):
            continue
        c: dict = {"n_live": int(sum(r["n"] for r in lv)), "n_sim": int(sum(r["n"] for r in sv))}
        boots = None
        if len(pairs) == 1:
            boots = (_block_bootstrap(_cls(pairs[0][0], cls), rng, BOOTSTRAP),
                     _block_bootstrap(_cls(pairs[0][1], cls), rng, BOOTSTRAP))
        for stat in (*LAT_STATS, "violation"):
            live_k = np.array([r[stat] for r in lv])
            sim_k = np.array([r[stat] for r in sv])
            live_m, sim_m = float(np.nanmean(live_k)), float(np.nanmean(sim_k))
            if stat == "violation":
                err = 100.0 * (sim_m - live_m)  # percentage points
                diffs = 100.0 * (sim_k - live_k)
            else:
                err = (sim_m - live_m) / live_m if live_m > 0 else math.nan
                diffs = (sim_k - live_k) / live_m if live_m > 0 else np.full(len(sim_k), math.nan)
            ci = _interval(diffs)
            if ci is None and boots is not None and boots[0] and boots[1]:
                bl = np.array([b[stat] for b in boots[0]])
                bs = np.array([b[stat] for b in boots[1]])
                d = (100.0 * (bs - bl)) if stat == "violation" else (bs - bl) / live_m
                d = d[np.isfinite(d)]
                if len(d):
                    ci = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
            c[stat] = {"live": live_m, "sim": sim_m, "error": err,
                       "ci95": list(ci) if ci is not None else None,
                       "per_repeat": {"live": live_k.tolist(), "sim": sim_k.tolist()}}
        u = out["live_utilization"]
        applies = u is None or u <= MAX_UTIL
        ok = all(abs(c[s]["error"]) <= TARGET_REL for s in ("mean", "p95")
                 if math.isfinite(c[s]["error"])) and abs(c["violation"]["error"]) <= TARGET_PP
        c["target"] = {"applies": applies, "met": bool(ok) if applies else None}
        out["classes"][cls] = c
    return out


CellRunner = Callable[..., object]


def load_tag(load: float | None) -> str:
    """A cell's load as its folder and study.json name it ('0.4', or 'default')."""
    return "default" if load is None else f"{load:g}"


def cell_dir(out: Path, policy: str, load: float | None, k: int) -> Path:
    """The validate folder of one cell of a study in ``out``."""
    return out / policy / f"load-{load_tag(load)}" / f"rep-{k}"


def study_cells(out: Path, policies: list[str], load_list: list[float | None],
                repeats: int) -> Iterator[tuple[int, str, float | None, Path]]:
    """(repeat, policy, load, folder) of every cell, in the order a study runs them:
    repeat by repeat, every policy and load in each (the device drifts over minutes, and
    cells run one policy and load after another would take that drift for a difference
    between loads; docs/validation.md)."""
    for k in range(repeats):
        for policy in policies:
            for load in load_list:
                yield k, policy, load, cell_dir(out, policy, load, k)


def study_record(policies: list[str], loads: list[float | None], repeats: int, seed: int,
                 cells: dict) -> dict:
    """study.json's content: the study's shape, the targets and the summarised cells."""
    return {"policies": policies, "loads": list(loads), "repeats": repeats, "seed": seed,
            "targets": {"latency_rel": TARGET_REL, "violation_pp": TARGET_PP,
                        "max_live_utilization": MAX_UTIL}, "cells": cells}


def check_study_finished(folder: Path) -> None:
    """One line for a study folder without study.json yet (its marker says it is one):
    ``report DIR`` and ``validate --report DIR`` both say how to finish it, rather than
    naming a cell file that is missing."""
    from strait_sim.output_folder import read_marker

    marker = read_marker(folder)
    if not (folder / "study.json").is_file() and marker is not None and \
            marker["kind"] == "validation-study":
        raise UserError(f"{folder}: a validation study that has not finished (no "
                        "study.json yet): run the validate command that made it again to "
                        "complete it, then report it")


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study's live cell: the study stops there (the next cells are not
    started) and says how to resume it."""


def live_interrupted(cell: Path) -> bool:
    """Whether the cell's live run was stopped by Ctrl-C (its summary says so)."""
    try:
        summary = json.loads((cell / "live" / "summary.json").read_text())
    except (OSError, ValueError):
        return False
    executor = summary.get("executor") if isinstance(summary, dict) else None
    return bool(isinstance(executor, dict) and executor.get("interrupted"))


def cell_complete(cell: Path) -> bool:
    """A cell is reused on resume only when its comparison was written and its live run
    ran to the end: an interrupted live run is a partial sample (its unfinished requests
    marked failed), not a replicate of the cell."""
    return (cell / "report.json").is_file() and not live_interrupted(cell)


def progress_line(out: Path, policies: list[str], loads: list[float] | None,
                  repeats: int) -> str:
    """How far a stopped study got, counted from its cells on disk (the record a resume
    reuses), wherever the Ctrl-C fell: in a cell's live run or simulation, in the drift
    probe, between cells."""
    load_list: list[float | None] = list(loads) if loads else [None]
    cells = [cell for *_, cell in study_cells(out, policies, load_list, repeats)]
    done = sum(cell_complete(cell) for cell in cells)
    return (f"{done} of {len(cells)} cells of the study are complete in {out}; the same "
            "command resumes it")


def run_study(*, policies: list[str], loads: list[float] | None, repeats: int, seed: int,
              out: Path, run_cell: CellRunner, load_key: str = "load",
              quiet: bool = True, log: Callable[[str], None] = lambda _m: None) -> dict:
    """Run (or reuse) every cell, then write study.json, study.md and the plots."""
    check_repeats(repeats)
    load_list: list[float | None] = list(loads) if loads else [None]

    for k, policy, load, cell in study_cells(out, policies, load_list, repeats):
        if not cell_complete(cell):
            log(f"study: repeat {k + 1}/{repeats}, {policy} load {load_tag(load)}")
            kw = {} if load is None else {load_key: load}
            run_cell(policy=policy, out=cell, seed=seed + k, **kw)
            if live_interrupted(cell):
                raise StudyInterrupted(progress_line(out, policies, loads, repeats)
                                       + " (the interrupted cell runs again)")
    study = summarize_study(out, policies, load_list, repeats, seed)
    write_study(out, study)
    return study


def summarize_study(out: Path, policies: list[str], load_list: list[float | None],
                    repeats: int, seed: int) -> dict:
    """study.json's content, from the cells on disk (every one must be there)."""
    from strait_sim.live.prediction import cell_block
    from strait_sim.results import load_results

    cells: dict = {}
    for policy in policies:
        for load in load_list:
            pairs, util = [], []
            for k in range(repeats):
                cell = cell_dir(out, policy, load, k)
                live, sim = load_results(cell / "live"), load_results(cell / "sim")
                pairs.append((live.requests, sim.requests))
                util.append(live.summary.get("gpu_busy_fraction"))
            summary = summarize_cell(pairs, util, seed=seed)
            prediction = cell_block(pairs)  # the policy's own accuracy, live beside sim
            if prediction is not None:
                summary["prediction"] = prediction
            cells.setdefault(policy, {})[load_tag(load)] = summary
    return study_record(policies, load_list, repeats, seed, cells)


def stored_study(folder: Path) -> dict:
    """A finished study summed up again from its cells, without running anything: what
    ``validate --report DIR`` writes back and ``report DIR`` shows. Only the study's shape
    is read from study.json (the cells are the record); a damaged study.json or a missing
    cell is one line."""
    policies, load_list, repeats, seed = study_shape(folder / "study.json")
    for *_, cell in study_cells(folder, policies, load_list, repeats):
        if not cell_complete(cell):
            raise UserError(f"{cell}: this cell of the study has no report.json or its live "
                            f"run was interrupted; re-run the study with --live to complete "
                            f"it")
    return summarize_study(folder, policies, load_list, repeats, seed)


def study_shape(path: Path) -> tuple[list[str], list[float | None], int, int]:
    """(policies, loads, repeats, seed) of a stored study.json, each field checked.

    Why every field: study.json may have been edited or damaged, and a shape that passes
    here drives everything after it; an empty policy list once gave a traceback in
    ``report`` (or a "0 policies" study), ``repeats: 0`` blamed a --repeats flag nobody
    gave and a negative seed failed inside numpy. Each problem is one line naming
    ``path`` and the field."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a study written by validate (not valid JSON: {exc})"
                        ) from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a study written by validate (not a JSON object)")
    for key in ("policies", "loads", "repeats", "seed"):
        if key not in data:
            raise UserError(f"{path}: not a study written by validate (no '{key}' field)")
    return (_stored_policies(path, data["policies"]), _stored_loads(path, data["loads"]),
            _stored_whole(path, "repeats", data["repeats"], 1),
            _stored_whole(path, "seed", data["seed"], 0))


def _shown(value: object, width: int = 60) -> str:
    """A field's value as study.json spells it, cut to ``width`` characters: the error
    stays one readable line however large the field."""
    text = json.dumps(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def _stored_policies(path: Path, value: object) -> list[str]:
    """study.json's ``policies``: a non-empty list of names, each one folder of cells."""
    if not (isinstance(value, list) and value and all(
            isinstance(p, str) and p.strip() and "/" not in p and "\\" not in p
            and p not in (".", "..") for p in value)):
        raise UserError(f"{path}: 'policies' must be a non-empty list of policy names, "
                        f"got {_shown(value)}")
    return value


def _stored_loads(path: Path, value: object) -> list[float | None]:
    """study.json's ``loads``: positive numbers (one cell each), or [null] for a study of
    the workload's own load."""
    if value == [None]:
        return [None]
    if not (isinstance(value, list) and value and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            and x > 0 for x in value)):
        raise UserError(f"{path}: 'loads' must be a list of positive numbers, or [null] "
                        f"for one cell at the workload's load, got {_shown(value)}")
    return [float(x) for x in value]


def _stored_whole(path: Path, key: str, value: object, low: int) -> int:
    """A whole-number field of study.json (``repeats``, ``seed``) of at least ``low``."""
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer())
    if not whole or not low <= value < 2**63:  # type: ignore[operator]
        raise UserError(f"{path}: '{key}' must be a whole number >= {low}, got "
                        f"{_shown(value)}")
    return int(value)  # type: ignore[arg-type]


#: The columns of a study's table, one table per policy (study.md and report.html).
STUDY_COLUMNS = ("load", "util", "class", "mean live/sim (ms)", "err mean", "err p50",
                 "err p95", "err p99", "viol live/sim", "diff pp", "target")


def study_method(study: dict) -> str:
    """The sentence that says how a study's errors and intervals were computed."""
    return (f"{study['repeats']} repeat(s) per cell (seeds {study['seed']}.."
            f"{study['seed'] + study['repeats'] - 1}); error = (sim - live) / live for "
            "latencies, sim - live in percentage points for violations; 95% intervals by "
            "independent replications (K >= 2) or a moving-block bootstrap (K = 1). Targets: "
            f"|error| <= {100 * TARGET_REL:.0f}% (mean, p95), <= {TARGET_PP:g} pp "
            f"(violations), where live utilisation <= {MAX_UTIL}.")


def study_rows(by_load: dict) -> list[tuple[str, ...]]:
    """One policy's table (:data:`STUDY_COLUMNS`) as text cells, one row per load and
    class: the one formatting behind study.md and the HTML page."""

    def pct(x: float | None) -> str:
        return "-" if x is None or not math.isfinite(x) else f"{100 * x:+.1f}%"

    def ci(c: dict, scale: float, unit: str) -> str:
        v = c.get("ci95")
        return "" if not v else f" [{scale * v[0]:+.1f}, {scale * v[1]:+.1f}]{unit}"

    rows = []
    for tag, cell in by_load.items():
        u = cell.get("live_utilization")
        for cls, c in cell["classes"].items():
            t = c["target"]
            verdict = "n/a (util > 0.85)" if not t["applies"] else (
                "met" if t["met"] else "missed")
            rows.append((
                tag, "-" if u is None else f"{u:.2f}", cls,
                f"{c['mean']['live']:.1f} / {c['mean']['sim']:.1f}",
                f"{pct(c['mean']['error'])}{ci(c['mean'], 100, '%')}",
                pct(c["p50"]["error"]), f"{pct(c['p95']['error'])}{ci(c['p95'], 100, '%')}",
                pct(c["p99"]["error"]),
                f"{100 * c['violation']['live']:.1f}% / {100 * c['violation']['sim']:.1f}%",
                f"{c['violation']['error']:+.1f}{ci(c['violation'], 1, '')}", verdict))
    return rows


def render_study(study: dict) -> str:
    lines = ["# Validation study: simulated against live", "", study_method(study), ""]
    for policy, by_load in study["cells"].items():
        lines += [f"## {policy}", "", "| " + " | ".join(STUDY_COLUMNS) + " |",
                  "|" + "---|" * len(STUDY_COLUMNS)]
        lines += ["| " + " | ".join(row) + " |" for row in study_rows(by_load)]
        lines.append("")
    from strait_sim.live.prediction import render_study_block

    lines += render_study_block(study)
    return "\n".join(lines) + "\n"


def error_plot(study: dict, policy: str) -> bytes:
    """Error against load per class: mean, p95, p99 (%) and violations (pp).

    Drawn on a figure outside pyplot, so that ``report`` (from a notebook too) leaves the
    caller's matplotlib backend and open figures alone."""
    import io

    from matplotlib.figure import Figure

    by_load = study["cells"][policy]
    tags = [t for t in by_load if t != "default"] or list(by_load)
    xs = [float(t) if t != "default" else 0.0 for t in tags]
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    for cls, style in zip(CLASSES, ("-o", "--s", ":^"), strict=True):
        for stat in ("mean", "p95", "p99"):
            ys = [100 * by_load[t]["classes"].get(cls, {}).get(stat, {}).get("error", math.nan)
                  if cls in by_load[t]["classes"] else math.nan for t in tags]
            axes[0].plot(xs, ys, style, label=f"{cls} {stat}")
        vs = [by_load[t]["classes"][cls]["violation"]["error"] if cls in by_load[t]["classes"]
              else math.nan for t in tags]
        axes[1].plot(xs, vs, style, label=cls)
    axes[0].axhspan(-100 * TARGET_REL, 100 * TARGET_REL, color="green", alpha=0.1)
    axes[1].axhspan(-TARGET_PP, TARGET_PP, color="green", alpha=0.1)
    axes[0].set_ylabel("latency error, sim vs live (%)")
    axes[1].set_ylabel("violation rate, sim - live (pp)")
    for ax in axes:
        ax.set_xlabel("offered load")
        ax.axhline(0, color="k", lw=0.5)
        ax.legend(fontsize=7)
    fig.suptitle(f"{policy}: error against load ({study['repeats']} repeat(s))")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return buf.getvalue()


def write_study(out: Path, study: dict) -> None:
    from strait_sim.atomic import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    with atomic_file(out / "study.json") as fh:
        fh.write(json.dumps(nan_to_none(study), indent=1))
    with atomic_file(out / "study.md") as fh:
        fh.write(render_study(study))
    for policy in study["cells"]:
        with atomic_file(out / f"error_vs_load_{policy}.png", "wb") as fh:
            fh.write(error_plot(study, policy))
