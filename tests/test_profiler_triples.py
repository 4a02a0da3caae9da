"""3-way co-location measured by the profiler (``profile --slots 3``, triples.csv).

Tiny zoo models on the torch-cpu backend at tiny settings: the file is written with the
columns the truth model reads, resumes like pairs, respects its budget, and the rule's
prediction is compared with the measured 3-way points (``profile show``). No timing is
asserted: how well the rule matches is the device's property; that it recovers a known w
is tested on synthetic data (tests/test_truth_calibration.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strait_sim.cli.app import main
from strait_sim.profile_bundle import SCHEMA, read_bundle_dir
from strait_sim.profiler.backend import PhaseTiming
from strait_sim.profiler.backends import make_backend
from strait_sim.profiler.faults import FaultInjectingBackend
from strait_sim.profiler.measure_common import Settings
from strait_sim.profiler.measure_triples import (
    candidate_triples,
    measured_pairs,
    ordered_triples,
    triple_rows,
)
from strait_sim.profiler.session import run_session
from strait_sim.truth.colocation import ThreeWayRule, calibrate_bundle, three_way_errors

TINY = ("tiny_mlp", "tiny_cnn")


def settings(**over) -> Settings:
    base = dict(models=TINY, batches=(1,), parts=("solo", "pairs", "triples"), reps=4,
                warmup=1, pair_reps=2, offsets_frac=(0.0,), pair_budget_s=None,
                triple_budget_s=None, seed=0)
    base.update(over)
    return Settings(**base)


class Factory:
    def __init__(self, streams: int = 3) -> None:
        self.streams = streams
        self.backends: list[FaultInjectingBackend] = []

    def __call__(self) -> FaultInjectingBackend:
        inner = make_backend("torch-cpu", models=list(TINY), streams=self.streams,
                             threads_per_stream=1, warmup=1)
        self.backends.append(FaultInjectingBackend(inner))
        return self.backends[-1]

    @property
    def submits(self) -> int:
        return sum(b.submits for b in self.backends)


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("triples") / "bundle"
    run_session(out, Factory(), settings(), command="test")
    return out


def test_triples_are_written_with_the_columns_the_truth_model_reads(bundle_dir):
    t = pd.read_csv(bundle_dir / "triples.csv")
    for col in [*SCHEMA["triples.csv"], "only_co_ms", "only_co2_ms", "offset_ms", "run_key"]:
        assert col in t.columns, col
    # 2 configs -> 4 triples (aaa, aab, abb, bbb), 2 reps, one row per victim
    assert t["run_key"].nunique() == 4 and len(t) == 4 * 2 * 3
    assert (t.groupby(["run_key", "rep"]).size() == 3).all()
    assert (t["overlap_ms"] <= t["latency_ms"] + 1e-9).all()
    assert (t["overlap_ms"] + t["only_co_ms"] + t["only_co2_ms"]
            <= t["latency_ms"] * 1.0001 + 1e-6).all()
    b = read_bundle_dir(bundle_dir)  # triples.csv is a validated table of the bundle
    meta = json.loads((bundle_dir / "profile.json").read_text())
    assert meta["concurrency_measured"] == 3 and meta["backend"]["streams"] == 3
    assert meta["parts"]["triples"]["completed"] is True
    assert b.content_hash  # the hash covers triples.csv (calibration cache key)


def test_triples_resume_without_repeating_work(bundle_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(bundle_dir, copy)
    before = (copy / "triples.csv").read_bytes()
    factory = Factory()
    run_session(copy, factory, settings())
    assert factory.submits == 0 and (copy / "triples.csv").read_bytes() == before
    # more repetitions later: exactly the missing ones, numbered on
    run_session(copy, Factory(), settings(pair_reps=3, parts=("triples",)))
    t = pd.read_csv(copy / "triples.csv")
    assert sorted(t["rep"].unique()) == [0, 1, 2] and len(t) == 4 * 3 * 3


def test_the_triple_budget_limits_the_sample(tmp_path):
    out = tmp_path / "b"
    run_session(out, Factory(), settings(parts=("solo", "pairs")))
    run_session(out, Factory(), settings(parts=("triples",), triple_budget_s=1e-6))
    t = pd.read_csv(out / "triples.csv")
    assert t["run_key"].nunique() == 1  # the first of the seeded order
    meta = json.loads((out / "profile.json").read_text())
    assert meta["parts"]["triples"]["completed"] is False


def test_two_streams_or_no_pairs_measure_nothing_and_say_why(tmp_path):
    out = tmp_path / "b"
    run_session(out, Factory(streams=2), settings(parts=("solo", "pairs", "triples")))
    assert not (out / "triples.csv").exists()
    meta = json.loads((out / "profile.json").read_text())
    assert "fewer than 3 streams" in meta["notes"]
    out2 = tmp_path / "c"
    run_session(out2, Factory(), settings(parts=("solo", "triples")))
    assert not (out2 / "triples.csv").exists()
    assert "measure pairs first" in json.loads((out2 / "profile.json").read_text())["notes"]


class FluidDevice3:
    """A fake device behind the profiler's own measurement code: forwards share it as a
    fluid with known pair slowdowns, combined for three by the rule with weight ``w``.

    Virtual time; the zoo's tiny models give the model facts (spec, params). Jobs
    submitted before any result is asked for run together (each stream in order, plus
    its enqueued delay); asking a result runs them all to the end."""

    SOLO_MS = {"tiny_mlp": 10.0, "tiny_cnn": 14.0}

    def __init__(self, w: float, seed: int = 0) -> None:
        self.inner = make_backend("torch-cpu", models=list(TINY), streams=3,
                                  threads_per_stream=1, warmup=1)
        self.name, self.kind, self.streams = "torch-cpu", "cpu", 3
        self.precision, self.threads_per_stream = "fp32", 1
        self.w = w
        self.rng = np.random.default_rng(seed)
        self.now = 0.0
        self.delay = [0.0] * 3
        self.round: list[dict] = []

    def solo(self, m: str, b: int) -> float:
        return self.SOLO_MS[m] * (0.6 + 0.4 * b) / 1e3

    @staticmethod
    def slowdown(m: str, b: int, cm: str, cb: int) -> float:
        return (1.3 + 0.3 * (cm == "tiny_cnn") + 0.1 * (m == "tiny_mlp")) * (1 + 0.05 * (cb - 1))

    def device_info(self) -> dict:
        return {"name": "fluid fake (test)", "kind": "cpu"}

    def spec(self, model):  # noqa: ANN001, ANN201
        return self.inner.spec(model)

    def params(self, model):  # noqa: ANN001, ANN201
        return self.inner.params(model)

    def prepare(self, model, batch) -> None:  # noqa: ANN001
        pass

    def enqueue_delay(self, stream: int, seconds: float) -> None:
        self.delay[stream] += seconds

    def submit(self, model: str, batch: int, stream: int):  # noqa: ANN201
        job = {"m": model, "b": batch, "start": self.now + self.delay[stream],
               "work": self.solo(model, batch) * float(self.rng.lognormal(0, 0.02)),
               "timing": None}
        self.delay[stream] = 0.0
        self.round.append(job)
        fake = self

        class Handle:
            def result(self, timeout):  # noqa: ANN001, ANN202
                fake._run_round()
                return job["timing"]

        return Handle()

    def synchronize(self) -> None:
        self._run_round()

    def close(self) -> None:
        self.inner.close()

    def _run_round(self) -> None:
        jobs = [j for j in self.round if j["timing"] is None]
        self.round = []
        if not jobs:
            return
        rule = ThreeWayRule(self.w, 0, 0.0)
        left = {id(j): j["work"] for j in jobs}
        t = min(j["start"] for j in jobs)
        ends: dict[int, float] = {}
        while len(ends) < len(jobs):
            active = [j for j in jobs if j["start"] <= t + 1e-15 and id(j) not in ends]
            rates = {}
            for j in active:
                ex = [self.slowdown(j["m"], j["b"], o["m"], o["b"]) - 1 for o in active
                      if o is not j]
                rates[id(j)] = 1.0 / (rule.combine(ex) if ex else 1.0)
            nxt = [j["start"] for j in jobs if j["start"] > t + 1e-15]
            dt = min([left[id(j)] / rates[id(j)] for j in active] + [x - t for x in nxt])
            for j in active:
                left[id(j)] -= dt * rates[id(j)]
                if left[id(j)] <= 1e-12:
                    ends[id(j)] = t + dt
            t += dt
        for j in jobs:
            j["timing"] = PhaseTiming(j["start"], j["start"], ends[id(j)], ends[id(j)])
        self.now = max(ends.values())


def test_the_three_runner_rule_matches_measured_three_way_points(tmp_path):
    """The measured path end to end: pairs and triples taken by the profiler's own code on
    a device with a known 3-way rule (w = 0.5); the calibration recovers w from the even
    reps of triples.csv and predicts the odd ones, which it never saw, better than the
    additive rule does."""
    out = tmp_path / "b"
    run_session(out, lambda: FluidDevice3(w=0.5), settings(
        batches=(1, 2), reps=20, pair_reps=4, offsets_frac=(0.0, 0.25, 0.5)))
    b = read_bundle_dir(out)
    rule = calibrate_bundle(b).three_way
    assert rule.points > 0 and rule.holdout_points > 0
    assert rule.weight == pytest.approx(0.5, abs=0.15)
    assert rule.holdout_rel_error < 0.05
    assert rule.holdout_additive_rel_error > 2 * rule.holdout_rel_error
    # the held-out error is the rule's prediction against the measured odd-rep latencies
    cal = calibrate_bundle(b)
    t = pd.read_csv(out / "triples.csv")
    med = b.solo.groupby(["model", "batch"])["latency_ms"].median()
    rows = []
    for r in t[t["rep"] % 2 == 1].itertuples(index=False):
        a = cal.keys.get((r.model, r.batch, r.co_model, r.co_batch))
        c = cal.keys.get((r.model, r.batch, r.co2_model, r.co2_batch))
        if a is None or c is None or r.overlap_ms <= 0:
            continue
        rows.append((med[(r.model, r.batch)], r.latency_ms, r.overlap_ms,
                     a.effective_slowdown - 1, c.effective_slowdown - 1, r.only_co_ms,
                     r.only_co2_ms))
    errors = three_way_errors(np.array(rows), rule.weight)
    assert len(rows) == rule.holdout_points
    assert rule.holdout_rel_error == pytest.approx(float(np.median(np.abs(errors))))
    line = rule.describe()
    assert f"w = {rule.weight:.2f}" in line and "held-out" in line


def test_triple_rows_split_the_overlaps():
    t = (("a", 1), ("b", 1), ("c", 2))
    # a: 0-10, b: 2-6, c: 4-12 (seconds): all three 4-6
    timings = [PhaseTiming(0, 0, 10, 10), PhaseTiming(2, 2, 6, 6), PhaseTiming(4, 4, 12, 12)]
    rows = {r["model"]: r for r in triple_rows(t, timings, 0, "k")}
    assert rows["a"]["overlap_ms"] == pytest.approx(2000)
    assert rows["a"]["only_co_ms"] == pytest.approx(2000)  # beside b alone: 2-4
    assert rows["a"]["only_co2_ms"] == pytest.approx(4000)  # beside c alone: 6-10
    assert rows["c"]["offset_ms"] == pytest.approx(4000)
    assert (rows["b"]["co_model"], rows["b"]["co2_model"]) == ("a", "c")


def test_only_triples_whose_pairs_were_measured_are_sampled():
    pairs = measured_pairs([
        {"model": "a", "batch": 1, "co_model": "b", "co_batch": 1, "overlap_ms": 3.0},
        {"model": "a", "batch": 1, "co_model": "a", "co_batch": 1, "overlap_ms": 2.0},
        {"model": "b", "batch": 1, "co_model": "b", "co_batch": 1, "overlap_ms": 0.0,
         "nominal_offset_frac": -1.0}])
    got = candidate_triples([("a", 1), ("b", 1)], pairs)  # (b, b): baseline run only
    assert got == [(("a", 1), ("a", 1), ("a", 1)), (("a", 1), ("a", 1), ("b", 1))]
    configs = [(m, b) for m in "abc" for b in (1, 2)]
    every = candidate_triples(configs, {frozenset((x, y)) for x in configs for y in configs})
    order = ordered_triples(every, 0)
    first = {tuple(sorted(c[0] for c in t)) for t in order[:10]}
    assert len(first) == 10  # every triple of models before any repeats
    assert order == ordered_triples(every, 0) and order != ordered_triples(every, 1)


@pytest.mark.slow
def test_cli_slots_3_measures_triples_and_show_reports_the_rule(tmp_path, capsys):
    out = tmp_path / "p"
    args = ["profile", "--cpu", "--models", ",".join(TINY), "--batches", "1", "--only",
            "solo,pairs", "--slots", "3", "--reps", "3", "--pair-reps", "2", "--offsets", "0",
            "--triple-budget-s", "30", "--force", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    assert len(pd.read_csv(out / "triples.csv")) > 0
    capsys.readouterr()
    assert main(["profile", "show", str(out), "--no-plots"]) == 0
    assert "3-way rule: " in capsys.readouterr().out


def test_cli_refuses_bad_slots(tmp_path, capsys):
    base = ["profile", "--cpu", "--models", "tiny_mlp", "--force", "--out", str(tmp_path / "x")]
    assert main([*base, "--slots", "4"]) == 2
    assert "--slots" in capsys.readouterr().err
    assert main([*base, "--only", "triples"]) == 2
    assert "--slots 3" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
