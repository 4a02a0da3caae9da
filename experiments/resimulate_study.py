"""Re-simulate a recorded validation study with the current code, against its live runs.

Why: the live half of a study (``validate --live --loads ... --repeats K``) needs the
device and a quiet machine; the simulated half needs neither. A change to the truth model,
the calibration or a policy can be judged against live runs already recorded: each cell's
simulation is run again on the same workload (same arrivals: the workload is rebuilt from
the cell's ``sim/summary.json`` and the same seed) and compared with the same live run,
with the study's own statistics (``strait_sim.live.study``).

    .venv/bin/python experiments/resimulate_study.py \
        docs/validation/cpu-quiet-20261201T0828Z/study --out runs/resim

Writes ``OUT/study.md``, ``OUT/study.json`` and the error plots, and one validate folder
per cell under ``OUT/<policy>/load-<L>/rep-<k>/`` (the recorded live half copied beside the
new simulated half), all through the study's own code (``run_study``). The profile is the
study's own (``--profile`` chooses another: e.g. the same study against a profile of
another hour). Policies run with their default parameters, as the committed studies did.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from strait_sim.errors import UserError


def resimulate(study_dir: Path, out: Path, profile: str | None) -> dict:
    """The study again, each cell's live half copied and its simulated half run anew."""
    from strait_sim.api import make_policy
    from strait_sim.driver.config import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.live.report import write_validation
    from strait_sim.live.study import run_study
    from strait_sim.profile_bundle import load_bundle
    from strait_sim.results import load_results
    from strait_sim.workloads.spec import workload_from_description

    old = json.loads((study_dir / "study.json").read_text())
    profile = profile or str(study_dir.parent / "profile")
    bundle = load_bundle(profile)
    new_root = out

    def cell(*, policy: str, out: Path, seed: int, **_load: object) -> None:
        recorded = study_dir / out.relative_to(new_root)
        live = load_results(recorded / "live")
        summary = json.loads((recorded / "sim" / "summary.json").read_text())
        system = summary["system"]
        config = SimConfig(gpus=int(system["gpus"]), slots=int(system["slots"]),
                           max_batch=int(system["max_batch"]), seed=int(summary["seed"]),
                           interference=bool(system["interference"]),
                           pcie=bool(system["pcie"]))
        sim = run_simulation(bundle, workload_from_description(summary["workload"]),
                             make_policy(policy), config)
        write_validation(out, live, sim, command=f"resimulate_study.py {study_dir} "
                                                 f"--profile {profile} (cell {recorded})")

    loads = [x for x in old["loads"] if x is not None] or None
    return run_study(policies=old["policies"], loads=loads, repeats=int(old["repeats"]),
                     seed=int(old["seed"]), out=out, run_cell=cell,
                     log=lambda m: print(m.replace("study:", "resimulate:"), file=sys.stderr))


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
