"""The copy truth's sharing rule is chosen by the data (synthetic transfers, known rule)."""

from __future__ import annotations

import pytest

from strait_sim.profile_bundle import read_bundle_dir
from strait_sim.truth.fixtures import ColocationTruth, make_bundle, make_transfers
from strait_sim.truth.pcie import fit_direction, fit_link


@pytest.mark.parametrize("rule,share,opposite", [
    ("fair", 1.0, 1.0), ("serial", 1.0, 1.0), ("partial", 0.2, 1.0), ("partial", 1.6, 0.6),
    ("fair", 1.0, 0.5)])
def test_the_sharing_rule_is_recovered_exactly(rule, share, opposite):
    rows = make_transfers(rule, share=share, opposite=opposite, seed=1)
    for d in ("h2d", "d2h"):
        fit = fit_direction(rows[rows["direction"] == d], d)
        assert fit is not None
        assert fit.rule == rule
        assert fit.gbps == pytest.approx(12.0, rel=0.05)
        assert fit.opposite_factor == pytest.approx(opposite, rel=0.05)
        if rule == "partial":
            assert fit.share == pytest.approx(share, rel=0.1)
            assert fit.aggregate(4) == pytest.approx(4 / (1 + 3 * share), rel=0.1)
            assert fit.sharing == "fair"
        elif rule == "serial":
            assert fit.sharing == "serial" and fit.aggregate(4) == 1.0
        else:
            assert fit.sharing == "fair" and fit.aggregate(4) == 1.0
        assert fit.concurrent_rounds > 0


def test_fit_link_on_a_bundle_exposes_the_contract(tmp_path):
    make_bundle(tmp_path / "b", ColocationTruth(pair_reps=2, solo_reps=3),
                transfers=make_transfers("partial", share=0.3, seed=2))
    bundle = read_bundle_dir(tmp_path / "b")
    fit = fit_link(bundle, "h2d")
    assert fit.sharing in ("fair", "serial")
    assert callable(fit.aggregate) and fit.aggregate(1) == 1.0
    assert fit.aggregate(2) > 1.0  # partial sharing: two copies move more than one
    assert fit.bytes_per_ms > 0 and fit.fixed_ms >= 0


def test_profile_show_reads_the_same_fit(tmp_path):
    from strait_sim.profiler.analysis import fit_link as show_fit

    rows = make_transfers("serial", seed=3)
    shown = show_fit(rows)
    for d in ("h2d", "d2h"):
        truth = fit_direction(rows[rows["direction"] == d], d)
        assert shown[d].rule == truth.rule == "serial"
        assert shown[d].fixed_ms == truth.fixed_ms
