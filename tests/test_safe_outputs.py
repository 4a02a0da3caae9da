"""Nothing lost, nothing hangs (issue 17): output folders, bounded work, one-line errors.

Each case of the issue has its test here: the command exits 2 with one line on stderr that
names the problem, leaves nothing behind, and touches no file it did not write.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from strait_sim.cli.app import main
from strait_sim.output_folder import MARKER

RUN = ["run", "--profile", "synthetic-tiny", "--rate", "200", "--duration", "1", "-q",
       "--policy", "fifo"]


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    return err


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``root`` with its size and mtime: "nothing touched" is equality."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _checkout(folder: Path) -> Path:
    """A folder that looks like a git checkout: what `run --out` once deleted."""
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "README.md").write_text("my project\n")
    return folder


# -- output folders ----------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    RUN,
    ["compare", "--profile", "synthetic-tiny", "--policies", "fifo", "--seeds", "1",
     "--rate", "100", "--duration", "1", "-q"],
    ["predict", "evaluate", "--profile", "synthetic-tiny", "--predictors", "solo"],
    ["validate", "--live", "--cpu", "--profile", "synthetic-tiny", "--duration", "1"],
])
def test_a_foreign_folder_is_refused_and_untouched(command, tmp_path, capsys):
    repo = _checkout(tmp_path / "repo")
    before = _snapshot(tmp_path)
    assert main([*command, "--out", str(repo)]) == 2
    err = _error(capsys)
    assert str(repo) in err and "holds no strait-sim result" in err
    assert _snapshot(tmp_path) == before


def test_overwrite_replaces_only_an_earlier_result_of_the_same_kind(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    assert (out / MARKER).is_file()
    first = (out / "requests.parquet").read_bytes()
    assert main([*RUN, "--out", str(out)]) == 2
    assert "add --overwrite" in _error(capsys)
    assert main([*RUN, "--out", str(out), "--overwrite"]) == 0
    assert (out / "requests.parquet").read_bytes() == first  # same seed, same bytes
    (out / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    assert main([*RUN, "--out", str(out), "--overwrite"]) == 2
    assert "'notes.txt', which strait-sim did not write" in _error(capsys)
    assert _snapshot(tmp_path) == before
    # A result of another kind is not "an earlier result": compare refuses a run folder.
    (out / "notes.txt").unlink()
    assert main(["compare", "--profile", "synthetic-tiny", "--policies", "fifo", "--seeds",
                 "1", "--duration", "1", "-q", "--out", str(out)]) == 2
    assert "holds a run result, not a compare folder" in _error(capsys)


@pytest.mark.parametrize("name", ["report.html", "command.txt"])
def test_a_users_file_named_like_the_tools_extras_is_kept(tmp_path, capsys, name):
    """command.txt and report.html are the tool's only when they hold what it writes
    there: a user's file of that name stops --overwrite, and report keeps a user's page."""
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    assert main(["report", str(out)]) == 0  # the tool's own page and command: replaced
    assert main([*RUN, "--out", str(out), "--overwrite"]) == 0
    (out / name).write_text("<html>my own notes</html>\n")
    before = _snapshot(tmp_path)
    assert main([*RUN, "--out", str(out), "--overwrite"]) == 2
    assert f"'{name}', which strait-sim did not write" in _error(capsys)
    assert _snapshot(tmp_path) == before
    if name == "report.html":
        assert main(["report", str(out)]) == 2
        assert "was not written by strait-sim and is kept" in _error(capsys)
        assert main(["report", str(out), "--html", str(tmp_path / "page.html")]) == 0
        assert (out / name).read_text() == "<html>my own notes</html>\n"


@pytest.mark.parametrize("inside", ["run/summary.json", "run/tl.json", "run"])
def test_trace_out_inside_out_is_refused_before_the_run(tmp_path, capsys, inside):
    """The run folder is written and replaced whole: a timeline inside it would overwrite
    a result file, or be taken for a user's file by the next --overwrite."""
    assert main([*RUN, "--out", str(tmp_path / "run"),
                 "--trace-out", str(tmp_path / inside)]) == 2
    assert "lies in --out" in _error(capsys)
    assert os.listdir(tmp_path) == []


def test_a_later_compare_in_the_same_folder_leaves_no_earlier_plot(tmp_path, capsys):
    """compare continues its folder: the tables are the new comparison's, and so must the
    plots be (the earlier loads' CDFs stayed); a user's PNG of such a name is kept."""
    out = tmp_path / "cmp"
    base = ["compare", "--profile", "synthetic-tiny", "--seeds", "1", "--duration", "1",
            "-q", "--out", str(out)]
    assert main([*base, "--policies", "fifo,priority", "--loads", "0.5,1.5"]) == 0
    assert {"latency_cdf_load0.5.png", "latency_cdf_load1.5.png"} <= set(os.listdir(out))
    (out / "latency_cdf_load9.png").write_bytes(b"\x89PNG my own plot")
    assert main([*base, "--policies", "fifo", "--loads", "0.7"]) == 0
    plots = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    assert plots == ["latency_cdf_load0.7.png", "latency_cdf_load9.png",
                     "violation_vs_load.png"]
    assert main([*base, "--policies", "fifo"]) == 0  # not swept: one CDF, no load plot
    plots = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    assert plots == ["latency_cdf.png", "latency_cdf_load9.png"]


def test_out_through_a_symlink_writes_the_folder_it_names(tmp_path):
    """--out LINK (a symlink to a folder) writes into that folder and leaves the link
    alone, also with --overwrite; nothing is left beside them."""
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to("target")
    for extra in ([], ["--overwrite"]):
        assert main([*RUN, "--out", str(tmp_path / "link"), *extra]) == 0
        assert (tmp_path / "link").is_symlink()
        assert (tmp_path / "target" / "requests.parquet").is_file()
        assert sorted(os.listdir(tmp_path)) == ["link", "target"]


def _is_a_run_without_temporaries(folder: Path) -> None:
    names = set(os.listdir(folder))
    assert {MARKER, "requests.parquet", "summary.json"} <= names
    assert not [n for n in names if ".tmp-" in n or ".old-" in n], names


def test_out_dot_writes_in_place_and_leaves_no_temporary(tmp_path, capsys, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main([*RUN, "--out", "."]) == 0
    _is_a_run_without_temporaries(here)
    assert main([*RUN, "--out", ".", "--overwrite"]) == 0
    _is_a_run_without_temporaries(here)
    assert sorted(os.listdir(tmp_path)) == ["here"]  # nothing beside it either
    (here / "keep.txt").write_text("x")
    assert main([*RUN, "--out", ".", "--overwrite"]) == 2
    assert (here / "keep.txt").read_text() == "x"


def test_an_earlier_result_without_marker_is_recognised(tmp_path, capsys):
    """Folders written before the marker existed still count as results of their kind."""
    out = tmp_path / "old"
    assert main([*RUN, "--out", str(out)]) == 0
    (out / MARKER).unlink()
    assert main([*RUN, "--out", str(out), "--overwrite"]) == 0
    assert (out / MARKER).is_file()


def test_trace_out_and_generate_never_replace_a_users_file(tmp_path, capsys):
    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "data"}')
    assert main([*RUN, "--trace-out", str(mine), "--overwrite"]) == 2
    assert "not written by strait-sim" in _error(capsys)
    assert mine.read_text() == '{"my": "data"}'
    users = tmp_path / "users.csv"
    users.write_text("arrival_s\n0.5\n")
    gen = ["workload", "generate", "--profile", "synthetic-tiny", "--rate", "50",
           "--duration", "1"]
    assert main([*gen, "--out", str(users), "--overwrite"]) == 2
    assert users.read_text() == "arrival_s\n0.5\n"
    capsys.readouterr()
    ours = tmp_path / "ours.csv"
    assert main([*gen, "--out", str(ours)]) == 0
    assert main([*gen, "--out", str(ours)]) == 2
    assert "add --overwrite" in _error(capsys)
    assert main([*gen, "--out", str(ours), "--overwrite", "--seed", "3"]) == 0


def test_sweep_workers_zero_leaves_nothing(tmp_path, capsys):
    exp = tmp_path / "exp.toml"
    exp.write_text('[experiment]\nname = "t"\nout = "sw"\nprofile = "synthetic-tiny"\n'
                   '[fixed]\nduration = 1\nrate = 50\n[grid]\npolicy = ["fifo"]\n')
    out = tmp_path / "sw"
    assert main(["sweep", str(exp), "--workers", "0", "--out", str(out), "-q"]) == 2
    assert "--workers must be at least 1" in _error(capsys)
    assert not out.exists()
    repo = _checkout(tmp_path / "repo")
    before = _snapshot(repo)
    assert main(["sweep", str(exp), "--out", str(repo), "-q"]) == 2
    assert "holds no strait-sim result" in _error(capsys)
    assert _snapshot(repo) == before


def test_profile_show_plots_refuse_a_foreign_folder(tmp_path, capsys):
    repo = _checkout(tmp_path / "repo")
    before = _snapshot(repo)
    assert main(["profile", "show", "synthetic-tiny", "--plots", str(repo)]) == 2
    assert _snapshot(repo) == before
    capsys.readouterr()
    plots = tmp_path / "plots"
    assert main(["profile", "show", "synthetic-tiny", "--plots", str(plots)]) == 0
    assert main(["profile", "show", "synthetic-tiny", "--plots", str(plots),
                 "--overwrite"]) == 0
    assert (plots / MARKER).is_file() and not list(tmp_path.glob(".*tmp*"))


# -- bad input ---------------------------------------------------------------------------

def test_negative_seed_is_one_line_for_run_and_compare(tmp_path, capsys):
    assert main([*RUN, "--seed", "-1"]) == 2
    assert "--seed must be at least 0, got -1" in _error(capsys)
    out = tmp_path / "cmp"
    assert main(["compare", "--profile", "synthetic-tiny", "--policies", "fifo", "--seed",
                 "-1", "--duration", "1", "-q", "--out", str(out)]) == 2
    assert "--seed must be at least 0" in _error(capsys)
    assert not out.exists()  # no .error.json files: nothing ran


@pytest.mark.parametrize("param, needle", [
    ("foo=1", "policy 'fifo' has no parameter 'foo'; valid: max_batch"),
    ("strait.nope=1", "policy 'strait' has no parameter 'nope'; valid: drop_early, hp_guard"),
    ("strait.hp_guard=7", "hp_guard must be true or false, got 7"),
    ("strait.safety=fast", "safety must be a number, got 'fast'"),
    ("strait.hp_risk=null", "hp_risk must be a number, got None"),  # float, not float | None
])
def test_param_errors_list_valid_names_without_python(param, needle, capsys):
    policy = "strait" if param.startswith("strait.") else "fifo"
    args = [a for a in RUN if a not in ("--policy", "fifo")]
    assert main([*args, "--policy", policy, "--param", param]) == 2
    err = _error(capsys)
    assert needle in err
    assert "()" not in err and "takes no arguments" not in err


def test_boolean_params_take_true_and_false(capsys):
    args = [a for a in RUN if a not in ("--policy", "fifo")]
    assert main([*args, "--policy", "strait", "--param", "hp_guard=false"]) == 0


def test_a_parameter_typed_optional_takes_null(tmp_path):
    """reef's ``pad_slowdown: float | None`` (documented: None lifts the bound) takes
    ``null`` on the command line, as its class does, and it changes the run."""
    args = [a for a in RUN if a not in ("--policy", "fifo")]
    out = {}
    for value in ("null", "1.25"):
        folder = tmp_path / value
        assert main([*args, "--policy", "reef", "--slots", "2",
                     "--param", f"pad_slowdown={value}", "--out", str(folder)]) == 0
        out[value] = json.loads((folder / "summary.json").read_text())
    assert out["null"]["policy_params"]["pad_slowdown"] is None
    assert out["1.25"]["policy_params"]["pad_slowdown"] == 1.25
    requests = {v: pd.read_parquet(tmp_path / v / "requests.parquet") for v in out}
    assert not requests["null"].equals(requests["1.25"])  # the bound was lifted


def test_missing_torch_names_the_extra(tmp_path):
    """As after a plain `pip install` without torch: in a fresh interpreter (in this one
    torch is already imported by other tests), ``import torch`` fails."""
    import subprocess

    code = ("import sys; sys.modules['torch'] = None\n"
            "from strait_sim.cli.app import main\n"
            "sys.exit(main(['profile', '--cpu', '--models', 'resnet18', '--only', 'solo',"
            " '--out', 'never-written']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "needs torch" in err and "strait-sim[torch]" in err
    assert not (tmp_path / "never-written").exists()


def test_opposite_active_accepts_true_and_false(tmp_path, synthetic_bundle_path):
    from strait_sim.errors import BundleError
    from strait_sim.profile_bundle import load_bundle

    bundle = tmp_path / "b"
    shutil.copytree(synthetic_bundle_path, bundle)
    path = bundle / "transfers.csv"
    df = pd.read_csv(path)
    words = df.assign(opposite_active=df["opposite_active"].map({0: "false", 1: "True"}))
    words.to_csv(path, index=False)
    loaded = load_bundle(str(bundle))
    assert loaded.transfers["opposite_active"].tolist() == df["opposite_active"].tolist()
    words.loc[3, "opposite_active"] = "maybe"
    words.to_csv(path, index=False)
    with pytest.raises(BundleError, match="line 5, column 'opposite_active'"):
        load_bundle(str(bundle))


def test_summary_table_counts_add_up_with_failed_column():
    from strait_sim.cli.render import summary_table

    cls = {"count": 10, "on_time": 3, "late": 1, "dropped": 1, "rejected": 0, "failed": 5,
           "violation_rate": 0.7, "p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    summary = {"policy": "fifo", "seed": 0, "by_class": {"high": cls, "low": cls},
               "overall": {**cls, "count": 20, "on_time": 6, "late": 2, "dropped": 2,
                           "failed": 10}}
    table = summary_table(summary)
    cells = {str(col.header): list(col._cells) for col in table.columns}
    assert "fail" in cells
    row = cells["class"].index("all")
    n, on_time, late, drop, rej, fail = (int(cells[c][row]) for c in
                                         ("n", "on time", "late", "drop", "rej", "fail"))
    assert n == on_time + late + drop + rej + fail == 20


# -- bounded work ------------------------------------------------------------------------

def test_a_huge_run_is_refused_at_once_with_estimate_and_flag(tmp_path, capsys):
    out = tmp_path / "big"
    start = time.monotonic()
    assert main(["run", "--profile", "synthetic-tiny", "--rate", "1e9", "--duration", "1",
                 "-q", "--out", str(out)]) == 2
    assert time.monotonic() - start < 30  # no work was started (generous: a busy CI box)
    err = _error(capsys)
    assert "1,000,000,000 requests" in err and "GiB of memory" in err
    assert "--allow-large" in err
    assert not out.exists()


def test_the_limit_is_configurable_and_the_flag_overrides(monkeypatch, capsys):
    monkeypatch.setenv("STRAIT_SIM_MAX_REQUESTS", "50")
    assert main(RUN) == 2  # 200 req/s x 1 s = 200 > 50
    assert "above the limit of 50 requests" in _error(capsys)
    assert main([*RUN, "--allow-large"]) == 0
    monkeypatch.setenv("STRAIT_SIM_MAX_REQUESTS", "lots")
    assert main(RUN) == 2
    assert "STRAIT_SIM_MAX_REQUESTS" in _error(capsys)


def test_sweep_plan_compare_and_the_api_keep_the_limit(tmp_path, monkeypatch, capsys):
    """Every way in refuses a point above the limit before simulating it (a sweep or a plan
    once filled the machine's memory instead), and --allow-large / allow_large lets it run."""
    from strait_sim import api
    from strait_sim.errors import UserError

    monkeypatch.setenv("STRAIT_SIM_MAX_REQUESTS", "50")
    exp = tmp_path / "exp.toml"
    exp.write_text('[experiment]\nprofile = "synthetic-tiny"\nout = "' +
                   str(tmp_path / "sw") + '"\n[grid]\nrate = [20, 200]\n'
                   '[fixed]\npolicy = "fifo"\nduration = 1\n')
    assert main(["sweep", "run", str(exp), "-q"]) == 1  # 200 req/s x 1 s: above; 20: runs
    said = capsys.readouterr()
    assert "1 run, 0 already done, 1 failed" in said.out
    assert "this point would take about 200 requests" in said.err and "--allow-large" in said.err
    assert main(["sweep", "run", str(exp), "-q", "--allow-large"]) == 0
    plan = ["plan", "--profile", "synthetic-tiny", "--policies", "fifo", "--rate", "200",
            "--duration", "1", "--target", "high=0.9", "--gpus", "1:2", "--seeds", "1", "-q"]
    assert main(plan) == 2
    assert "each simulation would take about 200 requests" in _error(capsys)
    assert main([*plan, "--allow-large"]) == 0
    compare = ["compare", "--profile", "synthetic-tiny", "--policies", "fifo", "--rate",
               "200", "--duration", "1", "--seeds", "1", "-q"]
    assert main(compare) == 2
    assert main([*compare, "--allow-large"]) == 0  # the flag reaches every point
    with pytest.raises(UserError, match="above the limit of 50 requests"):
        api.simulate("fifo", "synthetic-tiny", rate=200, duration=1)
    assert len(api.simulate("fifo", "synthetic-tiny", rate=200, duration=1,
                            allow_large=True).requests) > 50


def test_a_closed_loop_is_bounded_too(capsys):
    assert main(["run", "--profile", "synthetic-tiny", "--workload", "closed", "--clients",
                 "100000", "--think-ms", "1", "--duration", "1000", "-q"]) == 2
    err = _error(capsys)
    assert "about 100,000,100,000 requests" in err and "--allow-large" in err


# -- trace files: streamed, bounded, located ---------------------------------------------

@pytest.mark.parametrize("suffix", [".csv", ".csv.gz"])
def test_a_sparse_trace_is_refused_at_its_first_line(tmp_path, capsys, suffix):
    """2 GiB of NUL bytes used to be read whole (57 s, 14.5 GB) before the error; the
    reader now stops at the first NUL byte, whatever the file's size."""
    import gzip

    plain = tmp_path / "sparse.csv"
    with open(plain, "wb") as fh:
        fh.write(b"arrival_s\n0.5\n")
        fh.truncate(64 * 2**20)  # a sparse 64 MiB file: zeros after line 2
    path = plain
    if suffix == ".csv.gz":
        path = tmp_path / "sparse.csv.gz"
        path.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    assert main(["workload", "show", str(path)]) == 2
    err = _error(capsys)
    assert f"{path}, line 3: holds a NUL byte" in err


def test_an_endless_line_is_refused_without_reading_it_whole(tmp_path, capsys):
    path = tmp_path / "long.csv"
    path.write_bytes(b"arrival_s\n0.5\n" + b"9" * (3 * 2**20))
    assert main(["run", "--profile", "synthetic-tiny", "--trace", str(path), "-q"]) == 2
    assert "line 3: line longer than 1 MiB" in _error(capsys)


def test_a_row_with_more_fields_than_the_header_is_located(tmp_path, capsys):
    """pandas would take the first field as the row's index (a silent shift)."""
    path = tmp_path / "t.csv"
    path.write_text("arrival_s,model\n0.1,tiny_mlp\n0.2,tiny_mlp,low\n")
    assert main(["workload", "show", str(path)]) == 2
    assert "line 3" in _error(capsys)
    path.write_text("TIMESTAMP,ContextTokens\narrival_s,model,priority\n")
    assert main(["workload", "show", str(path)]) == 2
    assert "line 2: more fields than the header's 2" in _error(capsys)


def test_a_binary_profile_json_is_one_line(tmp_path, synthetic_bundle_path, capsys):
    bundle = tmp_path / "b"
    shutil.copytree(synthetic_bundle_path, bundle)
    (bundle / "profile.json").write_bytes(b'{"a": 1' + b"\xff\xfe" * 8)
    assert main([*RUN[:1], "--profile", str(bundle), *RUN[3:]]) == 2
    assert "profile.json: not UTF-8 text" in _error(capsys)
