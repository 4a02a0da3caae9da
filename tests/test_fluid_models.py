"""The fluid models: fair link sharing and co-location slowdown over the real overlap."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import simpy

from strait_sim.devices.fluid import ComputeUnit, Link, Work
from strait_sim.driver.batch import Batch
from strait_sim.requests import LOW, Request


def _batch(bid: int, model_idx: int = 0) -> Work:
    req = Request(bid, f"m{model_idx}", LOW, 0.0, 1.0)
    return Work(Batch(bid, 0, bid, f"m{model_idx}", 1, (req,), 0.0, None), model_idx)


def _fit(fixed_s: float, bytes_per_s: float, **rule) -> SimpleNamespace:
    return SimpleNamespace(fixed_ms=fixed_s * 1e3, bytes_per_ms=bytes_per_s / 1e3, **rule)


def test_two_equal_transfers_each_take_twice_as_long():
    env = simpy.Environment()
    link = Link(env, 0, "h2d", _fit(0.0, 1e9))
    ends: dict[int, float] = {}
    link.start(_batch(0), 1e6, lambda b: ends.__setitem__(b.batch_id, env.now))
    env.run()
    alone = ends[0]
    env = simpy.Environment()
    link = Link(env, 0, "h2d", _fit(0.0, 1e9))
    ends.clear()
    for i in (0, 1):
        link.start(_batch(i), 1e6, lambda b: ends.__setitem__(b.batch_id, env.now))
    env.run()
    assert alone == pytest.approx(1e-3)
    assert ends[0] == pytest.approx(2 * alone) and ends[1] == pytest.approx(2 * alone)
    assert link.in_flight == 0


def test_fixed_cost_alone_and_under_sharing():
    """Alone: fixed + bytes/bandwidth (the fitted form). Two together: the link carries
    both copies' work, overhead included, so each takes twice as long."""
    ends = []
    for n in (1, 2):
        env = simpy.Environment()
        link = Link(env, 0, "d2h", _fit(0.5e-3, 1e9))
        for i in range(n):
            link.start(_batch(i), 1e6, lambda b, env=env: ends.append(env.now))
        env.run()
    assert ends == pytest.approx([1.5e-3, 3e-3, 3e-3])


def test_transfer_joining_midway_is_rerated():
    env = simpy.Environment()
    link = Link(env, 0, "h2d", _fit(0.0, 1e9))
    ends: dict[int, float] = {}
    link.start(_batch(0), 2e6, lambda b: ends.__setitem__(b.batch_id, env.now))

    def late():
        yield env.timeout(1e-3)  # first copy is half done
        link.start(_batch(1), 1e6, lambda b: ends.__setitem__(b.batch_id, env.now))

    env.process(late())
    env.run()
    # from 1 ms both share: each 1e6 bytes left at 0.5e9 B/s -> both end at 3 ms
    assert ends[0] == pytest.approx(3e-3) and ends[1] == pytest.approx(3e-3)


class _ConstSlowdown:
    """Truth stub: every co-running pair slows each other by ``s``."""

    def __init__(self, s: float) -> None:
        self.s = s

    def slowdown(self, model_idx, batch, co):
        return 1.0 + len(co) * (self.s - 1.0)


def test_batch_co_running_half_its_life_is_slowed_only_for_that_half():
    # A needs 12 ms alone, B 4 ms; slowdown 2 while together. B ends at 8 ms, having
    # overlapped A for 8 ms (half of A's 16 ms life); A then runs alone: 12 - 8/2 = 8 ms
    # of work left at full speed, so A ends at 16 ms (not 24 as under full slowdown).
    env = simpy.Environment()
    ends: dict[int, float] = {}
    unit = ComputeUnit(env, 0, _ConstSlowdown(2.0), lambda b: ends.__setitem__(b.batch_id, env.now))
    a, b = _batch(0), _batch(1, 1)
    a.work_s = a.remaining_s = 12e-3
    b.work_s = b.remaining_s = 4e-3
    unit.add(a)
    unit.add(b)
    env.run()
    assert ends[1] == pytest.approx(8e-3)
    assert ends[0] == pytest.approx(16e-3)
    assert a.co[1][2] == pytest.approx(8e-3)  # overlap recorded for the policy
    assert unit.busy_s == pytest.approx(16e-3)


def test_late_joiner_rerates_running_batch():
    env = simpy.Environment()
    ends: dict[int, float] = {}
    unit = ComputeUnit(env, 0, _ConstSlowdown(3.0), lambda b: ends.__setitem__(b.batch_id, env.now))
    a, b = _batch(0), _batch(1)
    a.work_s = a.remaining_s = 10e-3
    b.work_s = b.remaining_s = 1e-3
    unit.add(a)

    def join():
        yield env.timeout(5e-3)
        unit.add(b)

    env.process(join())
    env.run()
    # A alone 5 ms (5 left), then both at 1/3: B ends 3 ms later (A did 1), A: 4 left alone
    assert ends[1] == pytest.approx(8e-3)
    assert ends[0] == pytest.approx(12e-3)


