"""``strait-sim workload generate|show``, the workload flags and TOML experiment files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.cli.app import main
from strait_sim.cli.workload_options import workload_from_options
from strait_sim.errors import UserError
from strait_sim.workloads.spec import KEYS

GEN = ["workload", "generate", "--profile", "synthetic-tiny"]


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


def test_generate_then_show(tmp_path, capsys):
    out = tmp_path / "w.csv"
    rc = main(GEN + ["--workload", "diurnal", "--rate", "200", "--duration", "50",
                     "--diurnal-amplitude", "0.9", "--mix", "synth_small=1,synth_large=3",
                     "--hp-fraction", "0.4", "--seed", "3", "--out", str(out)])
    assert rc == 0 and out.is_file()
    df = pd.read_csv(out)
    assert list(df.columns) == ["arrival_s", "model", "priority", "deadline_s", "items"]
    assert set(df["model"]) == {"synth_small", "synth_large"}
    capsys.readouterr()
    png = tmp_path / "rate.png"
    assert main(["workload", "show", str(out), "--plot", str(png), "--bins", "5"]) == 0
    text = capsys.readouterr().out
    assert f"{len(df):,}" in text and "HP share" in text and "synth_large" in text
    assert "inter-arrival CV" in text and "rate over time" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave nothing behind


def test_same_seed_same_file(tmp_path):
    args = GEN + ["--workload", "mmpp", "--rate", "300", "--duration", "10"]
    assert main(args + ["--seed", "1", "--out", str(tmp_path / "a.csv")]) == 0
    assert main(args + ["--seed", "1", "--out", str(tmp_path / "b.csv")]) == 0
    assert main(args + ["--seed", "2", "--out", str(tmp_path / "c.csv")]) == 0
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.csv", "b.csv", "c.csv"))
    assert a == b and a != c


def _rate_table_starts(text: str) -> list[str]:
    """The "from (s)" column of ``workload show``'s rate-over-time table."""
    rows = text.split("rate over time", 1)[1].splitlines()
    return [r.split("│")[1].strip() for r in rows if r.count("│") >= 4]


@pytest.mark.parametrize("shift,want", [(0.0, ["10", "20", "30", "40"]),
                                        (1000.0, ["1010", "1020", "1030", "1040"]),
                                        (1000.5, ["1010.5", "1020.5", "1030.5",
                                                  "1040.5"])])
def test_show_labels_rate_bins_with_the_traces_own_times(tmp_path, capsys, shift, want):
    """Bins are counted from the first arrival and were labelled from 0 (0, 10, 20, 30
    for a trace starting at 10 s); the label is now the bin's start in trace seconds,
    with the digits to tell bins apart far from 0."""
    path = tmp_path / "t.csv"
    times = [10.0 + shift + k for k in range(41)]  # 10 .. 50 s: four 10 s bins
    path.write_text("arrival_s\n" + "\n".join(repr(t) for t in times) + "\n")
    assert main(["workload", "show", str(path), "--bins", "4"]) == 0
    text = capsys.readouterr().out
    assert "(10 s bins)" in text
    assert _rate_table_starts(text) == want


def test_show_an_azure_trace(capsys):
    from strait_sim.workloads.trace import packaged_trace_path

    assert main(["workload", "show", str(packaged_trace_path("azure-conv"))]) == 0
    text = capsys.readouterr().out
    assert "19,366" in text and "Azure trace" in text and "no model column" in text


@pytest.mark.parametrize("args,needle", [
    (["--bins", "10001"], "--bins must be from 1 to 10,000, got 10,001"),
    (["--plot-bins", "100000000"], "--plot-bins must be from 1 to 10,000, got 100,000,000"),
    (["--bins", "0"], "--bins must be from 1 to 10,000, got 0"),
])
def test_show_bounds_its_bins(tmp_path, capsys, args, needle):
    """--bins 100000000 printed 10^8 table rows (it seemed to hang); the bound is checked
    before the trace is read."""
    png = tmp_path / "rate.png"
    assert main(["workload", "show", "azure-conv", "--plot", str(png)] + args) == 2
    assert needle in _one_error_line(capsys)
    assert capsys.readouterr().out == "" and not png.exists()


