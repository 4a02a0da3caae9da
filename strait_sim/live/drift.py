"""Drift: how far the device is, right now, from the profile a simulation will use.

Why: a profile describes the device on the day it was measured. The bundled CPU profile
was 1.3-1.5x faster than the same machine weeks later (other tenants, clocks, a kernel
update), and nothing said so; every simulated latency inherited the gap. So before a
validation (and a live run) the device is probed briefly:

- for each probed (model, batch) (by default the workload's models at batch 1 and at the
  largest measured batch <= --max-batch), ``warmup`` forwards then ``reps`` timed solo
  forwards on the same backend the live run uses, and their median against the profile's
  solo median;
- the device's drift is the geometric mean of those ratios (1.30: 30% slower than its
  profile); it is flagged when it, or any one (model, batch), is beyond ``tolerance``
  (default 15%: beyond what a quiet machine's run-to-run noise gives) either way, with the
  worst (model, batch) named.

The result (``drift.json``) goes beside the validation's results and into its warnings.
``run --live`` probes the same way on the backend it is about to run on (after its models
are prepared, before the clock starts; :func:`probe_run_backend`), prints the same line and
keeps the record in its summary.json (``drift``); ``--no-probe`` skips it.
``--recalibrate`` goes further: it re-measures solo times (and a few pairs, within a
minute's budget) of the workload's models into a fresh bundle, copies the transfers of the
old profile (copies drift less and take long to measure), and the validation runs
against that bundle.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from strait_sim.errors import UserError
from strait_sim.profile_bundle import ProfileBundle

DEFAULT_TOLERANCE = 0.15
RESULT_TIMEOUT_S = 120.0


@dataclass
class DriftReport:
    points: list[dict] = field(default_factory=list)  # model, batch, profile_ms, now_ms, ratio
    ratio: float = 1.0  # geometric mean now / profile
    tolerance: float = DEFAULT_TOLERANCE
    flagged: bool = False
    seconds: float = 0.0

    def message(self) -> str:
        if not self.points:
            return "drift probe: nothing probed"
        worst = max(self.points, key=lambda p: abs(math.log(p["ratio"])))
        way = "slower" if self.ratio > 1 else "faster"
        head = (f"the device is {abs(self.ratio - 1):.0%} {way} than its profile "
                f"(solo medians now / profile, geometric mean of {len(self.points)} probes; "
                f"worst {worst['model']}@{worst['batch']}: {worst['now_ms']:.2f} vs "
                f"{worst['profile_ms']:.2f} ms)")
        if self.flagged and abs(math.log(self.ratio)) <= math.log1p(self.tolerance):
            return (f"{head}: {worst['model']}@{worst['batch']} is beyond the "
                    f"{self.tolerance:.0%} tolerance, its simulated latencies will be off by "
                    "about as much; re-profile or use --recalibrate")
        if self.flagged:
            return (f"{head}: beyond the {self.tolerance:.0%} tolerance, simulated latencies "
                    "will be off by about as much; re-profile or use --recalibrate")
        return f"{head}: within the {self.tolerance:.0%} tolerance"


def probe_points(bundle: ProfileBundle, models: list[str] | None, max_batch: int
                 ) -> list[tuple[str, int]]:
    names = models or list(bundle.model_names)[:3]
    out = []
    for m in names:
        bs = [int(b) for b in bundle.measured_batches.get(m, []) if b <= max_batch]
        if not bs:
            continue
        out.append((m, bs[0]))
        if bs[-1] != bs[0]:
            out.append((m, bs[-1]))
    return out


def probe(bundle: ProfileBundle, backend, points: list[tuple[str, int]], *, reps: int = 7,
          warmup: int = 3, tolerance: float = DEFAULT_TOLERANCE) -> DriftReport:
    """Time ``reps`` solo forwards per point on ``backend`` against the profile."""
    t0 = time.monotonic()
    rows = []
    for m, b in points:
        backend.prepare(m, b)
        for _ in range(warmup):
            backend.submit(m, b, 0).result(RESULT_TIMEOUT_S)
        times = [float(backend.submit(m, b, 0).result(RESULT_TIMEOUT_S).compute_ms)
                 for _ in range(reps)]
        now = float(np.median(times))
        prof = float(bundle.solo_ms(m, b))
        rows.append({"model": m, "batch": b, "profile_ms": prof, "now_ms": now,
                     "ratio": now / prof, "samples_ms": times})
    ratio = float(np.exp(np.mean([math.log(r["ratio"]) for r in rows]))) if rows else 1.0
    # one model beyond the tolerance is flagged too: a geometric mean of 5% hid a model
    # 15% off its profile, and the simulation missed by as much (docs/validation.md)
    beyond = [abs(math.log(r["ratio"])) > math.log1p(tolerance) for r in rows]
    flagged = abs(math.log(ratio)) > math.log1p(tolerance) or any(beyond)
    return DriftReport(rows, ratio, tolerance, flagged, time.monotonic() - t0)


def make_probe_backend(bundle: ProfileBundle, live_kind: str, gpu: int | None,
                       models: list[str], streams: int = 1):
    """The backend a live run would use (precision and threads from the profile)."""
    from strait_sim.profiler.backends import make_backend

    meta_backend = bundle.meta.get("backend", {}) if hasattr(bundle.meta, "get") else {}
    precision = meta_backend.get("precision")
    if live_kind == "cpu":
        opts: dict = {}
        threads = meta_backend.get("threads_per_stream")
        if isinstance(threads, int) and threads > 0:
            opts["threads_per_stream"] = threads
        return make_backend("torch-cpu", streams=streams,
                            precision=precision if precision in ("fp32", "bf16") else None,
                            models=models, **opts)
    return make_backend("torch-cuda", device=gpu, streams=1,
                        precision=precision if precision in ("fp16", "fp32", "bf16") else None,
                        models=models)


def probe_and_report(bundle: ProfileBundle, *, live_kind: str, gpu: int | None,
                     out: Path | None,
                     models: list[str] | None, max_batch: int,
                     log: Callable[[str], None] | None = None,
                     backend_factory: Callable[[list[str]], object] | None = None
                     ) -> DriftReport:
    """Probe, write ``out/drift.json`` (when ``out``), say it in one line (always when
    flagged); drift never fails the run, it is reported."""
    points = probe_points(bundle, models, max_batch)
    names = sorted({m for m, _ in points})
    if not points:
        return DriftReport()
    backend = (backend_factory or (lambda ms: make_probe_backend(bundle, live_kind, gpu, ms))
               )(names)
    try:
        report = probe(bundle, backend, points)
    finally:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "drift.json").write_text(json.dumps(asdict(report), indent=1) + "\n")
    if log is not None or report.flagged:
        import sys

        (log or (lambda m: print(m, file=sys.stderr)))(
            f"{'warning: ' if report.flagged else ''}{report.message()}")
    return report


def probe_run_backend(bundle: ProfileBundle, backend, models: list[str], max_batch: int,
                      *, say: Callable[[str], None], quiet: bool = False,
                      reps: int = 7, warmup: int = 3) -> dict | None:
    """The probe of ``run --live``: on the run's own backend (stream 0, models already
    prepared), so the threads and precision probed are the run's. Says the result in one
    line (always when flagged, else unless ``quiet``) and returns the record for the run's
    summary.json; None when nothing could be probed. A backend error during the probe is
    reported and recorded, never fatal: the run itself decides whether the device works."""
    from strait_sim.profiler.backend import BackendError

    points = probe_points(bundle, list(models), max_batch)
    if not points:
        return None
    try:
        report = probe(bundle, backend, points, reps=reps, warmup=warmup)
    except BackendError as exc:
        say(f"warning: drift probe failed ({exc}); running without it")
        return {"error": str(exc)}
    if report.flagged or not quiet:
        say(f"{'warning: ' if report.flagged else ''}{report.message()}")
    record = asdict(report)
    record["message"] = report.message()
    return record


def recalibrate_profile(bundle: ProfileBundle, *, live_kind: str, gpu: int | None, out: Path,
                        models: list[str] | None, max_batch: int, force: bool = False,
                        log: Callable[[str], None] | None = None, reps: int = 10,
                        pair_budget_s: float = 60.0) -> Path:
    """Re-measure solo times (and a few pairs) of ``models`` into ``out``; the old
    profile's transfers are copied. Returns ``out`` (a loadable bundle)."""
    from strait_sim.live.busy_check import check_device_idle
    from strait_sim.profile_bundle import read_bundle_dir
    from strait_sim.profiler.measure_common import Settings
    from strait_sim.profiler.session import run_session

    names = tuple(models or bundle.model_names)
    for m in names:
        bundle.require_model(m)
    batches = sorted({int(b) for m in names for b in bundle.measured_batches.get(m, [])
                      if b <= max_batch}) or [1]
    check_device_idle(live_kind, gpu, force=force)
    if out.exists() and not (out / "profile.json").is_file():
        raise UserError(f"{out}: exists and is not a profile bundle; choose another --out")
    settings = Settings(models=names, batches=tuple(batches), parts=("solo", "pairs"),
                        reps=reps, warmup=2, pair_reps=2, pair_budget_s=pair_budget_s)

    def make():  # noqa: ANN202
        return make_probe_backend(bundle, live_kind, gpu, list(names), streams=2)

    if log:
        log(f"recalibrate: solo x{reps} and pairs (budget {pair_budget_s:g} s) of "
            f"{', '.join(names)} at batches {batches} into {out}")
    run_session(out, make, settings, command="strait-sim validate --recalibrate",
                notes=(f"recalibration of {bundle.name} before a validation",))
    if bundle.has("transfers") and not (out / "transfers.csv").exists():
        shutil.copyfile(bundle.path / "transfers.csv", out / "transfers.csv")
    return read_bundle_dir(out).path
