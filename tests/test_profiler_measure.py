"""Measurements on the CPU backend with tiny models: bundle written, valid, plausible,
resumable, and valid after an interruption."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import cuda_available

from strait_sim.errors import UserError
from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.profiler.analysis import fit_link, slowdown_matrix, slowdown_samples
from strait_sim.profiler.backends import make_backend
from strait_sim.profiler.faults import FaultInjectingBackend
from strait_sim.profiler.measure_common import Settings
from strait_sim.profiler.measure_pairs import ordered_groups
from strait_sim.profiler.measure_utilization import parse_ncu_csv
from strait_sim.profiler.session import run_session
from strait_sim.profiler.zoo import ZOO

TINY = ("tiny_cnn", "tiny_mlp", "tiny_bert")


def tiny_settings(**over) -> Settings:
    base = dict(models=TINY, batches=(1, 2), parts=("solo", "pairs", "transfers", "kernels"),
                reps=4, warmup=1, pair_reps=2, offsets_frac=(0.0, 0.5), pair_budget_s=None,
                transfer_sizes=(4096, 65536), transfer_concurrency=(1, 2), transfer_reps=2,
                kernel_rows=10, seed=0)
    base.update(over)
    return Settings(**base)


class CountingFactory:
    """Builds tiny torch-cpu backends wrapped to count submits (and maybe interrupt)."""

    def __init__(self, interrupt_after: int | None = None, threads_per_stream: int = 1) -> None:
        self.interrupt_after = interrupt_after
        self.threads_per_stream = threads_per_stream
        self.backends: list[FaultInjectingBackend] = []

    def __call__(self) -> FaultInjectingBackend:
        inner = make_backend("torch-cpu", models=list(TINY), streams=2,
                             threads_per_stream=self.threads_per_stream, warmup=1)
        b = FaultInjectingBackend(inner, interrupt_after=self.interrupt_after)
        self.backends.append(b)
        return b

    @property
    def submits(self) -> int:
        return sum(b.submits for b in self.backends)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prof") / "bundle"
    run_session(out, CountingFactory(), tiny_settings(), command="test")
    return out


def test_bundle_is_written_and_validates(bundle_dir: Path) -> None:
    b = read_bundle_dir(bundle_dir)
    assert set(b.model_names) == set(TINY)
    for table in ("pairs", "transfers", "kernels"):
        assert b.has(table), table
    assert len(b.solo) == len(TINY) * 2 * 4
    meta = json.loads((bundle_dir / "profile.json").read_text())
    assert meta["schema_version"] == 1
    assert meta["device"]["kind"] == "cpu" and meta["device"]["name"]
    assert meta["backend"] == {**meta["backend"], "name": "torch-cpu", "precision": "fp32",
                               "cuda_graphs": False}
    for key in ("host", "software", "created", "concurrency_measured", "sessions"):
        assert key in meta, key
    assert meta["software"]["torch"] == torch.__version__
    for part in ("solo", "pairs", "transfers", "kernels"):
        assert meta["parts"][part]["completed"] is True
        assert meta["parts"][part]["seconds"] > 0
    assert meta["sessions"][0]["interrupted"] is False


def test_solo_samples_are_plausible_against_direct_timing(bundle_dir: Path) -> None:
    b = read_bundle_dir(bundle_dir)
    assert (b.solo["latency_ms"] > 0).all()
    spec = ZOO["tiny_cnn"]
    module = spec.build()
    x = spec.make_input(2, "fp32", torch.Generator().manual_seed(0))
    torch.set_num_threads(1)
    times = []
    with torch.inference_mode():
        module(x)
        for _ in range(7):
            t0 = time.perf_counter()
            module(x)
            times.append((time.perf_counter() - t0) * 1e3)
    direct = float(np.median(times))
    measured = b.solo_ms("tiny_cnn", 2)
    # A shared machine: allow a wide band, but the right order of magnitude.
    assert direct / 5 < measured < direct * 5, (direct, measured)


def test_colocated_latencies_are_not_below_solo_beyond_noise(bundle_dir: Path) -> None:
    b = read_bundle_dir(bundle_dir)
    s = slowdown_samples(b)
    assert len(s) == 2 * len(b.pairs)
    assert s["slowdown"].median() > 0.8
    for model, g in s.groupby("model"):
        assert g["slowdown"].median() > 0.7, model
    p = b.pairs
    assert (p["offset_ms"] >= 0).all()
    assert (p["overlap_ms"] <= np.minimum(p["latency_ms"], p["co_latency_ms"]) + 1e-9).all()
    # overlap_ms is what the timestamps say: first runs [0, L], co-runner [o, o + C].
    lat, co, off = p["latency_ms"], p["co_latency_ms"], p["offset_ms"]
    expected = np.maximum(0.0, np.minimum(lat, off + co) - off)
    assert np.allclose(p["overlap_ms"], expected, rtol=1e-4, atol=1e-4)
    frac = p["nominal_offset_frac"].astype(float)
    nominal = p["nominal_offset_ms"].astype(float)
    assert ((frac == 0) == (nominal == 0)).all()
    mat = slowdown_matrix(b)
    assert set(mat.index) == set(TINY)


def test_rerun_resumes_without_repeating_work(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    before = {f.name: f.read_bytes() for f in copy.glob("*.csv")}
    factory = CountingFactory()
    run_session(copy, factory, tiny_settings())
    assert factory.submits == 0
    assert {f.name: f.read_bytes() for f in copy.glob("*.csv")} == before
    meta = json.loads((copy / "profile.json").read_text())
    assert len(meta["sessions"]) == 2
    # More repetitions later: exactly the missing ones are taken, numbered on.
    run_session(copy, CountingFactory(), tiny_settings(reps=5, parts=("solo",)))
    solo = pd.read_csv(copy / "solo.csv")
    assert len(solo) == len(TINY) * 2 * 5
    assert not solo.duplicated(["model", "batch", "rep"]).any()
    assert sorted(solo["rep"].unique()) == [0, 1, 2, 3, 4]


def test_interrupted_run_leaves_a_valid_bundle_that_resumes(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    settings = tiny_settings(parts=("solo", "pairs"))
    # Solo of one unit = 1 warm-up + 4 samples; interrupt in the middle of the 3rd unit.
    with pytest.raises(KeyboardInterrupt):
        run_session(out, CountingFactory(interrupt_after=12), settings)
    b = read_bundle_dir(out)
    kept = len(b.solo)
    assert 8 <= kept < len(TINY) * 2 * 4
    meta = json.loads((out / "profile.json").read_text())
    assert meta["sessions"][-1]["interrupted"] is True
    assert meta["parts"]["solo"]["completed"] is False
    run_session(out, CountingFactory(), settings)
    b = read_bundle_dir(out)
    assert len(b.solo) == len(TINY) * 2 * 4
    assert not b.solo.duplicated(["model", "batch", "rep"]).any()
    assert b.has("pairs")


def test_pair_budget_limits_the_grid(tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    run_session(out, CountingFactory(), tiny_settings(parts=("pairs",), pair_budget_s=1e-6))
    meta = json.loads((out / "profile.json").read_text())
    assert meta["parts"]["pairs"]["grid_complete"] is False
    keys = pd.read_csv(out / "pairs.csv")["run_key"].str.rsplit("|", n=1).str[0].unique()
    assert len(keys) == 1  # one group: the first of the seeded order


def test_group_order_covers_every_model_pair_first() -> None:
    configs = [(m, b) for m in ("a", "b", "c") for b in (1, 2, 4)]
    groups = ordered_groups(configs, seed=1)
    assert len(groups) == len(configs) * (len(configs) + 1) // 2
    first = {tuple(sorted((x[0], y[0]))) for x, y in groups[:6]}
    assert len(first) == 6  # aa ab ac bb bc cc
    assert groups == ordered_groups(configs, seed=1)
    assert groups != ordered_groups(configs, seed=2)


def test_resume_refuses_another_device(bundle_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    meta = json.loads((copy / "profile.json").read_text())
    meta["device"]["name"] = "Some Other CPU"
    (copy / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="Some Other CPU"):
        run_session(copy, CountingFactory(), tiny_settings())


def test_resume_refuses_other_threads_per_stream(bundle_dir: Path, tmp_path: Path) -> None:
    """A bundle measured with 1 thread per stream, resumed with 2, once took the new
    samples with 2 threads while profile.json still said 1: refused now, nothing measured."""
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    before = (copy / "profile.json").read_text()
    factory = CountingFactory(threads_per_stream=2)
    with pytest.raises(UserError, match="threads per stream '1', this run uses '2'"):
        run_session(copy, factory, tiny_settings())
    assert factory.submits == 0 and (copy / "profile.json").read_text() == before


def test_non_bundle_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        run_session(tmp_path / "x", CountingFactory(), tiny_settings())


def test_link_fit_recovers_the_synthetic_ground_truth(synthetic_bundle) -> None:
    fits = fit_link(synthetic_bundle.transfers)
    assert set(fits) == {"h2d", "d2h"}
    assert fits["h2d"].gbps == pytest.approx(12.0, rel=0.05)
    assert fits["d2h"].gbps == pytest.approx(13.0, rel=0.05)
    assert fits["h2d"].fixed_ms == pytest.approx(0.010, rel=0.25)


def test_ncu_csv_is_duration_weighted() -> None:
    text = (
        "==PROF== Connected\n"
        '"ID","Kernel Name","gpu__time_duration.sum",'
        '"sm__throughput.avg.pct_of_peak_sustained_elapsed",'
        '"lts__t_sectors.avg.pct_of_peak_sustained_elapsed",'
        '"dram__throughput.avg.pct_of_peak_sustained_elapsed"\n'
        '"","","nsecond","%","%","%"\n'
        '"0","k1","1,000","90","10","20"\n'
        '"1","k2","3000","10","50","60"\n')
    got = parse_ncu_csv(text)
    assert got["sm_pct"] == pytest.approx(30.0)
    assert got["l2_pct"] == pytest.approx(40.0)
    assert got["dram_pct"] == pytest.approx(50.0)
    assert got["kernels"] == 2


def test_cli_gpu_without_gpu_is_one_line_and_nonzero(capsys, tmp_path: Path) -> None:
    if cuda_available():
        pytest.skip("this machine has a GPU")
    from strait_sim.cli.app import main

    code = main(["profile", "--gpu", "0", "--out", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and "GPU 0" in err
    assert not (tmp_path / "b").exists()


def test_cli_show_prints_and_writes_plots(bundle_dir: Path, tmp_path: Path, capsys) -> None:
    from strait_sim.cli.app import main

    code = main(["profile", "show", str(bundle_dir), "--plots", str(tmp_path / "plots")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Solo latency" in out and "Slowdown" in out and "Link fit" in out
    for name in ("slowdown_heatmap.png", "latency_vs_batch.png", "transfer_vs_size.png"):
        png = tmp_path / "plots" / name
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_rejects_bad_flags(capsys, tmp_path: Path) -> None:
    from strait_sim.cli.app import main

    assert main(["profile", "--cpu", "--only", "solo,nonsense", "--out", str(tmp_path)]) == 2
    assert "nonsense" in capsys.readouterr().err
    assert main(["profile", "--cpu", "--models", "no_such_net", "--out", str(tmp_path)]) == 2
    assert "no_such_net" in capsys.readouterr().err
    assert main(["profile", "--cpu", "--batches", "1,x"]) == 2
    assert main(["profile"]) == 2


def test_bundled_cpu_profile_is_a_real_measurement() -> None:
    from strait_sim.profile_bundle import load_bundle

    b = load_bundle("cpu-epyc2-fp32")
    assert b.device_kind == "cpu" and not b.meta.get("synthetic", False)
    DEFAULT_MODELS = b.meta["sessions"][0]["settings"]["models"]  # noqa: N806 - what it measured
    assert set(b.model_names) == set(DEFAULT_MODELS)
    assert b.meta["notes"]  # how and when it was measured
    assert all(s.get("command", "").startswith("strait-sim profile --cpu")
               for s in b.meta["sessions"])
    pairs = {tuple(sorted(x)) for x in zip(b.pairs["model"], b.pairs["co_model"], strict=True)}
    assert len(pairs) == len(DEFAULT_MODELS) * (len(DEFAULT_MODELS) + 1) // 2
    assert b.has("transfers") and b.has("kernels")
    # Files stay small enough to ship in the package.
    assert sum(f.stat().st_size for f in b.path.iterdir()) < 2_000_000


def test_cli_profiles_a_user_model_from_a_file(tmp_path: Path, capsys) -> None:
    from strait_sim.cli.app import main

    f = tmp_path / "my_models.py"
    f.write_text(
        "import torch\n"
        "from strait_sim.profiler.zoo import ModelSpec\n"
        "MODELS = [ModelSpec('my_linear', lambda: torch.nn.Linear(64, 8), (64,),"
        " item_output_shape=(8,))]\n")
    out = tmp_path / "b"
    code = main(["profile", "--cpu", "--model-file", str(f), "--models", "my_linear,tiny_mlp",
                 "--batches", "1,2", "--reps", "3", "--only", "solo", "--out", str(out),
                 "--threads-per-stream", "1", "--force"])
    assert code == 0, capsys.readouterr().err
    b = read_bundle_dir(out)
    assert set(b.model_names) == {"my_linear", "tiny_mlp"}
    row = b.models.set_index("model").loc["my_linear"]
    assert row["params"] == 64 * 8 + 8 and row["input_bytes_per_item"] == 64 * 4
    meta = json.loads((out / "profile.json").read_text())
    command = meta["sessions"][0]["command"]
    assert command.startswith("strait-sim profile --cpu") and f"--model-file {f}" in command
    assert "--batches 1,2" in command and "--reps 3" in command


def test_entry_point_models_are_registered(monkeypatch) -> None:
    from strait_sim.profiler import zoo

    class FakeEntryPoint:
        name = "fake"

        def load(self):  # noqa: ANN201
            return lambda: [zoo.ModelSpec("ep_model", lambda: torch.nn.Linear(4, 2), (4,),
                                          item_output_shape=(2,))]

    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group: [FakeEntryPoint()] if group == "strait_sim.models" else [])
    assert "ep_model" in zoo.model_registry()


OOM_MODEL_FILE = (
    "from strait_sim.profiler.zoo import ModelSpec\n"
    "def build():\n"
    "    raise RuntimeError('[enforce fail at alloc_cpu.cpp:127] err == 0. "
    "DefaultCPUAllocator: can\\'t allocate memory: you tried to allocate 16777216 bytes.')\n"
    "MODELS = [ModelSpec('huge_net', build, (64,), item_output_shape=(8,))]\n")


@pytest.mark.parametrize(("models", "left"), [("huge_net", None),
                                               ("tiny_mlp,huge_net", {"tiny_mlp"})])
def test_cli_model_that_cannot_be_built_is_one_line_and_leaves_a_valid_bundle_or_none(
        tmp_path: Path, capsys, models: str, left: set[str] | None) -> None:
    from strait_sim.cli.app import main

    f = tmp_path / "oom_models.py"
    f.write_text(OOM_MODEL_FILE)
    out = tmp_path / "b"
    code = main(["profile", "--cpu", "--model-file", str(f), "--models", models,
                 "--batches", "1", "--reps", "1", "--only", "solo", "--out", str(out),
                 "--threads-per-stream", "1", "--force"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "Traceback" not in "\n".join(err)
    assert err[-1].startswith("error: model 'huge_net' could not be built: out of memory")
    if left is None:
        assert not out.exists()  # nothing measured: no folder that looks like a bundle
    else:
        assert set(read_bundle_dir(out).model_names) == left  # valid, resumable


def test_cli_empty_models_is_an_error_not_the_defaults(tmp_path: Path, capsys) -> None:
    from strait_sim.cli.app import main

    assert main(["profile", "--cpu", "--models", " , ", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--models names no model" in err and "resnet50" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(("flag", "value", "needle"), [
    ("--budget-s", "-5", "--budget-s must be a finite number of seconds >= 0"),
    ("--budget-s", "nan", "--budget-s must be a finite number of seconds >= 0"),
    ("--triple-budget-s", "-1", "--triple-budget-s must be a finite number of seconds >= 0"),
    ("--warmup", "-3", "--warmup must be >= 0"),
    ("--seed", "-1", "--seed must be at least 0"),
    ("--seed", str(2**64), "--seed must be < 2**63"),
    ("--reps", "0", "--reps must be >= 1"),
    ("--pair-reps", "-2", "--pair-reps must be >= 1"),
    ("--transfer-reps", "0", "--transfer-reps must be >= 1"),
    ("--kernel-rows", "0", "--kernel-rows must be >= 1"),
    ("--threads-per-stream", "0", "--threads-per-stream must be >= 1"),
    ("--max-transfer-mib", "inf", "--max-transfer-mib must be a size in MiB"),
    ("--max-transfer-mib", "0.001", "--max-transfer-mib must be a size in MiB"),
    ("--max-transfer-mib", "1e+30", "--max-transfer-mib must be a size in MiB"),
    ("--threads-per-stream", "100000", "--threads-per-stream must be at most"),
])
def test_cli_numeric_flag_out_of_range_is_one_line_before_any_measuring(
        tmp_path: Path, capsys, monkeypatch, flag: str, value: str, needle: str) -> None:
    """A negative budget used to mean "no limit", a negative --warmup none, a negative seed
    failed in numpy at the pairs: each is refused, naming the flag and its range, before
    the device is looked at or the bundle folder made."""
    import strait_sim.live.busy_check as busy_check
    import strait_sim.profiler.session as session
    from strait_sim.cli.app import main

    def must_not_run(*_a: object, **_k: object) -> None:
        raise AssertionError("measuring began")

    monkeypatch.setattr(busy_check, "check_device_idle", must_not_run)
    monkeypatch.setattr(session, "run_session", must_not_run)
    out = tmp_path / "b"
    code = main(["profile", "--cpu", "--models", "tiny_mlp", "--out", str(out), flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(f"error: {needle}"), err
    assert value in err[0]
    assert not out.exists()
