"""The occupancy-aware estimator: a hand-computed two-slot case, belief revision, and
online learning that follows a drift."""

from __future__ import annotations

import math

import pytest

from strait_sim.policies.base import CompletedBatch, CoRun, PolicyContext
from strait_sim.policies.estimates import Believed
from strait_sim.policies.occupancy import OccupancyEstimator
from strait_sim.predictors.registry import make_predictor


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STRAIT_SIM_CACHE", str(tmp_path / "cache"))


class HalfRate:
    """Every pair runs at fluid rate k = 0.5 (slowdown 2, excess 1)."""

    online = False

    def pair_rate(self, model: str, size: int, co_model: str, co_size: int) -> float:
        return 0.5


def _ctx(profile, slots: int = 2) -> PolicyContext:
    return PolicyContext(profile=profile, models=profile.model_names, n_gpus=1,
                         slots_per_gpu=slots, max_batch=8)


def test_two_slot_estimate_matches_the_hand_computation(synthetic_bundle):
    est = OccupancyEstimator(_ctx(synthetic_bundle), HalfRate())  # type: ignore[arg-type]
    model = "synth_large"
    S = est.solo[model][1]  # ms
    c0 = est.h2d_ms(model, 1) / 1e3  # the candidate's compute starts here (s)
    # One arrival every S ms: lambda = 1000 / S per second.
    for i in range(3):
        est.note_arrival(i * S / 1e3)
    lam = 1e3 / S
    assert est.arrival_rate() == pytest.approx(lam)
    # A batch running alone since t=0 with 0.25 S of solo work left after c0.
    j = Believed("synth_small", 1, 1, 0.0, c0 + 0.25 * S / 1e3, c0 + 0.25 * S / 1e3, 1.0, 1.0)
    est.by_gpu[0].append(j)
    svc, cstart, comp = est.predict(0.0, 0, model, 1, h2d_flight=0, queued=0)
    assert cstart == pytest.approx(c0)
    # By hand: beside the candidate, j's last 0.25 S of work takes 0.5 S (slowdown 2),
    # so j frees its slot at c0 + 0.5 S; the candidate progressed 0.25 S by then. Nothing
    # is queued: the slot refills after the expected wait for the next arrival after it
    # frees, g = exp(-lambda * (c0 + 0.5 S)) / lambda, during which the candidate runs
    # alone (progress g); the replacement slows it by 2 again for the remaining work.
    g = math.exp(-lam * (c0 + 0.5 * S / 1e3)) / lam * 1e3  # ms
    assert g < 0.75 * S
    expected = 0.5 * S + g + 2.0 * (0.75 * S - g)
    assert comp == pytest.approx(expected, rel=1e-9)
    assert svc == pytest.approx(est.h2d_ms(model, 1) + expected + est.d2h_ms(model, 1))
    # With work queued the slot refills at once: slowdown 2 over the whole life.
    assert est.predict(0.0, 0, model, 1, 0, queued=3)[2] == pytest.approx(2.0 * S)
    # Alone on a GPU with one slot there is nothing to meet.
    solo = OccupancyEstimator(_ctx(synthetic_bundle, slots=1), HalfRate())  # type: ignore
    assert solo.predict(0.0, 0, model, 1)[2] == pytest.approx(S)


def test_beliefs_are_revised_when_co_runners_change(synthetic_bundle):
    est = OccupancyEstimator(_ctx(synthetic_bundle), HalfRate())  # type: ignore[arg-type]
    S = est.solo["synth_large"][1]
    c0 = est.h2d_ms("synth_large", 1) / 1e3
    end = c0 + 0.25 * S / 1e3  # j, alone since 0, has 0.25 S of work left at c0
    j = Believed("synth_small", 1, 1, 0.0, end, end, 1.0, 1.0)
    est.by_gpu[0].append(j)
    # work is queued: the candidate expects j's slot to be refilled at once
    _, cstart, comp = est.predict(0.0, 0, "synth_large", 1, 0, queued=3)
    assert cstart == pytest.approx(c0)
    cand = Believed("synth_large", 1, 1, cstart, cstart + comp / 1e3, cstart + comp / 1e3,
                    1.0, comp / S)
    est.commit(0.0, 0, cand, queued=3, slot=1)
    # j computes alone until cstart, then at half speed beside the candidate.
    t_j = c0 + 0.5 * S / 1e3
    assert j.compute_end_s == pytest.approx(t_j)
    assert j.end_s == pytest.approx(j.compute_end_s)
    # the candidate: 0.25 S of progress beside j, then 0.75 S beside the refill (rate 1/2)
    before = cand.compute_end_s
    assert before == pytest.approx(t_j + 1.5 * S / 1e3)
    # j finishes: the candidate's belief is replayed without it once no newcomer came
    # (nothing queued any more, no arrival rate known: the slot stays empty)
    est.release(t_j, 0, j, queued=0, slot=0)
    assert est.by_gpu[0] == [cand]
    assert cand.compute_end_s == before  # a dispatch right away would revise it
    # the believed progress: half speed beside j from c0 to t_j
    assert cand.work_ms == pytest.approx(0.75 * S)
    est.settle(t_j, queued=0)  # none came: the slot stays empty
    assert cand.compute_end_s == pytest.approx(t_j + 0.75 * S / 1e3)


