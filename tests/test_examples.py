"""examples/: the notebook is executed here (nbclient, a real Jupyter kernel) and the
plain script run as a user would; both are the same cells, stored without outputs."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def sync_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("notebook_sync",
                                                  EXAMPLES / "notebook_sync.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_notebook_is_the_script_without_outputs():
    sync = sync_module()
    stored = (EXAMPLES / "compare_policies.ipynb").read_text()
    assert stored == sync.notebook_text((EXAMPLES / "compare_policies.py").read_text()), \
        "run `python examples/notebook_sync.py` after editing the script"
    for cell in json.loads(stored)["cells"]:
        assert not cell.get("outputs") and cell.get("execution_count") is None


@pytest.mark.slow
def test_notebook_executes(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel plots inline, as a user's
    nb = nbformat.read(EXAMPLES / "compare_policies.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "violated" in text and "report: runs/examples/strait/report.html" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the figure, inline
    assert any("text/html" in o.get("data", {}) for o in outputs)  # the comparison table
    assert (tmp_path / "runs/examples/violations_vs_load.png").stat().st_size > 10_000


@pytest.mark.slow
def test_script_runs(tmp_path):
    shutil.copy(EXAMPLES / "compare_policies.py", tmp_path)
    res = subprocess.run([sys.executable, "compare_policies.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "violated" in res.stdout and res.stderr == ""
    assert (tmp_path / "runs/examples/strait/report.html").is_file()
    assert (tmp_path / "runs/examples/violations_vs_load.png").is_file()
