"""scripts/gpu_session.sh end to end on the CPU backend (the dry run), and its parts.

The GPU session runs only when a GPU is lent, for minutes; this dry run of the same
script, the same steps and the same packing, on tiny models, keeps it from rotting in
between. It imports the package through the link farm the GPU machine uses
(STRAIT_SESSION_LINK_FARM=1). No figure here is a GPU figure: nothing runs on a GPU.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import requires_gpu

from strait_sim.profiler import gpu_session
from strait_sim.profiler.transfer_sharing import link_sharing

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_cpu_dry_run_produces_the_packed_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "STRAIT_SESSION_LINK_FARM": "1",
           "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    got = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_session.sh"), "--cpu-dry-run"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["bundle-" + files[0][len("bundle-"):], "reports.tar.gz",
                     "session-summary.md", "session.log", "steps.json"]
    assert files[0].endswith("-dryrun-fp32.tar.gz")
    for p in out.iterdir():  # what the device tool brings back: <= 8 files, 16 MiB, plain names
        assert p.is_file() and p.stat().st_size < 16 * 1024 * 1024
        assert re.fullmatch(r"[A-Za-z0-9._-]+", p.name)
    steps = json.loads((out / "steps.json").read_text())
    assert [s["name"] for s in steps["steps"]] == [
        "device", "solo", "pairs", "transfers", "kernels", "validate-fifo-moderate",
        "validate-strait-moderate", "validate-fifo-intense", "validate-strait-intense"]
    assert all(s["status"] == "ok" for s in steps["steps"]), steps["steps"]
    log = (out / "session.log").read_text()
    assert f"strait_sim from {tmp_path}" in log  # the link farm, not the installed package
    # the bundle in the tarball loads, and records which architectures it timed
    with tarfile.open(out / files[0]) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    from strait_sim.profile_bundle import read_bundle_dir

    (folder,) = (tmp_path / "x").iterdir()
    bundle = read_bundle_dir(folder)
    assert set(bundle.model_names) == {"tiny_cnn", "tiny_mlp", "tiny_bert"}
    assert bundle.models["arch_fingerprint"].str.len().eq(12).all()
    assert bundle.has("pairs") and bundle.has("transfers") and bundle.has("kernels")
    with tarfile.open(out / "reports.tar.gz") as tar:
        names = tar.getnames()
    assert "reports/device.json" in names
    assert "reports/validate-strait-intense/report.json" in names
    summary = (out / "session-summary.md").read_text()
    assert "| validate-fifo-moderate | ok |" in summary and "Copies" in summary


def _session(tmp_path: Path, total_s: float = 100.0) -> gpu_session.Session:
    s = gpu_session.cpu_dry_run_settings()
    s.total_s = total_s
    (tmp_path / "reports").mkdir(parents=True, exist_ok=True)
    return gpu_session.Session(s, tmp_path / "out", tmp_path, "cpu-dry-run")


def test_a_step_past_its_budget_is_cut_and_the_next_one_runs(tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setattr(gpu_session, "GRACE_S", 1.0)
    monkeypatch.setattr(gpu_session, "MIN_STEP_S", 0.5)
    session = _session(tmp_path)
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    stubborn = [sys.executable, "-c", "import signal, time; "
                "signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"]
    cut = session.run(gpu_session.Step("sleepy", 1.0, sleep))
    killed = session.run(gpu_session.Step("stubborn", 1.0, stubborn))
    fine = session.run(gpu_session.Step("fine", 20.0, [sys.executable, "-c", "pass"]))
    failed = session.run(gpu_session.Step("bad", 20.0, [
        sys.executable, "-c", "print('fine so far'); print('boom | here'); exit(3)"]))
    assert (cut.status, killed.status, fine.status, failed.status) == ("cut", "cut", "ok",
                                                                       "failed")
    assert cut.seconds < 10 and killed.seconds < 10 and failed.rc == 3
    # a failed step says why in steps.json (its last lines; no "|" for the summary table)
    assert failed.note == "fine so far / boom / here" and fine.note == ""
    log = session.log_path.read_text()
    assert "== sleepy: cut" in log and "== fine: ok" in log


def test_the_session_deadline_skips_what_no_longer_fits(tmp_path: Path) -> None:
    session = _session(tmp_path, total_s=gpu_session.PACK_RESERVE_S + 1)
    step = session.run(gpu_session.Step("late", 30.0, [sys.executable, "-c", "pass"]))
    assert step.status == "skipped" and step.rc is None


def test_packing_stays_under_the_file_limit(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "small.csv").write_text("a\n1\n")
    (folder / "big.bin").write_bytes(os.urandom(200_000))
    monkeypatch.setattr(gpu_session, "MAX_FILE_BYTES", 50_000)
    path = gpu_session._tar(tmp_path / "b.tar.gz", folder, "b")
    assert path.stat().st_size <= 50_000
    with tarfile.open(path) as tar:
        names = tar.getnames()
        note = tar.extractfile("b/DROPPED.txt").read().decode()  # type: ignore[union-attr]
    assert "b/small.csv" in names and "b/big.bin" not in names and "big.bin" in note


def test_bundle_names_follow_the_device() -> None:
    assert gpu_session.slug("NVIDIA H200", "fp16") == "h200-fp16"
    assert gpu_session.slug("NVIDIA H100 80GB HBM3", "fp16") == "h100-80gb-hbm3-fp16"
    assert gpu_session.slug("AMD EPYC", "fp32") == "amd-epyc-fp32"


def test_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert gpu_session.main(["--mode", "cpu-dry-run", "--out", str(tmp_path / "o"), "--work",
                             str(tmp_path / "w"), "--budget", "nosuch=3"]) == 2
    assert "unknown step" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    assert gpu_session.main(["--mode", "cpu-dry-run", "--out", str(tmp_path / "full"),
                             "--work", str(tmp_path / "w")]) == 2
    assert (tmp_path / "full" / "x").read_text() == "keep me"


def _rounds(direction: str, n: int, times: list[list[float]], nbytes: int = 64 << 20,
            opposite: int = 0) -> list[dict]:
    return [{"direction": direction, "bytes": nbytes, "concurrent": n,
             "opposite_active": opposite, "rep": rep, "time_ms": t, "lane": lane}
            for rep, ts in enumerate(times) for lane, t in enumerate(ts)]


def test_link_sharing_tells_fair_share_from_serialization() -> None:
    rows = (_rounds("h2d", 1, [[10.0], [10.2]]) + _rounds("h2d", 2, [[20.0, 20.3]] * 2)
            + _rounds("h2d", 1, [[12.5]], opposite=1)
            + _rounds("d2h", 1, [[10.0], [10.0]]) + _rounds("d2h", 2, [[10.1, 20.0]] * 2)
            + _rounds("d2h", 1, [[10.0]], opposite=1))
    found = link_sharing(pd.DataFrame(rows))
    assert found["h2d"]["sharing"] == "fair" and found["d2h"]["sharing"] == "serial"
    assert found["h2d"]["concurrency"][2]["aggregate"] == pytest.approx(1.0, abs=0.02)
    assert found["h2d"]["opposite_factor"] == pytest.approx(10.1 / 12.5, abs=0.01)
    assert found["d2h"]["opposite_factor"] == pytest.approx(1.0)


@pytest.mark.slow
def test_remeasure_script_at_tiny_scale(tmp_path: Path) -> None:
    target = tmp_path / "cpu-tiny"
    target.mkdir()  # by default it re-measures the models the target lists
    (target / "models.csv").write_text("model,params\ntiny_mlp,1\ntiny_cnn,1\n")
    env = {**os.environ, "TARGET": str(target), "BATCHES": "1",
           "REPS": "2", "PAIR_REPS": "1", "PAIR_BUDGET_S": "2", "TRANSFER_REPS": "1",
           "MAX_TRANSFER_MIB": "0.0625", "KERNEL_ROWS": "5", "BUSY_CHECK": "0",
           "PYTHON": sys.executable, "TMPDIR": str(tmp_path)}
    got = subprocess.run(["bash", str(ROOT / "experiments" / "remeasure_cpu_profile.sh")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert got.returncode == 0, got.stderr[-3000:]
    from strait_sim.profile_bundle import read_bundle_dir

    bundle = read_bundle_dir(target)
    assert set(bundle.model_names) == {"tiny_mlp", "tiny_cnn"}
    assert bundle.models["params"].gt(1).all()  # replaced by the measurement
    assert "remeasure_cpu_profile.sh" in bundle.meta["notes"]
    assert not list(tmp_path.glob("remeasure-cpu.*"))  # the scratch folder is removed


@pytest.mark.gpu
@requires_gpu
def test_device_report_reads_copy_engines_and_mps_on_a_gpu(tmp_path: Path) -> None:
    """Never run yet (no GPU in the development sessions)."""
    from strait_sim.profiler.device_report import main

    assert main(["--gpu", "0", "--models", "vgg19,densenet121", "--out",
                 str(tmp_path / "d.json")]) == 0
    doc = json.loads((tmp_path / "d.json").read_text())
    engines = doc["device"]["copy_engines"]
    if engines.get("source"):  # cuda-bindings installed
        assert isinstance(engines.get("async_engine_count"), int), engines
    assert isinstance(doc["device"]["mps"]["active"], bool)
    cross = doc["zoo_vs_torchvision"]
    if cross.get("available"):
        for row in cross["models"].values():
            assert row["params_equal"] and row["output_rel_error"] < 1e-4, row


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("name", ["resnet50", "vit_b16", "roberta_base"])
def test_paper_models_capture_as_cuda_graphs(name: str) -> None:
    """Never run yet (no GPU in the development sessions)."""
    from strait_sim.profiler.backends import make_backend

    backend = make_backend("torch-cuda", device=0, models=[name], streams=1)
    try:
        backend.prepare(name, 2)
        assert backend.eager_fallbacks == {}  # type: ignore[attr-defined]
        assert backend.submit(name, 2, 0).result(timeout=120).compute_ms > 0
    finally:
        backend.close()


def test_only_the_dry_run_forces_a_busy_device() -> None:
    """The suite runs beside other jobs: the dry run's profile and validate steps start on
    a busy CPU (a refused step made the dry run fail under load); a GPU session never
    forces."""
    dry, gpu = gpu_session.cpu_dry_run_settings(), gpu_session.gpu_settings(0)
    assert "--force" in dry.profile_extra and "--force" in dry.validate_extra
    assert "--force" not in gpu.profile_extra + gpu.validate_extra
