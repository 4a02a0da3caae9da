"""``strait-sim report DIR``: one self-contained HTML page for a run, a comparison, a
validation or a validation-study folder.

A folder of Parquet, JSON, CSV and PNG files is complete but not something one mails to a
colleague or attaches to a paper's artefact. This page is: every table is HTML, every
figure a PNG embedded as a data URI, so it opens offline in any browser, and it names the
command that produced the results and where the profile behind them came from (device,
when and how it was measured, its content hash), so a reader can judge and repeat them.

Which kind of folder it is follows from its files: ``study.json`` (a ``validate`` study,
``--loads``/``--repeats``), ``report.json`` (``validate``), ``comparison.csv``
(``compare``), ``summary.json`` + ``requests.parquet`` (``run``).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from strait_sim import __version__
from strait_sim.atomic import atomic_file
from strait_sim.errors import UserError
from strait_sim.results import check_shape, read_json

COMMAND_FILE = "command.txt"  # written next to results by the CLI: the producing command
CLASSES = ("high", "low")

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;
max-width:60rem;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .55rem;text-align:right}
th{background:#f2f2f2}td.l,th.l{text-align:left}
code,pre{background:#f6f6f6;padding:.1rem .3rem;border-radius:3px;font-size:.85rem}
pre{padding:.6rem;white-space:pre-wrap;word-break:break-all}
figure{margin:1rem 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.85rem;color:#555}.note{color:#555;font-size:.9rem}
.warn{color:#8a4b00}
"""


# -- small HTML helpers ---------------------------------------------------------------


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def table_html(headers: Sequence[str], rows: Iterable[Sequence[object]], *,
               table_id: str, left: int = 1) -> str:
    """A table; the first ``left`` columns are left-aligned (labels), the rest numbers."""
    head = "".join(f'<th class="{"l" if i < left else ""}">{esc(h)}</th>'
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{esc(c)}</td>'
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure_html(png: bytes, caption: str, fig_id: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure id="{fig_id}"><img alt="{esc(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{esc(caption)}</figcaption>'
            f"</figure>")


def pct(v: object) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.1f}%"


