"""Re-simulate a recorded validation study with the current code, against its live runs.

Why: the live half of a study (``validate --live --loads ... --repeats K``) needs the
device and a quiet machine; the simulated half needs neither. A change to the truth model,
the calibration or a policy can be judged against live runs already recorded: each cell's
simulation is run again on the same workload (same arrivals: the workload is rebuilt from
the cell's ``sim/summary.json`` and the same seed) and compared with the same live run,
with the study's own statistics (``strait_sim.live.study``).

    .venv/bin/python experiments/resimulate_study.py \
        docs/validation/cpu-quiet-20261201T0828Z/study --out runs/resim

Writes ``OUT/study.md``, ``OUT/study.json`` and the error plots, and one ``sim/`` folder per
cell under ``OUT/<policy>/load-<L>/rep-<k>/``. The profile is the study's own (``--profile``
chooses another: e.g. the same study against a profile of another hour). Policies run with
their default parameters, as the committed studies did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from strait_sim.errors import UserError


def resimulate(study_dir: Path, out: Path, profile: str | None) -> dict:
    from strait_sim.api import make_policy
    from strait_sim.driver.config import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.live.study import MAX_UTIL, TARGET_PP, TARGET_REL, summarize_cell, write_study
    from strait_sim.profile_bundle import load_bundle
    from strait_sim.results import load_results
    from strait_sim.workloads.spec import workload_from_description

    old = json.loads((study_dir / "study.json").read_text())
    bundle = load_bundle(profile or str(study_dir.parent / "profile"))
    cells: dict = {}
    for policy in old["policies"]:
        for load in old["loads"]:
            tag = "default" if load is None else f"{load:g}"
            pairs, util = [], []
            for k in range(old["repeats"]):
                cell = study_dir / policy / f"load-{tag}" / f"rep-{k}"
                live = load_results(cell / "live")
                summary = json.loads((cell / "sim" / "summary.json").read_text())
                system = summary["system"]
                config = SimConfig(gpus=int(system["gpus"]), slots=int(system["slots"]),
                                   max_batch=int(system["max_batch"]),
                                   seed=int(summary["seed"]),
                                   interference=bool(system["interference"]),
                                   pcie=bool(system["pcie"]))
                workload = workload_from_description(summary["workload"])
                sim = run_simulation(bundle, workload, make_policy(policy), config,
                                     out=out / policy / f"load-{tag}" / f"rep-{k}" / "sim")
                pairs.append((live.requests, sim.requests))
                util.append(live.summary.get("gpu_busy_fraction"))
                print(f"resimulate: {policy} load {tag} repeat {k + 1}", file=sys.stderr)
            cells.setdefault(policy, {})[tag] = summarize_cell(pairs, util, seed=old["seed"])
    study = {**{k: old[k] for k in ("policies", "loads", "repeats", "seed")},
             "targets": {"latency_rel": TARGET_REL, "violation_pp": TARGET_PP,
                         "max_live_utilization": MAX_UTIL},
             "cells": cells, "resimulated_from": str(study_dir), "profile": bundle.name}
    write_study(out, study)
    return study


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a study folder (holds study.json)")
    ap.add_argument("--out", type=Path, required=True, help="new folder for the re-simulation")
    ap.add_argument("--profile", default=None, help="profile (default: STUDY/../profile)")
    a = ap.parse_args(argv)
    try:
        if not (a.study / "study.json").is_file():
            raise UserError(f"{a.study}: no study.json here (a `validate --loads/--repeats` "
                            "folder is needed)")
        if a.out.exists() and any(a.out.iterdir()):
            raise UserError(f"{a.out}: exists and is not empty; choose a new --out folder")
        resimulate(a.study, a.out, a.profile)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"study: {a.out}/study.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