def test_a_newcomer_takes_the_refill_it_was_expected_to_be(synthetic_bundle):
    """A batch dispatched with work queued believes its other slot refilled at once. When
    the newcomer comes later, the batch is replayed from the work it really did alone,
    beside the newcomer; the refill it expected is not counted on top."""
    est = OccupancyEstimator(_ctx(synthetic_bundle), HalfRate())  # type: ignore[arg-type]
    S = est.solo["synth_large"][1]
    _, cs, comp = est.predict(0.0, 0, "synth_large", 1, 0, queued=3)
    assert comp == pytest.approx(2.0 * S)  # slowed by the expected refill all along
    j = Believed("synth_large", 1, 1, cs, cs + comp / 1e3, cs + comp / 1e3, 1.0, 2.0)
    est.commit(0.0, 0, j, queued=3, slot=0)
    # no newcomer until a quarter of j's solo work is done (alone, at full speed)
    t1 = cs + 0.25 * S / 1e3
    _, c2, comp2 = est.predict(t1, 0, "synth_small", 1, 0, queued=3)
    cand = Believed("synth_small", 1, 1, c2, c2 + comp2 / 1e3, c2 + comp2 / 1e3, 1.0,
                    comp2 / est.solo["synth_small"][1])
    est.commit(t1, 0, cand, queued=3, slot=1)
    # by hand: 0.75 S left at t1; alone during the newcomer's H2D, then at half speed
    # (beside the newcomer, then beside the refill of its slot, work being queued)
    left = 0.75 * S - (c2 - t1) * 1e3
    assert j.work_ms == pytest.approx(0.75 * S)
    assert j.compute_end_s == pytest.approx(c2 + 2.0 * left / 1e3)
    # (dividing the time left by the mean slowdown 2 and adding the newcomer's excess
    # on top would have said c2 + 3 * (cs + 2 S - c2) / 2: far later)


def _observe(est: OccupancyEstimator, model: str, co: str, k: float) -> None:
    """One completion of (model, 1) beside (co, 1) for its whole life at fluid rate k."""
    S = est.solo[model][1]
    latency = S / (1.0 - k)
    est.observe(CompletedBatch(0, 0, 0, model, 1, (), 0.0, 0.0, latency / 1e3,
                               latency / 1e3, None, (CoRun(co, 1, latency),)))


@pytest.mark.parametrize("name", ["pairs", "rls"])
def test_online_updates_follow_a_drift(synthetic_bundle, name):
    """The interference model learns from observed co-run overlaps: after the pair's
    true rate jumps, the estimator's rate converges to the new one."""
    est = OccupancyEstimator(_ctx(synthetic_bundle), make_predictor(name, synthetic_bundle))
    model, co = "synth_medium", "synth_large"
    k0 = est.rate(model, 1, co, 1)
    target = min(k0 + 0.25, 0.9)
    for _ in range(200):
        _observe(est, model, co, target)
    assert est.rate(model, 1, co, 1) == pytest.approx(target, abs=0.02)
    assert est.excess(model, 1, co, 1) == pytest.approx(target / (1 - target), rel=0.1)
    # ... and back again after a second drift.
    for _ in range(200):
        _observe(est, model, co, k0)
    assert est.rate(model, 1, co, 1) == pytest.approx(k0, abs=0.02)


