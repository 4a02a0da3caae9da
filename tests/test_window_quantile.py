"""clockwork's window quantile is numpy's ``np.quantile`` (method 'linear'), bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from strait_sim.policies.clockwork import window_quantile

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FLOATS = st.floats(min_value=1e-6, max_value=1e4, allow_nan=False)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(window=st.lists(FLOATS, min_size=1, max_size=40),
       q=st.one_of(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
                   st.floats(min_value=0.0, max_value=1.0)))
def test_the_same_float_as_numpy(window, q):
    expected = float(np.quantile(np.array(window, dtype=float), q))
    got = window_quantile(window, q)
    assert got == expected or (math.isnan(got) and math.isnan(expected))
    assert math.copysign(1.0, got) == math.copysign(1.0, expected)


def test_ties_and_odd_windows():
    assert window_quantile([3.0], 0.99) == 3.0
    assert window_quantile([1.0, 2.0], 0.5) == float(np.quantile([1.0, 2.0], 0.5))
    w = [0.1 * k for k in range(10)]
    assert window_quantile(w, 0.99) == float(np.quantile(w, 0.99))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_non_finite_windows_are_numpys():
    for w in ([1.0, math.inf], [math.nan, 2.0, 1.0], [math.inf, math.inf]):
        expected = float(np.quantile(np.array(w), 0.99))
        got = window_quantile(w, 0.99)
        assert got == expected or (math.isnan(got) and math.isnan(expected))
