"""Every registered policy keeps the engine's invariants; the registry and CLI around them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strait_sim.policies.registry import BUILTIN, make_policy, policy_names

ALL = sorted(BUILTIN)
EXPECTED = {"fifo", "edf", "priority", "strait", "triton", "clockwork", "gpulet", "reef",
            "orion"}


def _run(profile, policy: str, *, seed: int = 0, rate: float = 1800, slots: int = 2,
         gpus: int = 1, duration: float = 0.6, **params: object):
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    # overloaded on purpose (~1.3x at batch 1): queues, drops, preemptions all happen
    wl = BasicPoissonWorkload(profile.model_names, rate=rate, duration_s=duration,
                              hp_fraction=0.3, slo=4.0)
    return run_simulation(profile, wl, make_policy(policy, **params),
                          SimConfig(gpus=gpus, slots=slots, max_batch=8, seed=seed))


def test_all_issue_policies_registered():
    assert set(policy_names()) >= EXPECTED


@pytest.mark.parametrize("policy", ALL)
def test_invariants_hold(synthetic_bundle, policy):
    res = _run(synthetic_bundle, policy)
    df = res.requests
    status = df["status"].astype(str)
    # every request ends exactly once (the engine also raises if one never ends)
    assert status.isin(["on_time", "late", "dropped", "rejected"]).all()
    assert df["id"].is_unique and len(df) == res.summary["requests"]
    served = status.isin(["on_time", "late"])
    s = df[served]
    assert (s["start_s"] >= s["arrival_s"] - 1e-12).all()  # nothing starts before it arrives
    assert (s["finish_s"] > s["start_s"]).all()  # nothing finishes before it starts
    assert ((s["finish_s"] <= s["deadline_s"]) == (status[served] == "on_time")).all()
    assert (df.loc[~served, "finish_s"] >= df.loc[~served, "arrival_s"] - 1e-12).all()
    assert (s["batch_size"] <= 8).all()


@pytest.mark.parametrize("policy", ALL)
def test_max_batch_caps_batches_on_every_policy(synthetic_bundle, policy):
    """docs/policies.md's shared convention: ``max_batch`` on any policy caps its batches
    below the run's --max-batch (fifo, edf and priority once refused the parameter)."""
    res = _run(synthetic_bundle, policy, duration=0.3, max_batch=2)
    assert res.summary["policy_params"]["max_batch"] == 2
    assert (res.requests["batch_size"].dropna() <= 2).all()


@pytest.mark.parametrize("policy", ["fifo", "edf", "priority"])
def test_queue_policies_max_batch(synthetic_bundle, policy):
    """Overloaded, they batch above 2 when uncapped; a bad cap fails before the run."""
    from strait_sim.errors import UserError

    res = _run(synthetic_bundle, policy, duration=0.3)
    assert res.summary["policy_params"] == {"max_batch": None}
    assert res.requests["batch_size"].max() > 2
    with pytest.raises(UserError, match="max_batch must be a whole number >= 1"):
        make_policy(policy, max_batch=0)


@pytest.mark.parametrize("policy", ALL)
def test_max_batch_true_is_not_a_batch_of_one(policy):
    """``--param max_batch=true`` ran every policy with batches of 1 (int(True) == 1)."""
    from strait_sim.errors import UserError

    with pytest.raises(UserError, match="max_batch must be a whole number >= 1, got True"):
        make_policy(policy, max_batch=True)


@pytest.mark.parametrize("policy", ALL)
def test_same_seed_same_results(synthetic_bundle, policy):
    a = _run(synthetic_bundle, policy, seed=5, duration=0.3).requests
    b = _run(synthetic_bundle, policy, seed=5, duration=0.3).requests
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("policy", ["strait", "reef", "clockwork", "gpulet", "orion",
                                    "triton"])
def test_invariants_two_gpus_three_slots(synthetic_bundle, policy):
    res = _run(synthetic_bundle, policy, gpus=2, slots=3, rate=4000, duration=0.3)
    df = res.requests
    served = df["status"].astype(str).isin(["on_time", "late"])
    assert set(df.loc[served, "gpu"].unique()) == {0, 1}  # both GPUs used
    assert (df.loc[served, "slot"] < 3).all()


def test_strait_protects_hp_compared_with_priority(synthetic_bundle):
    """Not a proof, a regression guard: on the overloaded fixture strait misses fewer HP
    deadlines than strict priority (the point of the project)."""
    hp = {}
    for policy in ("strait", "priority"):
        rates = [_run(synthetic_bundle, policy, seed=s).summary["by_class"]["high"]
                 ["violation_rate"] for s in (0, 1)]
        hp[policy] = float(np.mean(rates))
    assert hp["strait"] < hp["priority"]


# -- CLI -------------------------------------------------------------------------------------


def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from strait_sim.cli.app import main

    code = main(args)
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_policies_command_lists_each_once(capsys):
    code, out, _ = _cli(["policies"], capsys)
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith(" ")]
    names = [ln.split()[0] for ln in lines]
    assert set(names) >= EXPECTED
    assert len(names) == len(set(names))


def test_unknown_policy_names_the_valid_ones(capsys):
    code, out, err = _cli(["compare", "--policies", "strait,nope", "--rate", "10"], capsys)
    assert code == 2
    assert "unknown policy 'nope'" in err and "strait" in err and "reef" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_policy_parameter_is_one_line(capsys):
    code, _, err = _cli(["compare", "--policies", "strait", "--param",
                         "strait.hp_risk=7", "--rate", "10"], capsys)
    assert code == 2 and "hp_risk" in err and len(err.strip().splitlines()) == 1
    code, _, err = _cli(["compare", "--policies", "strait", "--param", "reef.x=1"], capsys)
    assert code == 2 and "not in --policies" in err


class _View:
    """The little of a SystemView the queue policies read."""

    def __init__(self, free, max_batch=4):
        self._free = list(free)
        self.max_batch = max_batch
        self.now = 0.0

    def free_slots(self):
        return self._free


@pytest.mark.parametrize("name", ["fifo", "priority", "edf"])
def test_arrival_shortcut_acts_as_the_queue_would(synthetic_bundle, name):
    # An arrival that finds nothing queued and a slot free skips the queue (issue 15); it
    # must give what pushing it and filling the free slots gives, and queue it otherwise.
    from strait_sim.policies.base import Dispatch, PolicyContext
    from strait_sim.requests import HIGH, LOW, Request

    models = synthetic_bundle.model_names
    ctx = PolicyContext(profile=synthetic_bundle, models=models, n_gpus=2, slots_per_gpu=2,
                        max_batch=4)
    fast, slow = make_policy(name), make_policy(name)
    fast.bind(ctx)
    slow.bind(ctx)
    rnd = np.random.default_rng(4)
    peak = 0
    for rid in range(200):
        req = Request(rid, models[int(rnd.integers(len(models)))],
                      HIGH if rnd.random() < 0.3 else LOW, rid * 1e-3, rid * 1e-3 + 0.05,
                      int(rnd.integers(1, 3)))
        free = [(g, k) for g in range(2) for k in range(2) if rnd.random() < 0.3]
        got = list(fast.on_arrival(req, _View(free)))
        slow.queues.push(req)
        want = slow._fill(_View(free))
        assert [(a.gpu, a.slot, [r.id for r in a.requests]) for a in got] == \
            [(a.gpu, a.slot, [r.id for r in a.requests]) for a in want]
        assert all(type(a) is Dispatch for a in got)
        assert fast.waiting() == slow.waiting()
        peak = max(peak, fast.waiting())
    assert peak > 2  # requests did queue (the other path was taken too)