def test_replacement_mix_averages_rates_not_excesses(synthetic_bundle):
    """One short co-runner at the clamp must not dominate a slot's occupancy mix."""

    class TwoKinds:
        online = False

        def pair_rate(self, model: str, size: int, co_model: str, co_size: int) -> float:
            return 0.95 if co_model == "synth_small" else 0.2

    est = OccupancyEstimator(_ctx(synthetic_bundle), TwoKinds())  # type: ignore[arg-type]
    for m in ("synth_small", "synth_large"):
        est.commit(0.0, 0, Believed(m, 1, 1, 9.0, 9.0, 9.0, 1.0), slot=0)
        est.by_gpu[0].clear()
    S_small, S_large = est.solo["synth_small"][1], est.solo["synth_large"][1]
    tau_s = S_small * (1 + 0.2 / 0.8)  # small beside the target (rate 0.2)
    tau_l = S_large * (1 + 0.2 / 0.8)
    k = (tau_s * 0.95 + tau_l * 0.2) / (tau_s + tau_l)
    assert est.replacement_excess("synth_medium", 1) == pytest.approx(k / (1 - k))


@pytest.mark.parametrize("queued", [0, 2])
def test_the_two_slot_shortcuts_equal_the_general_replay(synthetic_bundle, queued):
    """predict() writes the idle-GPU and one-co-runner cases out by hand for speed; they
    must give what the general replay gives."""
    import random

    rng = random.Random(3)
    est = OccupancyEstimator(_ctx(synthetic_bundle), make_predictor("pairs", synthetic_bundle))
    for i in range(4):
        est.note_arrival(i * 0.002)
    models = synthetic_bundle.model_names
    for _ in range(50):
        now = rng.uniform(0.0, 0.01)
        model, size = rng.choice(models), rng.randint(1, 4)
        est.by_gpu[0].clear()
        if rng.random() < 0.7:
            cs = now + rng.uniform(-0.004, 0.001)
            ce = cs + rng.uniform(0.0005, 0.01)
            est.by_gpu[0].append(Believed(rng.choice(models), rng.randint(1, 4), 1, cs, ce,
                                          ce + 0.0001, 1.0, rng.uniform(1.0, 2.5)))
        _, cstart, comp = est.predict(now, 0, model, size, 0, queued)
        others = []
        for c in est.by_gpu[0]:
            end = est.end_with(c, model, size, cstart, now)
            free = c.end_s + end - c.compute_end_s
            others.append((c.model, c.size, c.compute_start_s, end, free))
        solo = est.solo[model][size]
        general = (est._replay(now, cstart, solo, model, size, others, queued) - cstart) * 1e3
        assert comp == pytest.approx(general, rel=1e-9)


@pytest.mark.parametrize("name", ["cpu-epyc2-fp32", "synthetic-tiny"])
def test_copy_estimates_follow_the_links_fitted_sharing_rule(name):
    """The estimator's copy times are TransferPredictor's (fair, partial or serial sharing
    as the bundle's copies showed), written as plain arithmetic."""
    from strait_sim.predictors.transfer import TransferPredictor
    from strait_sim.profile_bundle import load_bundle

    profile = load_bundle(name)
    est = OccupancyEstimator(_ctx(profile), None)
    tp = TransferPredictor.from_profile(profile)
    for m in profile.model_names:
        for k in range(4):
            assert est.h2d_ms(m, 2, k) == pytest.approx(
                tp.predict_ms("h2d", 2 * est.in_bytes[m], k), rel=1e-9)
            assert est.d2h_ms(m, 2, k) == pytest.approx(
                tp.predict_ms("d2h", 2 * est.out_bytes[m], k), rel=1e-9)


def test_progress_fast_paths_equal_the_general_loop(synthetic_bundle):
    """_advance writes one and two batches out by hand; they must equal _progress."""
    import copy
    import random

    rng = random.Random(5)
    est = OccupancyEstimator(_ctx(synthetic_bundle), make_predictor("pairs", synthetic_bundle))
    models = synthetic_bundle.model_names
    for _ in range(200):
        t = rng.uniform(0.0, 0.01)
        now = t + rng.uniform(0.0, 0.01)
        co = [Believed(rng.choice(models), rng.randint(1, 4), 1, t + rng.uniform(-0.01, 0.012),
                       1.0, 1.0, 1.0, 1.0, rng.uniform(0.0, 8.0))
              for _ in range(rng.choice((1, 2)))]
        ref = copy.deepcopy(co)
        est.by_gpu[0] = co
        est._as_of[0] = t
        est._advance(0, now)
        est._progress(ref, t, now)
        assert [c.work_ms for c in co] == pytest.approx([c.work_ms for c in ref], abs=1e-9)
