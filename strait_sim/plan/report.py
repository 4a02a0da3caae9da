"""What a plan writes: plan.json, points.csv, front.csv, front.png and report.html.

Every file is written atomically (a failed or interrupted plan leaves none half-written);
the simulations themselves live under ``OUT/points/`` (the sweep store).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

import pandas as pd

from strait_sim.atomic import atomic_path
from strait_sim.plan.evaluate import PointResult
from strait_sim.plan.runner import PlanResult
from strait_sim.results import dumps

FILES = ("plan.json", "points.csv", "front.csv", "front.png", "report.html")


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def point_row(p: PointResult) -> dict:
    fam = p.config.family
    row = {"policy": fam.policy, "params": " ".join(f"{k}={v}" for k, v in fam.params),
           "slots": fam.slots, "max_batch": fam.max_batch, "gpus": p.config.gpus,
           "cost": p.cost, "seeds": len(p.seeds), "verdict": p.verdict,
           "hp_on_time": _num(p.on_time["high"]), "lp_on_time": _num(p.on_time["low"]),
           "hp_p99_ms": _num(p.p99_ms["high"]), "lp_p99_ms": _num(p.p99_ms["low"])}
    for t, b in p.bounds.items():
        name = f"{t.cls}_{t.metric}"
        row[f"{name}_mean"] = _num(b.mean)
        row[f"{name}_lower"] = _num(b.lower)  # one-sided bounds at the plan's confidence
        row[f"{name}_upper"] = _num(b.upper)
    return row


def points_frame(points: list[PointResult]) -> pd.DataFrame:
    return pd.DataFrame([point_row(p) for p in points])


def answers_frame(result: PlanResult) -> pd.DataFrame:
    """One row per policy: its cheapest configuration meeting the targets (or none)."""
    rows = []
    for name, group in result.search.groups.items():
        if group.best is None:
            rows.append({"policy": name, "gpus": None, "cost": None, "family": "none in range"})
            continue
        row = point_row(group.best)
        rows.append({"policy": name, "gpus": row["gpus"], "cost": row["cost"],
                     "family": group.best.config.family.label(),
                     "hp_on_time": row["hp_on_time"], "lp_on_time": row["lp_on_time"]})
    return pd.DataFrame(rows)


def plan_document(result: PlanResult) -> dict:
    best = result.search.best
    return {
        "profile": result.profile,
        "workload": result.workload,
        "targets": [{"class": t.cls, "metric": t.metric, "bound": t.bound,
                     "label": t.label()} for t in result.targets],
        "confidence": result.confidence,
        "confidence_rule": "one-sided Student t bound of the mean over seeds "
                           "(strait_sim/plan/confidence.py)",
        "seeds": result.seeds,
        "space": {"gpus": [result.space.gpus_min, result.space.gpus_max],
                  "families": [f.label() for f in result.space.families]},
        "answer": None if best is None else point_row(best),
        "per_policy": json.loads(answers_frame(result).to_json(orient="records")),
        "families": [{"family": o.family.label(), "answer": o.answer, "probes": o.probes,
                      "status": o.status}
                     for g in result.search.groups.values() for o in g.families],
        "simulations": {"search": result.search_simulations,
                        "full_grid": result.grid_simulations,
                        "ratio": result.grid_simulations / max(1, result.search_simulations),
                        "run_now": result.simulations_run,
                        "reused_from_disk": result.simulations_reused,
                        "rounds": result.search.rounds},
        "verification": [{"policy": v.group, "verify_seeds": result.verify_seeds,
                          "answer": point_row(v.answer),
                          "one_fewer": None if v.one_fewer is None
                          else point_row(v.one_fewer)} for v in result.verification],
        "front": [point_row(p) for p in result.front],
    }


def plot_front(result: PlanResult, path: Path) -> None:
    """Cost against HP attainment, every evaluated point, the front joined by a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    policies = list(dict.fromkeys(p.config.family.policy for p in result.search.points))
    for i, policy in enumerate(policies):
        pts = [p for p in result.search.points if p.config.family.policy == policy]
        ax.scatter([p.cost for p in pts], [p.on_time["high"] for p in pts],
                   c=[p.on_time["low"] for p in pts], cmap="viridis", vmin=0, vmax=1,
                   marker="os^Dvx<>"[i % 8], label=policy, edgecolors="k", linewidths=0.4)
    front = result.front
    ax.scatter([p.cost for p in front], [p.on_time["high"] for p in front], s=160,
               facecolors="none", edgecolors="r", linewidths=1.0,
               label="Pareto front (cost, HP, LP)")
    for t in result.targets:
        if t.cls == "high" and t.metric == "on_time":
            ax.axhline(t.bound, color="r", lw=0.8, label=f"target {t.bound:g}")
    ax.set_xlabel("cost")
    ax.set_ylabel("HP on-time share (mean over seeds)")
    ax.set_title("evaluated configurations (colour: LP on-time share)")
    ax.legend(fontsize=8, loc="lower right")
    fig.colorbar(ax.collections[0], ax=ax, label="LP on-time share")
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(fig)


