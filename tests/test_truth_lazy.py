"""The truth model's slowdown table is built per victim model on first use (issue 15)."""

from __future__ import annotations

import numpy as np

from strait_sim.truth.compute import ComputeTruth


def test_rows_are_built_on_use_and_equal_the_whole_table(synthetic_bundle):
    models = tuple(synthetic_bundle.model_names)
    truth = ComputeTruth(synthetic_bundle, models, 8, np.random.default_rng(0))
    assert all(r is None for r in truth._slow_rows)
    s = truth.slowdown(0, 2, [(1, 4)])
    assert truth._slow_rows[0] is not None
    assert all(r is None for r in truth._slow_rows[1:])  # only the victim used
    whole = ComputeTruth._slowdown_table_from(truth.calibration, models, 8)
    assert s == whole[0, 1, 1, 3] > 1.0
    for i in range(len(models)):
        assert np.array_equal(truth._victim_rows(i), whole[i])
        assert truth.pair_slowdown(i, 3, 0, 5) == whole[i, 2, 0, 4]


def test_interference_off_builds_no_table(synthetic_bundle):
    models = tuple(synthetic_bundle.model_names)
    truth = ComputeTruth(synthetic_bundle, models, 32, np.random.default_rng(0),
                         interference=False)
    assert truth.slowdown(0, 1, [(1, 1), (0, 32)]) == 1.0
    assert all(r is None for r in truth._slow_rows[1:])