def test_truth_lookups_match_the_fitted_tables(synthetic_bundle):
    """The per-event list lookups give exactly the numpy tables' values: the engine's fast
    path must not change a single slowdown or solo draw."""
    import numpy as np

    from strait_sim.truth.compute import ComputeTruth

    models = synthetic_bundle.model_names
    truth = ComputeTruth(synthetic_bundle, models, 8, np.random.default_rng(5))
    n = len(models)
    for m in range(n):
        for b in range(1, 9):
            for cm in range(n):
                for cb in (1, 3, 8):
                    assert truth.slowdown(m, b, [(cm, cb)]) == truth.pair_slowdown(m, b, cm, cb)
            both = truth.slowdown(m, b, [(0, 1), (n - 1, 8)])
            assert both == pytest.approx(truth.pair_slowdown(m, b, 0, 1)
                                         + truth.pair_slowdown(m, b, n - 1, 8) - 1.0)
    draws = np.random.default_rng(5).integers(0, 64, 65536)
    for k in range(200):
        m, b = k % n, 1 + k % 8
        assert truth.sample_solo_ms(m, b) == float(truth._solo_q[m, b - 1, draws[k]])


def test_serial_link_copies_one_at_a_time():
    """A single copy engine: the second copy waits for the first."""
    env = simpy.Environment()
    link = Link(env, 0, "h2d", _fit(0.0, 1e9, sharing="serial"))
    ends: dict[int, float] = {}
    for i in (0, 1):
        link.start(_batch(i), 1e6, lambda w: ends.__setitem__(w.batch_id, env.now))
    env.run()
    assert ends[0] == pytest.approx(1e-3) and ends[1] == pytest.approx(2e-3)


def test_partial_sharing_and_opposite_direction_coupling():
    """aggregate(2) = 0.8: two copies share 80% of the bandwidth; an active opposite
    direction halves it (opposite_factor 0.5) only while it is active."""
    env = simpy.Environment()
    link = Link(env, 0, "h2d", _fit(0.0, 1e9, aggregate=lambda n: 0.8 if n > 1 else 1.0))
    ends: list[float] = []
    for i in (0, 1):
        link.start(_batch(i), 1e6, lambda w: ends.append(env.now))
    env.run()
    assert ends == pytest.approx([2.5e-3, 2.5e-3])  # 2e6 bytes at 0.8e9 B/s
    env = simpy.Environment()
    up = Link(env, 0, "h2d", _fit(0.0, 1e9, opposite_factor=0.5))
    down = Link(env, 0, "d2h", _fit(0.0, 1e9, opposite_factor=0.5))
    up.partner, down.partner = down, up
    got: dict[str, float] = {}
    up.start(_batch(0), 2e6, lambda w: got.__setitem__("up", env.now))
    down.start(_batch(1), 0.5e6, lambda w: got.__setitem__("down", env.now))
    env.run()
    # both at 0.5e9 B/s until down ends at 1 ms (up did 0.5e6); up's 1.5e6 left at 1e9 B/s
    assert got["down"] == pytest.approx(1e-3)
    assert got["up"] == pytest.approx(2.5e-3)


class _PairTable:
    """A slowdown per (victim, co-runner) model pair, with or without the two-batch
    shortcut ``slowdown_beside`` (ComputeTruth has it)."""

    def __init__(self, table: list[list[float]], *, beside: bool) -> None:
        self.table = table
        if beside:
            self.slowdown_beside = lambda m, b, cm, cb: 1.0 + (self.table[m][cm] - 1.0)

    def slowdown(self, model_idx, batch, co):
        excess = 0.0
        for cm, _cb in co:
            excess += self.table[model_idx][cm] - 1.0
        return 1.0 + excess


def _run_unit(beside: bool, seed: int) -> tuple[dict[int, float], dict[int, list]]:
    """Random arrivals of batches onto one unit (at most two at once, as a 2-slot GPU
    holds); every end time and overlap, exactly as floats."""
    import random

    rnd = random.Random(seed)
    table = [[1.0 + rnd.random() for _ in range(3)] for _ in range(3)]
    env = simpy.Environment()
    ends: dict[int, float] = {}
    unit = ComputeUnit(env, 0, _PairTable(table, beside=beside),
                       lambda w: ends.__setitem__(w.batch_id, env.now))
    works = []

    def source():
        for bid in range(60):
            yield env.timeout(rnd.expovariate(400.0))
            while len(unit.running) >= 2:
                yield env.timeout(1e-4)
            w = _batch(bid, rnd.randrange(3))
            w.work_s = w.remaining_s = rnd.choice([1e-3, 2e-3, 2e-3, 3.5e-3])
            w.scale = rnd.choice([1.0, 1.0, 0.5, 1.7])
            works.append(w)
            unit.add(w)

    env.process(source())
    env.run()
    return ends, {w.batch_id: sorted(w.co.items()) for w in works}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_two_batch_path_gives_the_general_paths_floats(seed):
    # The written-out two-batch paths (add, re-rate, event) must not change one bit of
    # an end time or an overlap against the general loops they shortcut.
    fast, fast_co = _run_unit(True, seed)
    slow, slow_co = _run_unit(False, seed)
    assert len(fast) == 60
    assert fast == slow  # exact: float equality
    assert fast_co == slow_co
    assert any(co for co in fast_co.values())  # batches did co-run