def test_closed_loop_cannot_be_generated(tmp_path, capsys):
    out = tmp_path / "c.csv"
    assert main(GEN + ["--workload", "closed", "--out", str(out)]) == 2
    assert "closed-loop workload cannot be written as a trace" in _one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--rate", "0"], "--rate: must be > 0, got 0"),
    (["--rate", "10", "--load", "0.5"], "give --rate or --load, not both"),
    (["--workload", "poisson", "--cv", "2"], "--cv: does not apply to workload 'poisson'"),
    (["--workload", "wavy"], "--workload: unknown value 'wavy'"),
    (["--models", "ghost"], "--models: unknown model"),
    (["--mix", "synth_small=x"], "--mix: 'x' is not a number"),
    (["--mix", "synth_small=1", "--models", "synth_small,synth_large"],
     "--mix: no weight for model 'synth_large'"),
    (["--hp-fraction", "1.5"], "--hp-fraction: must be <= 1"),
    (["--hp-fraction", "0.1", "--hp-models", "synth_small"], "not both"),
    (["--slo", "middle=3"], "--slo: class must be 'high' or 'low'"),
    (["--slo", "0"], "--slo: '0' must be a number > 0"),
    (["--items", "0"], "--items: '0' must be a whole number >= 1"),
    (["--items", "5-2"], "--items: range '5-2' ends before it starts"),
    (["--items", "1-9"], "--items: 9 items is above --max-batch 8"),  # before any arrival
    (["--items", "12", "--max-batch", "10"], "--items: 12 items is above --max-batch 10"),
    (["--duration", "-1"], "--duration: must be > 0"),
    (["--rate", "5", "--capacity-batch", "4"], "--capacity-batch: only applies with --load"),
    (["--workload", "azure-conv", "--capacity-batch", "4"], "only applies with --load"),
    (["--load", "0.5", "--capacity-batch", "0"], "--capacity-batch: must be >= 1"),
    (["--workload", "trace"], "workload 'trace' needs --trace PATH"),
    (["--trace", "/nonexistent/t.csv"], "/nonexistent/t.csv: trace file not found"),
    (["--workload", "azure-conv", "--window", "9000:"],
     "no requests in the time window from 9000 s on (--window 9000:)"),
    (["--workload", "azure-conv", "--window", "5"], "--window: write START:END"),
    (["--workload", "azure-conv", "--trace-map", "column"], "has no 'model' column"),
    (["--workload", "azure-conv", "--rate", "5", "--time-scale", "2"], "give only one of"),
    (["--workload", "azure-conv", "--trace-map", "tokens", "--token-buckets", "5"],
     "3 models need 2 boundaries"),
])
def test_bad_flags_are_one_line_and_write_nothing(tmp_path, capsys, args, needle):
    out = tmp_path / "w.csv"
    assert main(GEN + args + ["--out", str(out)]) == 2
    assert needle in _one_error_line(capsys)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_bad_trace_via_cli_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,model\n0,synth_small\n1,nope\n")
    out = tmp_path / "w.parquet"
    assert main(GEN + ["--trace", str(bad), "--out", str(out)]) == 2
    assert f"{bad}, line 3, column 'model': unknown model 'nope'" in _one_error_line(capsys)
    assert not out.exists()
    assert main(["workload", "show", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: trace file not found" in _one_error_line(capsys)


def test_bad_output_names(tmp_path, capsys):
    assert main(GEN + ["--rate", "5", "--out", str(tmp_path / "w.txt")]) == 2
    assert "must end in .csv, .csv.gz or .parquet" in _one_error_line(capsys)
    src = tmp_path / "w.csv"
    assert main(GEN + ["--rate", "5", "--out", str(src)]) == 0
    assert main(["workload", "show", str(src), "--plot", str(tmp_path / "p.jpg")]) == 2
    assert "PNG" in _one_error_line(capsys)


# -- TOML experiment files -----------------------------------------------------------------


def test_toml_config_and_flag_override(tmp_path, synthetic_bundle):
    trace = tmp_path / "traces" / "t.csv"
    trace.parent.mkdir()
    trace.write_text("arrival_s\n0\n0.5\n1\n")
    cfg = tmp_path / "exp.toml"
    cfg.write_text("""
seed = 3  # other parts' keys are left alone
[workload]
kind = "mmpp"
rate = 250
duration = 20
mix = { synth_small = 3, synth_medium = 1 }
hp-fraction = 0.3
slo = { high = 3, low = 10 }
items = [1, 2, 4]
burst_ratio = 6
""")
    wl = workload_from_options({"config": cfg}, synthetic_bundle)
    d = wl.describe()
    assert d["kind"] == "mmpp" and d["arrivals"]["rate"] == 250.0
    assert d["arrivals"]["burst_ratio"] == 6.0 and d["duration_s"] == 20.0
    assert d["requests"]["models"] == ["synth_small", "synth_medium"]
    assert d["requests"]["deadline"] == {"high": {"slo": 3.0}, "low": {"slo": 10.0}}
    assert d["requests"]["items"]["values"] == [1, 2, 4]
    over = workload_from_options({"config": cfg, "rate": 99.0, "hp_fraction": 0.5},
                                 synthetic_bundle).describe()
    assert over["arrivals"]["rate"] == 99.0 and over["requests"]["hp_fraction"] == 0.5
    rel = tmp_path / "replay.toml"
    rel.write_text('[workload]\ntrace = "traces/t.csv"\nwindow = [0.5, ""]\n')
    wl2 = workload_from_options({"config": rel}, synthetic_bundle)
    assert wl2.kind == "trace" and wl2.path == str(trace.resolve())
    arr = np.concatenate([c.arrival_s for c in wl2.chunks(synthetic_bundle, 0)])
    assert arr.tolist() == [0.0, 0.5]


@pytest.mark.parametrize("text,needle", [
    ("[workload]\nrate = 'fast'\n", "[workload] rate: must be a number, got 'fast'"),
    ("[workload]\nspeed = 3\n", "[workload] unknown key 'speed'"),
    ("[workload]\nrate = 3\nrate = 4\n", "not valid TOML"),
    ("rate = 3\n", "has no [workload] table"),
    ("[workload]\nkind = 'gamma'\nworkload = 'poisson'\n", "set the same thing"),
    ("[workload]\nrate = true\n", "rate: must be a number, got True"),
    ("[workload]\nitems = []\n", "[workload] items: no entries in []"),
    ("[workload]\nitems = {}\n", "[workload] items: no entries in {}"),
    ("[workload]\nslo = {}\n", "[workload] slo: no entries in {}"),  # was ignored
    ("[workload]\nmodels = []\n", "[workload] models: no entries in []"),
])
def test_bad_toml_is_one_line(tmp_path, synthetic_bundle, text, needle):
    cfg = tmp_path / "exp.toml"
    cfg.write_text(text)
    with pytest.raises(UserError) as err:
        workload_from_options({"config": cfg}, synthetic_bundle)
    assert needle in str(err.value) and str(cfg) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("command", [
    ["run", "--profile", "synthetic-tiny", "--policy", "fifo", "-q"],
    ["compare", "--profile", "synthetic-tiny", "--policies", "fifo,edf", "-q"],
    GEN,
])
def test_empty_items_in_a_config_is_one_line(tmp_path, capsys, command):
    cfg = tmp_path / "exp.toml"
    cfg.write_text("[workload]\nitems = []\n")
    out = tmp_path / "out.csv"
    assert main(command + ["--config", str(cfg), "--out", str(out)]) == 2
    assert f"{cfg}: [workload] items: no entries in []" in _one_error_line(capsys)
    assert not out.exists()


def test_every_key_has_a_flag():
    from strait_sim.cli.workload_options import WORKLOAD_OPTIONS

    names = {p.name for p in WORKLOAD_OPTIONS}
    assert set(KEYS) | {"config"} == names


@pytest.mark.parametrize("args", [
    ["--workload", "azure-conv", "--window", "0:120", "--time-scale", "0.05"],
    ["--workload", "closed", "--clients", "4", "--think-ms", "20", "--duration", "2"],
])
def test_run_records_a_repeatable_workload(tmp_path, args):
    import json

    from strait_sim.workloads.spec import workload_from_description

    out = tmp_path / "run"
    assert main(["run", "--profile", "synthetic-tiny", "--policy", "fifo", "-q",
                 "--out", str(out)] + args) == 0
    desc = json.loads((out / "summary.json").read_text())["workload"]
    assert workload_from_description(desc).describe() == desc
    n = len(pd.read_parquet(out / "requests.parquet"))
    assert n > 10


def test_outputs_are_not_left_private(tmp_path):
    import os
    import stat

    out = tmp_path / "w.csv"
    assert main(GEN + ["--rate", "5", "--duration", "2", "--out", str(out)]) == 0
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask
