"""``strait-sim report DIR``: one self-contained HTML page per run, comparison and
validation folder, checked as HTML and in a real headless browser (Chromium)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from strait_sim import api
from strait_sim.cli.app import main
from strait_sim.errors import UserError
from strait_sim.html_report import render_html

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["run", "--policy", "priority", "--profile", "synthetic-tiny", "--rate", "60",
                 "--duration", "3", "--seed", "2", "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def compare_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cmp") / "cmp"
    assert main(["compare", "--policies", "fifo,priority,edf", "--profile", "synthetic-tiny",
                 "--seeds", "2", "--loads", "0.6,1.2", "--duration", "2", "--out", str(out),
                 "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def validation_dir(tmp_path_factory) -> Path:
    """A validation folder built from two simulations (no device needed): the page's
    machinery, not a claim about any device."""
    from strait_sim.live.report import write_validation

    out = tmp_path_factory.mktemp("val") / "val"
    live = api.simulate("fifo", "synthetic-tiny", rate=40, duration=2, seed=1)
    live.summary = {**live.summary, "mode": "live",
                    "device": {"name": "synthetic", "kind": "cuda"}}
    sim = api.simulate("fifo", "synthetic-tiny", rate=40, duration=2, seed=1)
    write_validation(out, live, sim, command="strait-sim validate --live --gpu 0 (test)")
    return out


def check_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "<script" not in page
    for src in re.findall(r'<img [^>]*src="([^"]+)"', page):
        assert src.startswith("data:image/png;base64,")


def test_run_page_has_command_tables_figures_provenance(run_dir):
    page = render_html(run_dir)
    check_self_contained(page)
    assert "strait-sim run --policy priority --profile synthetic-tiny" in page
    assert 'id="classes"' in page and "violated (%)" in page and "p99 (ms)" in page
    assert page.count("data:image/png;base64,") == 2
    assert 'id="provenance-table"' in page and "synthetic test fixture" in page


def test_comparison_page_explains_the_signs(compare_dir):
    page = render_html(compare_dir)
    check_self_contained(page)
    assert 'id="comparison"' in page and 'id="reference"' in page
    assert "positive means the reference misses fewer" in page
    assert page.count("data:image/png;base64,") >= 3  # violations vs load + two CDFs
    assert "strait-sim compare --policies fifo,priority,edf" in page


def test_validation_page(validation_dir):
    page = render_html(validation_dir)
    check_self_contained(page)
    assert 'id="validation"' in page and "strait-sim validate --live --gpu 0 (test)" in page
    assert page.count("data:image/png;base64,") == 3  # cdf_all, cdf_high, cdf_low


def test_report_cli_and_bad_folder(run_dir, tmp_path, capsys):
    target = tmp_path / "page.html"
    assert main(["report", str(run_dir), "--html", str(target)]) == 0
    assert target.read_text() == render_html(run_dir)
    assert main(["report", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert main(["report", str(tmp_path)]) == 2  # a folder, but no results in it


def test_api_report_matches_cli(compare_dir, tmp_path):
    path = api.report(compare_dir, tmp_path / "a.html")
    assert path.read_text() == render_html(compare_dir)


def test_one_policy_comparison_says_there_is_nothing_to_pair(tmp_path):
    out = tmp_path / "one"
    assert main(["compare", "--policies", "fifo", "--seeds", "1", "--profile",
                 "synthetic-tiny", "--duration", "1", "--out", str(out), "--quiet"]) == 0
    header = (out / "reference.csv").read_text().splitlines()
    assert header and header[0].startswith("load,reference,baseline,seeds,")
    assert len(header) == 1  # the header, no row: one policy has no pair
    page = api.report(out).read_text()
    assert 'id="reference-none"' in page and "one policy only (fifo)" in page
    assert 'id="reference"' not in page
    # a folder written before the fix: reference.csv holds one bare newline
    (out / "reference.csv").write_text("\n")
    assert "one policy only (fifo)" in render_html(out)


def copy_with(folder: Path, tmp_path: Path, name: str, text: str) -> Path:
    """A copy of ``folder`` with its file ``name`` replaced by ``text``."""
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    (copy / "report.html").unlink(missing_ok=True)
    (copy / name).write_text(text)
    return copy


def one_error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize(("text", "why"), [
    ("{}", "(no 'by_class')"),
    ("[1, 2]", "(a list, not a JSON object)"),
    ('{"by_class": 1}', "('by_class' is not an object)"),
    ('{"by_class": {"high": {}}}', "(no 'by_class.high.count')"),
])
def test_wrong_shaped_run_summary_is_one_line(run_dir, tmp_path, capsys, text, why):
    folder = copy_with(run_dir, tmp_path, "summary.json", text)
    line = one_error_line(capsys, ["report", str(folder)])
    assert line == (f"error: {folder / 'summary.json'}: not a run summary written by "
                    f"strait-sim {why}")
    assert not (folder / "report.html").exists()
    with pytest.raises(UserError, match="not a run summary"):
        api.load_run(folder)


def test_wrong_typed_value_in_run_summary_is_named(run_dir, tmp_path, capsys):
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["by_class"]["low"]["count"] = "many"
    folder = copy_with(run_dir, tmp_path, "summary.json", json.dumps(summary))
    assert one_error_line(capsys, ["report", str(folder)]).endswith(
        "('by_class.low.count' is not a number)")


@pytest.mark.parametrize(("name", "text", "why"), [
    ("comparison.csv", "x,y\n", "missing column(s) 'load', 'policy'"),
    ("comparison.csv", "", "empty (no header line)"),
    ("reference.csv", "a,b\n1,2\n", "missing column(s) 'load', 'reference'"),
])
def test_wrong_shaped_comparison_tables_are_one_line(compare_dir, tmp_path, capsys, name,
                                                     text, why):
    folder = copy_with(compare_dir, tmp_path, name, text)
    line = one_error_line(capsys, ["report", str(folder)])
    assert line.startswith(f"error: {folder / name}: ") and why in line
    assert not (folder / "report.html").exists()


def test_non_numeric_comparison_column_is_named(compare_dir, tmp_path, capsys):
    lines = (compare_dir / "comparison.csv").read_text().splitlines()
    cols = lines[0].split(",")
    row = lines[1].split(",")
    row[cols.index("hp_violation")] = "a lot"
    folder = copy_with(compare_dir, tmp_path, "comparison.csv",
                       "\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    assert one_error_line(capsys, ["report", str(folder)]).endswith(
        "(column 'hp_violation' not numeric)")


@pytest.mark.parametrize(("edit", "why"), [
    (lambda r: [], "(a list, not a JSON object)"),
    (lambda r: {}, "(no 'classes')"),
    (lambda r: {**r, "classes": {"high": {}}}, "(no 'classes.high.latency')"),
    (lambda r: {**r, "setup": {**r["setup"], "warnings": 3}},
     "('setup.warnings' is not a list)"),
])
def test_wrong_shaped_validation_report_is_one_line(validation_dir, tmp_path, capsys, edit,
                                                    why):
    report = json.loads((validation_dir / "report.json").read_text())
    folder = copy_with(validation_dir, tmp_path, "report.json", json.dumps(edit(report)))
    line = one_error_line(capsys, ["report", str(folder)])
    assert line == (f"error: {folder / 'report.json'}: not a validation report written "
                    f"by strait-sim {why}")


def test_wrong_shaped_validation_sim_summary_is_one_line(validation_dir, tmp_path, capsys):
    folder = copy_with(validation_dir, tmp_path, "sim/summary.json", "[]")
    assert one_error_line(capsys, ["report", str(folder)]).startswith(
        f"error: {folder / 'sim' / 'summary.json'}: not a run summary")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium(args: list[str], profile_dir: Path) -> subprocess.CompletedProcess:
    browser = find_browser()
    if browser is None:
        if os.environ.get("STRAIT_REQUIRE_BROWSER"):
            pytest.fail("no Chromium found, and this run requires one (.ci/run installs it)")
        pytest.skip("no Chromium on this machine (.ci/run installs it in CI)")
    profile_dir.mkdir()
    return subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}",
                           *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_pages_render_in_a_headless_browser(run_dir, compare_dir, tmp_path):
    """Chromium loads each page offline, decodes every embedded figure, and the
    screenshot shows the tables and the figures' colours."""
    from PIL import Image

    for name, folder, ids in (("run", run_dir, ("classes", "setup", "provenance-table")),
                              ("cmp", compare_dir, ("comparison", "reference"))):
        page = tmp_path / f"{name}.html"
        # probe: the same page plus a script that reports what the browser rendered
        probe = tmp_path / f"{name}-probe.html"
        text = render_html(folder)
        page.write_text(text)
        probe.write_text(text.replace("</body>", """<script>
document.title = JSON.stringify({
  images: Array.from(document.images).map(i => [i.complete, i.naturalWidth]),
  tables: Array.from(document.querySelectorAll('table')).map(t => [t.id, t.rows.length,
          t.getBoundingClientRect().width]),
  command: document.getElementById('command').innerText});
</script></body>"""))
        dom = chromium(["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
                       tmp_path / f"{name}-profile-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        title = re.search(r"<title>(.*?)</title>", dom.stdout, re.S).group(1)
        import html as html_module

        seen = json.loads(html_module.unescape(title))
        assert seen["images"] and all(ok and width > 100 for ok, width in seen["images"])
        tables = {t[0]: t for t in seen["tables"]}
        for table_id in ids:
            assert tables[table_id][1] >= 2 and tables[table_id][2] > 100
        assert seen["command"].startswith("strait-sim ")

        shot = tmp_path / f"{name}.png"
        res = chromium(["--window-size=1200,3000", "--hide-scrollbars",
                        f"--screenshot={shot}", page.as_uri()], tmp_path / f"{name}-profile")
        assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
        img = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"))
        assert img.shape[:2] == (3000, 1200)
        # not blank: dark text, table header grey and the figures' colours all present
        assert (img.sum(axis=2) < 150).sum() > 2000
        colours = {tuple(int(c) for c in px) for px in img.reshape(-1, 3)[::7]}
        if name == "run":
            assert (46, 125, 50) in colours  # the "on time" green of the outcome figure
        assert (242, 242, 242) in colours  # table header background
