"""`run --live` probes the device against its profile before the run (issue 13, drift).

The probe itself is timed on a fake backend a known factor slower than the profile (as
the validate probe's test does), so nothing here depends on this machine's speed; the
hook's plumbing (the record in summary.json, --no-probe) runs the tiny zoo models on the
torch-cpu backend and checks only what was recorded, never a timing.
"""

from __future__ import annotations

import json

import pytest
from drift_fakes import SlowedBackend

from strait_sim.cli.app import main
from strait_sim.engine.simulator import SimConfig
from strait_sim.live.drift import probe_run_backend
from strait_sim.live.runner import LiveOptions, run_live
from strait_sim.policies.fifo import FifoPolicy
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.synthetic import SyntheticSpec, make_synthetic_bundle
from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

MODELS = ("tiny_mlp", "tiny_cnn")


@pytest.fixture(scope="module")
def tiny_bundle_path(tmp_path_factory):
    spec = SyntheticSpec(models={"tiny_mlp": (0.15, 0.03), "tiny_cnn": (8.0, 0.6)},
                         io_bytes={"tiny_mlp": (1024, 40), "tiny_cnn": (12288, 40)},
                         reps=4, offsets_frac=(0.0,), batches=(1, 2, 4))
    return make_synthetic_bundle(tmp_path_factory.mktemp("drift") / "bundle", spec,
                                 name="synthetic-live")


def test_the_run_probe_flags_a_device_made_1_3x_slower(tiny_bundle_path):
    bundle = read_bundle_dir(tiny_bundle_path)
    said: list[str] = []
    slow = probe_run_backend(bundle, SlowedBackend(bundle, 1.3), list(MODELS), 4,
                             say=said.append, quiet=True)
    assert slow is not None and slow["flagged"]
    assert slow["ratio"] == pytest.approx(1.3, rel=0.05)
    # each model at batch 1 and at the largest measured batch <= --max-batch
    assert {(p["model"], p["batch"]) for p in slow["points"]} == {
        ("tiny_mlp", 1), ("tiny_mlp", 4), ("tiny_cnn", 1), ("tiny_cnn", 4)}
    assert len(said) == 1 and said[0].startswith("warning: ") and "30% slower" in said[0]
    assert slow["message"] in said[0]

    said.clear()
    same = probe_run_backend(bundle, SlowedBackend(bundle, 1.0, seed=1), list(MODELS), 2,
                             say=said.append, quiet=True)
    assert same is not None and not same["flagged"]
    assert same["ratio"] == pytest.approx(1.0, abs=0.05)
    assert said == []  # --quiet: only a flagged probe speaks
    probe_run_backend(bundle, SlowedBackend(bundle, 1.0, seed=1), list(MODELS), 2,
                      say=said.append, quiet=False)
    assert len(said) == 1 and "within the 15% tolerance" in said[0]


def test_a_probe_that_fails_is_reported_not_fatal(tiny_bundle_path):
    bundle = read_bundle_dir(tiny_bundle_path)
    said: list[str] = []
    got = probe_run_backend(bundle, SlowedBackend(bundle, 1.0, fail=True), list(MODELS), 4,
                            say=said.append)
    assert got == {"error": "injected: the device fell over"}
    assert "drift probe failed" in said[0]
    assert probe_run_backend(bundle, SlowedBackend(bundle, 1.0), ["unprofiled"], 4,
                             say=said.append) is None


@pytest.mark.slow
def test_run_live_keeps_the_probe_in_its_summary(tiny_bundle_path, capsys):
    from strait_sim.profiler.backends import make_backend

    bundle = read_bundle_dir(tiny_bundle_path)
    backend = make_backend("torch-cpu", streams=2, models=list(MODELS), warmup=1)
    try:
        wl = BasicPoissonWorkload(MODELS, rate=60.0, duration_s=0.4, hp_fraction=0.3, slo=6)
        cfg = SimConfig(slots=2, max_batch=2)
        probed = run_live(bundle, wl, FifoPolicy(), cfg,
                          LiveOptions(backend=backend, force=True, quiet=False, probe=True))
        plain = run_live(bundle, wl, FifoPolicy(), cfg,
                         LiveOptions(backend=backend, force=True, quiet=True))
    finally:
        backend.close()
    drift = probed.summary["drift"]
    assert {(p["model"], p["batch"]) for p in drift["points"]} == {
        (m, b) for m in MODELS for b in (1, 2)}
    assert all(p["now_ms"] > 0 and len(p["samples_ms"]) == 7 for p in drift["points"])
    assert drift["ratio"] > 0 and isinstance(drift["flagged"], bool)
    assert "than its profile" in capsys.readouterr().err
    assert "drift" not in plain.summary
    # the probe's forwards are not the run's: every request still ends once
    assert len(probed.requests) == len(plain.requests) > 0


@pytest.mark.slow
def test_run_live_cli_probes_unless_no_probe(tiny_bundle_path, tmp_path, capsys):
    base = ["run", "--live", "--cpu", "--policy", "fifo", "--profile", str(tiny_bundle_path),
            "--models", ",".join(MODELS), "--rate", "40", "--duration", "0.4",
            "--max-batch", "2", "--force", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["mode"] == "live" and len(summary["drift"]["points"]) == 4
    assert main([*base, "--no-probe", "--out", str(tmp_path / "b")]) == 0
    assert "drift" not in json.loads((tmp_path / "b" / "summary.json").read_text())