def _html_table(df: pd.DataFrame) -> str:
    return df.to_html(index=False, na_rep="-", float_format=lambda x: f"{x:.4g}",
                      border=0, classes="t")


def write_html(result: PlanResult, path: Path, png: Path) -> None:
    doc = plan_document(result)
    sims = doc["simulations"]
    image = base64.b64encode(png.read_bytes()).decode("ascii")
    targets = ", ".join(html.escape(t["label"]) for t in doc["targets"])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>strait-sim plan</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}"
        "table.t{border-collapse:collapse;font-size:90%}"
        "table.t td,table.t th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
        "</style></head><body>",
        "<h1>Capacity plan</h1>",
        f"<p>Profile <b>{html.escape(str(result.profile))}</b>; targets: {targets}; "
        f"confidence {result.confidence:g} (one-sided bound over {len(result.seeds)} seeds)."
        "</p>",
        f"<p>Search: {sims['search']} simulations against {sims['full_grid']} for the full "
        f"grid ({sims['ratio']:.1f}x fewer), {sims['rounds']} rounds; {sims['run_now']} "
        f"run now, {sims['reused_from_disk']} reused from disk.</p>",
        "<h2>Cheapest configuration per policy</h2>", _html_table(answers_frame(result)),
    ]
    if result.verification:
        rows = []
        for v in result.verification:
            for p in (v.answer, v.one_fewer):
                if p is not None:
                    rows.append({"policy": v.group, **point_row(p)})
        parts += [f"<h2>Check on {len(result.verify_seeds)} fresh seeds</h2>",
                  _html_table(pd.DataFrame(rows))]
    parts += ["<h2>Pareto front (cost vs HP and LP on-time share)</h2>",
              f"<img alt='front' src='data:image/png;base64,{image}'>",
              _html_table(points_frame(result.front)),
              "<h2>Every evaluated configuration</h2>",
              _html_table(points_frame(result.search.points)), "</body></html>"]
    path.write_text("\n".join(parts), encoding="utf-8")


def write_outputs(result: PlanResult, out: Path) -> dict[str, Path]:
    """Write every report file into ``out`` (atomically, one by one)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    with atomic_path(out / "plan.json") as tmp:
        tmp.write_text(dumps(plan_document(result)))
    written["plan.json"] = out / "plan.json"
    for name, frame in (("points.csv", points_frame(result.search.points)),
                        ("front.csv", points_frame(result.front))):
        with atomic_path(out / name) as tmp:
            frame.to_csv(tmp, index=False)
        written[name] = out / name
    with atomic_path(out / "front.png") as tmp:
        plot_front(result, tmp)
    written["front.png"] = out / "front.png"
    with atomic_path(out / "report.html") as tmp:
        write_html(result, tmp, out / "front.png")
    written["report.html"] = out / "report.html"
    return written
