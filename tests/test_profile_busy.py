"""`profile` refuses a busy device as `run --live` does (--force overrides)."""

from __future__ import annotations

from strait_sim.cli.app import main


def test_profile_refuses_a_busy_cpu(monkeypatch, tmp_path, capsys):
    from strait_sim.live import busy_check

    monkeypatch.setattr(busy_check, "cpu_utilisation", lambda *a, **k: 0.95)
    out = tmp_path / "p"
    code = main(["profile", "--cpu", "--models", "tiny_mlp", "--batches", "1", "--reps", "2",
                 "--only", "solo", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "busy" in err and "--force" in err and len(err.splitlines()) == 1
    assert not out.exists()