def ms(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def num(v: object, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "-"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _missing(v: object) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def interval(row: object, key: str, *, scale: float = 1.0) -> str:
    """``mean (lo–hi)`` from a table row's ``key``, ``key_lo``, ``key_hi`` (the interval
    kept within the metric's range); the mean alone where the folder has no such
    interval (written by an older version: its t half-width could leave the range)."""
    get = row.get  # type: ignore[attr-defined]
    mean, lo, hi = get(key), get(f"{key}_lo"), get(f"{key}_hi")
    if _missing(mean):
        return "-"
    text = f"{scale * mean:.1f}"
    if not _missing(lo) and not _missing(hi) and hi > lo:
        text += f" ({scale * lo:.1f}–{scale * hi:.1f})"
    return text


# -- provenance -----------------------------------------------------------------------


def profile_provenance(info: dict) -> list[tuple[str, str]]:
    """Rows (what, value) on the profile a run used: from the run's summary, completed by
    the bundle itself when it can still be found with the same content hash."""
    rows = [("profile", info.get("name") or "?"), ("device", info.get("device") or "?"),
            ("device kind", info.get("kind") or "?"),
            ("content hash", info.get("content_hash") or "?")]
    name = info.get("name")
    if not name:
        return rows
    try:
        from strait_sim.profile_bundle import load_bundle

        bundle = load_bundle(name)
    except Exception:  # a folder that moved, a profile not installed here: say so
        rows.append(("bundle", "not found on this machine; provenance from the run only"))
        return rows
    if info.get("content_hash") and bundle.content_hash != info["content_hash"]:
        rows.append(("bundle", f"the bundle named '{name}' here has a different content "
                     "hash; its details are not shown"))
        return rows
    meta = bundle.meta
    backend = meta.get("backend", {})
    software = meta.get("software", {})
    rows += [("measured", str(meta.get("created", "?"))),
             ("backend", ", ".join(f"{k} {v}" for k, v in backend.items()) or "?"),
             ("software", ", ".join(f"{k} {v}" for k, v in software.items() if v) or "?")]
    from strait_sim.profile_registry import bundled_profiles

    synthetic = [e.synthetic for e in bundled_profiles() if e.name == name]
    if synthetic and synthetic[0]:
        rows.append(("nature", "synthetic test fixture, not a measurement of a device"))
    for i, session in enumerate(meta.get("sessions", []) or []):
        if session.get("command"):
            rows.append((f"measured by (session {i + 1})", session["command"]))
    if meta.get("notes"):
        rows.append(("notes", str(meta["notes"])))
    return rows


def command_of(folder: Path, fallback: str) -> str:
    path = folder / COMMAND_FILE
    if path.is_file():
        return path.read_text().strip()
    return fallback


# -- figures --------------------------------------------------------------------------


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    """A figure outside pyplot: the page's figures never touch the caller's backend (a
    notebook keeps its inline plots) nor pyplot's list of open figures."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _png(fig) -> bytes:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def latency_cdf_png(requests: pd.DataFrame, title: str) -> bytes | None:
    """CDF of end-to-end latency of served requests, one line per class (log x)."""
    from strait_sim.plotting import log_axis

    served = requests[np.isfinite(requests["finish_s"].to_numpy(dtype=float))]
    if served.empty:
        return None
    fig, ax = _figure(7, 3.6)
    for cls in CLASSES:
        lat = np.sort(((served.loc[served["priority"] == cls, "finish_s"]
                        - served.loc[served["priority"] == cls, "arrival_s"]) * 1e3)
                      .to_numpy(dtype=float))
        lat = lat[lat > 0]
        if len(lat):
            ax.step(lat, np.arange(1, len(lat) + 1) / len(lat), where="post",
                    label=f"{cls} priority (n={len(lat):,})")
    log_axis(ax, "x")
    ax.set_xlabel("latency, arrival to finish (ms, log scale)")
    ax.set_ylabel("share of served requests")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _png(fig)


def outcomes_png(summary: dict, title: str) -> bytes:
    """Stacked shares of on time / late / dropped / rejected per class."""
    parts = ("on_time", "late", "dropped", "rejected")
    colors = ("#2e7d32", "#f9a825", "#c62828", "#6a1b9a")
    fig, ax = _figure(7, 2.4)
    for row, cls in enumerate(CLASSES):
        c = summary["by_class"][cls]
        n = max(int(c["count"]), 1)
        left = 0.0
        for part, color in zip(parts, colors, strict=True):
            share = 100 * c[part] / n
            ax.barh(row, share, left=left, color=color,
                    label=part.replace("_", " ") if row == 0 else None)
            left += share
    ax.set_yticks(range(len(CLASSES)),
                  [f"{c} (n={summary['by_class'][c]['count']:,})" for c in CLASSES])
    ax.set_xlim(0, 100)
    ax.set_xlabel("share of requests (%)")
    ax.set_title(title)
    ax.legend(ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.35), frameon=False)
    return _png(fig)


# -- reading the folder's files ------------------------------------------------------
# Every file a page reads goes through these: a file of the right syntax but the wrong
# shape (summary.json holding ``{}``, comparison.csv with other columns) is one UserError
# naming the file and what it lacks, not a KeyError from deep inside a page.

# The columns of compare's tables that the page reads.
COMPARISON_NEEDS = ("load", "policy", "seeds", "hp_violation", "lp_violation",
                      "hp_p99_ms", "lp_p99_ms", "goodput_rps", "gpu_busy")
REFERENCE_NEEDS = ("load", "reference", "baseline", "seeds", "hp_reduction_pp",
                     "lp_cost_pp")
# report.json (``validate``): the blocks the page indexes; each class under ``classes``
# must hold VALIDATION_CLASS_SHAPE.
VALIDATION_SHAPE = {"setup": "optional object", "setup.warnings": "optional list",
                    "classes": "object"}
VALIDATION_CLASS_SHAPE = {
    **{f"latency.{q}.{side}": "number or null" for q in ("p50", "p99")
       for side in ("live_ms", "sim_ms")},
    "violation.live": "number or null", "violation.sim": "number or null",
    "violation.diff_pp": "number or null", "ks.pvalue": "number or null",
    "tost.equivalent": "boolean or null",
}


def read_table(path: Path, columns: Sequence[str], text: Sequence[str], *,
               empty_ok: bool = False) -> pd.DataFrame:
    """A CSV table written by ``compare``, checked for the ``columns`` a page reads: all
    but the ``text`` ones numeric, ``seeds`` a whole number on every row. ``empty_ok``:
    a file with no header at all reads as an empty table (earlier versions of ``compare``
    wrote reference.csv as one bare newline when there was no pair, e.g. one policy)."""
    try:
        table = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        if empty_ok:
            return pd.DataFrame(columns=list(columns))
        raise UserError(f"{path}: empty (no header line); not a table written by "
                        "strait-sim compare") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else \
            str(exc).strip().splitlines()[-1]
        raise UserError(f"{path}: not a readable CSV file ({reason})") from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise UserError(f"{path}: not a table written by strait-sim compare (missing "
                        f"column(s) {', '.join(repr(c) for c in missing)})")
    wrong = [c for c in table.columns if len(table) and c not in text
             and not pd.api.types.is_numeric_dtype(table[c])]  # no rows: no dtype
    if wrong:
        raise UserError(f"{path}: not a table written by strait-sim compare (column "
                        f"{', '.join(repr(c) for c in wrong)} not numeric)")
    seeds = table["seeds"]
    if len(table) and (seeds.isna().any() or (seeds != seeds.round()).any()):
        raise UserError(f"{path}: not a table written by strait-sim compare (column "
                        "'seeds' not a whole number on every row)")
    return table


# -- the three kinds of page ----------------------------------------------------------


def _page(title: str, kind: str, command: str, provenance: list[tuple[str, str]],
          sections: list[str]) -> str:
    prov = table_html(("what", "value"), provenance, table_id="provenance-table", left=2)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="generator" content="strait-sim {esc(__version__)}">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f'<h1 id="title">{esc(title)}</h1>'
            f'<p class="note" id="kind">strait-sim {esc(kind)} report</p>'
            f'<h2>Command</h2><pre id="command">{esc(command)}</pre>'
            + "".join(sections) +
            f'<h2>Profile provenance</h2>{prov}'
            f'<p class="note">Written by strait-sim {esc(__version__)}.</p>'
            "</body></html>\n")


def run_page(folder: Path) -> str:
    from strait_sim.results import load_results

    result = load_results(folder)
    s, df = result.summary, result.requests
    prof = s.get("profile") or {}
    mode = s.get("mode", "sim")
    device = (s.get("device", {}) or {}).get("name") if mode == "live" else None
    where = f"live on {device}" if device else "simulated"
    title = (f"{s.get('policy', '?')} on {prof.get('name', '?')}, "
             f"{where} (seed {s.get('seed')})")
    rows = []
    for name, c in [(n, s["by_class"][n]) for n in CLASSES] + [("all", s["overall"])]:
        rows.append((name, f"{c['count']:,}", c["on_time"], c["late"], c["dropped"],
                     c["rejected"], pct(c.get("violation_rate")), ms(c.get("p50_ms")),
                     ms(c.get("p95_ms")), ms(c.get("p99_ms"))))
    classes = table_html(("class", "requests", "on time", "late", "dropped", "rejected",
                          "violated (%)", "p50 (ms)", "p95 (ms)", "p99 (ms)"), rows,
                         table_id="classes")
    wl = s.get("workload", {}) or {}
    system = s.get("system", {}) or {}
    setup_rows = [("mode", mode), ("policy", s.get("policy")),
                  ("policy parameters", json.dumps(s.get("policy_params", {}),
                                                   sort_keys=True)),
                  ("workload", wl.get("kind")),
                  ("duration (s)", num(wl.get("duration_s"))),
                  ("GPUs × slots", f"{system.get('gpus')} × {system.get('slots')}"),
                  ("largest batch (items)", system.get("max_batch")),
                  ("interference, PCIe", f"{system.get('interference')}, "
                                         f"{system.get('pcie')}"),
                  ("device busy (%)", pct(s.get("gpu_busy_fraction"))),
                  ("Jain fairness", num(s.get("jain_fairness")))]
    setup = table_html(("setting", "value"), setup_rows, table_id="setup", left=2)
    figures = [figure_html(outcomes_png(s, "outcome of each request, by class"),
                           "Outcome shares per priority class", "fig-outcomes")]
    cdf = latency_cdf_png(df, "latency of served requests")
    if cdf is not None:
        figures.append(figure_html(cdf, "Latency CDF of served requests per class",
                                   "fig-latency-cdf"))
    fallback = (f"strait_sim.simulate(policy={s.get('policy')!r}, "
                f"profile={prof.get('name')!r}, seed={s.get('seed')}, ...) "
                "(no command.txt in the folder: written from Python)")
    return _page(title, "run", command_of(folder, fallback),
                 profile_provenance(prof),
                 [f"<h2>Requests by class</h2>{classes}"
                  '<p class="note">violated = not on time (late, dropped or rejected); '
                  "latency percentiles over served requests.</p>",
                  f"<h2>Set-up</h2>{setup}", "<h2>Figures</h2>" + "".join(figures)])


def _first_point_summary(folder: Path) -> dict:
    """The first readable run summary under ``points/``, for the profile's provenance
    only: one that cannot serve (damaged, another shape) is passed over, not an error."""
    for path in sorted((folder / "points").glob("*/summary.json")):
        try:
            summary = read_json(path)
        except (OSError, UserError):
            continue
        if isinstance(summary, dict) and isinstance(summary.get("profile") or {}, dict):
            return summary
    return {}


def comparison_page(folder: Path) -> str:
    table = read_table(folder / "comparison.csv", COMPARISON_NEEDS, ("policy",))
    ref_path = folder / "reference.csv"
    ref = (read_table(ref_path, REFERENCE_NEEDS, ("reference", "baseline"), empty_ok=True)
           if ref_path.is_file() else pd.DataFrame())
    policies = list(dict.fromkeys(table["policy"].astype(str)))

    def nan_none(v: object) -> object:
        return None if isinstance(v, float) and np.isnan(v) else v

    rows = []
    for _, r in table.iterrows():
        rows.append((num(nan_none(r["load"])), r["policy"], int(r["seeds"]),
                     interval(r, "hp_violation", scale=100),
                     interval(r, "lp_violation", scale=100),
                     ms(nan_none(r["hp_p99_ms"])), ms(nan_none(r["lp_p99_ms"])),
                     num(nan_none(r["goodput_rps"])), pct(nan_none(r["gpu_busy"]))))
    main = table_html(("load", "policy", "seeds", "HP violated (%)", "LP violated (%)",
                       "HP p99 (ms)", "LP p99 (ms)", "goodput (req/s)", "busy (%)"), rows,
                      table_id="comparison", left=2)
    sections = [f"<h2>Policies side by side</h2>{main}"
                '<p class="note">mean over seeds (95% bootstrap interval, kept within the '
                "possible range); violated = not on time.</p>"]
    from strait_sim.cli.compare_report import SLO_NOTE, has_slo, slo_cells

    if has_slo(table):
        slo_rows = [(num(nan_none(r["load"])), r["policy"], int(r["seeds"]),
                     *slo_cells(r.to_dict())) for _, r in table.iterrows()]
        sections.append(
            "<h2>SLO view: dropped and rejected requests count as misses</h2>"
            + table_html(("load", "policy", "seeds", "HP p95 (ms)", "HP p99 (ms)",
                          "LP p95 (ms)", "LP p99 (ms)", "HP on time (%)", "LP on time (%)",
                          "Jain (model, class)", "goodput over arrivals (req/s)"),
                         slo_rows, table_id="slo", left=2)
            + f'<p class="note">{esc(SLO_NOTE)}</p>')
    if not ref.empty:
        ref_rows = [(num(nan_none(r["load"])), r["reference"], r["baseline"], int(r["seeds"]),
                     interval(r, "hp_reduction_pp"), interval(r, "lp_cost_pp"))
                    for _, r in ref.iterrows()]
        sections.append(
            "<h2>Reference against each policy (paired over seeds)</h2>"
            + table_html(("load", "reference", "baseline", "seeds",
                          "HP violations avoided (pp)", "LP violations added (pp)"),
                         ref_rows, table_id="reference", left=3)
            + '<p class="note">pp = percentage points. HP violations avoided = the '
            "baseline's HP violation rate minus the reference's: positive means the "
            "reference misses fewer high-priority deadlines. LP violations added = the "
            "reference's LP violation rate minus the baseline's: positive means the "
            "reference makes low-priority requests pay.</p>")
    elif len(policies) <= 1:  # compare of one policy: nothing to pair it with
        sections.append(
            "<h2>Reference against each policy (paired over seeds)</h2>"
            f'<p class="note" id="reference-none">one policy only '
            f"({esc(', '.join(policies) or 'none')}): there is no other policy to compare "
            "the reference against.</p>")
    else:
        sections.append(
            "<h2>Reference against each policy (paired over seeds)</h2>"
            '<p class="note" id="reference-none">no paired differences in this folder '
            "(reference.csv is absent or has no rows).</p>")
    figs = []
    for png in sorted(folder.glob("*.png")):
        figs.append(figure_html(png.read_bytes(), png.stem.replace("_", " "),
                                f"fig-{png.stem}"))
    if figs:
        sections.append("<h2>Figures</h2>" + "".join(figs))
    first = _first_point_summary(folder)
    title = f"compare {', '.join(policies)}"
    return _page(title, "comparison",
                 command_of(folder, "strait_sim.compare(...) (no command.txt in the folder)"),
                 profile_provenance(first.get("profile", {}) or {}), sections)


def validation_page(folder: Path) -> str:
    path = folder / "report.json"
    report = check_shape(read_json(path), VALIDATION_SHAPE, path, "a validation report")
    setup = report.get("setup") or {}
    classes_block = report.get("classes") or {}
    for cls, c in classes_block.items():
        check_shape(c, VALIDATION_CLASS_SHAPE, path, "a validation report",
                    prefix=f"classes.{cls}.")
    rows = []
    for cls, c in classes_block.items():
        lat, v, k, t = c["latency"], c["violation"], c["ks"], c["tost"]
        rows.append((cls, ms(lat["p50"]["live_ms"]), ms(lat["p50"]["sim_ms"]),
                     ms(lat["p99"]["live_ms"]), ms(lat["p99"]["sim_ms"]), pct(v["live"]),
                     pct(v["sim"]),
                     "-" if v["diff_pp"] is None else f"{v['diff_pp']:+.1f}",
                     "-" if k["pvalue"] is None else f"{k['pvalue']:.3g}",
                     {True: "equivalent", False: "not equivalent", None: "-"}[
                         t.get("equivalent")]))
    classes = table_html(("class", "p50 live (ms)", "p50 sim (ms)", "p99 live (ms)",
                          "p99 sim (ms)", "violated live (%)", "violated sim (%)",
                          "sim − live (pp)", "KS p", "TOST"), rows, table_id="validation")
    warnings = "".join(f'<p class="warn">warning: {esc(w)}</p>'
                       for w in setup.get("warnings") or [])
    figs = [figure_html(p.read_bytes(), f"latency CDF, live vs simulated: {p.stem[4:]}",
                        f"fig-{p.stem}") for p in sorted(folder.glob("cdf_*.png"))]
    title = f"{setup.get('policy', '?')}: live vs simulated on {setup.get('device', '?')}"
    return _page(title, "validation", report.get("command") or "(not recorded)",
                 _validation_provenance(folder, setup),
                 [f"<h2>Live against simulated, by class</h2>{classes}{warnings}"
                  f'<p class="note">TOST equivalence margin {esc(report.get("margin"))} of '
                  f'the simulated mean, significance level {esc(report.get("alpha"))}.</p>',
                  "<h2>Figures</h2>" + "".join(figs)])


def _validation_provenance(folder: Path, setup: dict) -> list[tuple[str, str]]:
    """The profile behind a validation folder: its simulated run's summary, else what the
    report's set-up recorded of it."""
    sim_summary: dict = {}
    if (sim_path := folder / "sim" / "summary.json").is_file():
        sim_summary = check_shape(read_json(sim_path), {"profile": "optional object"},
                                  sim_path, "a run summary")
    prov = sim_summary.get("profile") or {"name": setup.get("profile"),
                                          "device": setup.get("profile_device"),
                                          "content_hash": setup.get("profile_hash")}
    return profile_provenance(prov)


def study_page(folder: Path) -> str:
    """A validation study (``validate --loads/--repeats``): summed up from its cells as
    ``validate --report`` does, with study.md's tables and the error-against-load figures,
    without rewriting the study's own files. Why here too: ``report`` is the one command
    that gives a page for every result folder; it once refused a study."""
    from strait_sim.live.prediction import (
        PREDICTION_COLUMNS,
        PREDICTION_NOTE,
        PREDICTION_TITLE,
        study_prediction_rows,
    )
    from strait_sim.live.study import (
        STUDY_COLUMNS,
        cell_dir,
        error_plot,
        stored_study,
        study_method,
        study_rows,
    )

    study = stored_study(folder)
    sections = [f'<p class="note" id="method">{esc(study_method(study))}</p>']
    for i, (policy, by_load) in enumerate(study["cells"].items()):
        table = table_html(STUDY_COLUMNS, study_rows(by_load), table_id=f"study-{i}", left=3)
        figure = figure_html(error_plot(study, policy), f"{policy}: error against load",
                             f"fig-error-{i}")
        sections.append(f"<h2>{esc(policy)}</h2>{table}{figure}")
    prediction = study_prediction_rows(study)
    if prediction:
        sections.append(f"<h2>{esc(PREDICTION_TITLE)}</h2>"
                        f'<p class="note">{esc(PREDICTION_NOTE)}</p>'
                        + table_html(PREDICTION_COLUMNS, prediction, table_id="prediction",
                                     left=2))
    first = cell_dir(folder, study["policies"][0], study["loads"][0], 0)
    report = check_shape(read_json(first / "report.json"), VALIDATION_SHAPE,
                         first / "report.json", "a validation report")
    title = f"{', '.join(study['policies'])}: a validation study, simulated against live"
    return _page(title, "validation study",
                 command_of(folder, report.get("command") or "(not recorded)"),
                 _validation_provenance(first, report.get("setup") or {}), sections)


def folder_kind(folder: Path) -> str:
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder")
    if (folder / "study.json").is_file():
        return "study"
    from strait_sim.live.study import check_study_finished

    check_study_finished(folder)
    if (folder / "report.json").is_file():
        return "validation"
    if (folder / "comparison.csv").is_file():
        return "comparison"
    if (folder / "summary.json").is_file():
        return "run"
    raise UserError(f"{folder}: not a run, comparison, validation or validation study "
                    "folder (no summary.json, comparison.csv, report.json or study.json)")


def render_html(folder: Path) -> str:
    kind = folder_kind(folder)
    return {"run": run_page, "comparison": comparison_page,
            "validation": validation_page, "study": study_page}[kind](folder)


def write_html_report(folder: Path, out: Path | None = None) -> Path:
    """Write the page to ``out`` (default ``folder/report.html``) atomically."""
    folder = Path(folder)
    text = render_html(folder)
    target = Path(out) if out is not None else folder / "report.html"
    with atomic_file(target) as fh:
        fh.write(text)
    return target
