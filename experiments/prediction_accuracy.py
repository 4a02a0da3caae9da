"""How well does a policy's ``predicted_ms`` match the service it then got, in simulation?

Runs the simulator (``strait_sim.simulate``, the same code path as ``strait-sim run``) for
each load, seed and arrival process and compares, per served request, the policy's
prediction at dispatch (``predicted_ms``: dispatch to end of D2H) with the simulated service
(``finish_s - start_s``). Reports the mean absolute percentage error (MAPE), the mean bias
(predicted - observed, ms) and the bias as a share of the mean service time, per
(process, load) over all seeds pooled.

    .venv/bin/python experiments/prediction_accuracy.py --loads 0.9,1.1,1.3 --seeds 5 \
        --workloads poisson,mmpp,gamma,azure-conv --duration 120

``--breakdown`` (policies with an ``OccupancyEstimator``, i.e. strait) says where the error
comes from, per dispatched batch weighted by its requests (as the headline figure):

- per component: H2D, compute and D2H, each one's mean absolute error and bias as a share
  of the mean service (the wait is zero by construction: the prediction is made at the
  dispatch, and ``start_s`` is the dispatch);
- by what the batch met (alone for its whole compute, or co-located), by what ran beside it
  at dispatch, and by model;
- two oracles that know the batch's *observed* co-runs (which batches computed beside it
  and for how long, known only afterwards): ``predictor`` is the policy's own interference
  predictor in its online state at the completion; ``truth mean`` is the simulator's truth
  model without its per-batch randomness (mean solo time, the calibrated slowdown of each
  pair, no per-batch slowdown scale). The truth-mean oracle's error is the floor that no
  prediction made at dispatch can go below: it is the per-batch noise of the truth itself.

Extra ``--param NAME=VALUE`` flags go to the policy (``--policy`` selects it; strait by
default; values are JSON, as ``strait-sim run --param``). The profile is cpu-epyc2-fp32
with ``--max-batch 4`` unless told otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np
import pandas as pd

import strait_sim
from strait_sim.policies.base import Policy


def workload_keywords(workload: str, load: float, duration: float) -> dict:
    """The CLI's workload flags for one run (azure-conv replays a trace: a request count
    instead of a duration, about 12 requests per second of the other processes)."""
    kw: dict = {"workload": workload, "load": load}
    if workload == "azure-conv":
        kw["max_requests"] = int(duration * 12)
    else:
        kw["duration"] = duration
    return kw


def accuracy(df: pd.DataFrame) -> dict:
    """MAPE and bias of ``predicted_ms`` against ``finish_s - start_s`` (served requests)."""
    df = df[df["start_s"].notna() & df["finish_s"].notna() & df["predicted_ms"].notna()]
    obs = (df["finish_s"] - df["start_s"]).to_numpy() * 1e3
    pred = df["predicted_ms"].to_numpy()
    ok = obs > 0
    obs, pred = obs[ok], pred[ok]
    if len(obs) == 0:
        return {"n": 0, "mape": float("nan"), "bias_ms": float("nan"),
                "mean_ms": float("nan"), "bias_share": float("nan")}
    bias = float(np.mean(pred - obs))
    mean = float(np.mean(obs))
    return {"n": len(obs), "mape": float(np.mean(np.abs(pred - obs) / obs)),
            "bias_ms": bias, "mean_ms": mean, "bias_share": bias / mean}


class BatchRecorder:
    """Wraps a bound strait-like policy: records each dispatch's predicted parts (at the
    commit) and each completion's observed parts, co-runs and oracle predictions."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.rows: list[dict] = []
        self._pred: dict[int, tuple] = {}
        self._truth = None
        bind = policy.bind

        def bound(ctx) -> None:  # noqa: ANN001
            bind(ctx)
            self._attach(ctx)

        policy.bind = bound  # type: ignore[method-assign]

    def _attach(self, ctx) -> None:  # noqa: ANN001
        from strait_sim.truth.compute import ComputeTruth

        pol = self.policy
        est = pol.est
        self.models = tuple(ctx.models)
        self._idx = {m: i for i, m in enumerate(self.models)}
        self._truth = ComputeTruth(ctx.profile, self.models, ctx.max_batch,
                                   np.random.default_rng(0))
        self._solo_mean = [[float(np.mean(q)) for q in rows] for rows in self._truth._solo_l]
        commit = est.commit

        def committed(now, gpu, bel, queued=0, slot=None):  # noqa: ANN001, ANN202
            running = est.by_gpu[gpu]
            beside = ",".join(sorted(f"{c.model}:{c.size}" for c in running))
            self._pred[id(bel)] = (now, (bel.compute_start_s - now) * 1e3,
                                   (bel.compute_end_s - bel.compute_start_s) * 1e3,
                                   (bel.end_s - bel.compute_end_s) * 1e3,
                                   len(running), beside, queued)
            return commit(now, gpu, bel, queued, slot)

        est.commit = committed
        on_completion = pol.on_completion

        def completed(batch, view):  # noqa: ANN001, ANN202
            bel = pol.beliefs.get(batch.requests[0].id)
            p = self._pred.pop(id(bel), None) if bel is not None else None
            if p is not None and not batch.failed:
                self._record(batch, p)
            return on_completion(batch, view)

        pol.on_completion = completed  # type: ignore[method-assign]

    def _record(self, batch, p: tuple) -> None:  # noqa: ANN001
        from strait_sim.predictors.base import CoRunner

        now, h2d, comp, d2h, running, beside, queued = p
        est = self.policy.est
        co = [CoRunner(c.model, c.size, c.overlap_ms) for c in batch.co_runs]
        oracle_pred = est.compute_ms(batch.model, batch.size, co) if co else \
            est.solo[batch.model][batch.size]
        i = self._idx[batch.model]
        truth = self._solo_mean[i][batch.size - 1]
        for c in batch.co_runs:
            s = self._truth.pair_slowdown(i, batch.size, self._idx[c.model], c.size)
            truth += c.overlap_ms * (1.0 - 1.0 / s)
        self.rows.append({
            "model": batch.model, "size": batch.size, "n": len(batch.requests),
            "priority": min(r.priority for r in batch.requests),
            "pred_h2d": h2d, "pred_comp": comp, "pred_d2h": d2h,
            "obs_h2d": batch.h2d_ms, "obs_comp": batch.compute_ms, "obs_d2h": batch.d2h_ms,
            "running_at_dispatch": running, "beside": beside, "queued": queued,
            "co_runs": len(batch.co_runs),
            "co_overlap_ms": sum(c.overlap_ms for c in batch.co_runs),
            "oracle_predictor_comp": oracle_pred, "oracle_truth_comp": truth,
        })


def run_one(policy_name: str, profile: str, workload: str, load: float, seed: int,
            duration: float, max_batch: int, params: dict, breakdown: bool
            ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    pol = strait_sim.make_policy(policy_name, **params)
    rec = BatchRecorder(pol) if breakdown else None
    bundle = strait_sim.load_profile(profile)
    wl = strait_sim.describe_workload(bundle, max_batch=max_batch,
                                      **workload_keywords(workload, load, duration))
    res = strait_sim.simulate(pol, bundle, wl, seed=seed, max_batch=max_batch)
    rows = pd.DataFrame(rec.rows) if rec is not None else None
    return res.requests, rows


def _share(err: np.ndarray, w: np.ndarray, mean: float) -> tuple[float, float]:
    """(mean absolute error, mean error), weighted, as shares of ``mean``."""
    return (float(np.average(np.abs(err), weights=w)) / mean,
            float(np.average(err, weights=w)) / mean)


def batch_table(rows: pd.DataFrame) -> dict:
    """MAPE/bias of a group of batch rows, each weighted by its requests, plus the parts."""
    w = rows["n"].to_numpy(dtype=float)
    obs = (rows["obs_h2d"] + rows["obs_comp"] + rows["obs_d2h"]).to_numpy()
    pred = (rows["pred_h2d"] + rows["pred_comp"] + rows["pred_d2h"]).to_numpy()
    mean = float(np.average(obs, weights=w))
    out = {"requests": int(w.sum()), "mean_ms": mean,
           "mape": float(np.average(np.abs(pred - obs) / obs, weights=w)),
           "bias": float(np.average(pred - obs, weights=w)) / mean}
    for part in ("h2d", "comp", "d2h"):
        out[f"{part}_abs"], out[f"{part}_bias"] = _share(
            (rows[f"pred_{part}"] - rows[f"obs_{part}"]).to_numpy(), w, mean)
    copies = (rows["obs_h2d"] + rows["obs_d2h"]).to_numpy()
    for oracle in ("predictor", "truth"):
        po = copies + rows[f"oracle_{oracle}_comp"].to_numpy()
        out[f"oracle_{oracle}_mape"] = float(np.average(np.abs(po - obs) / obs, weights=w))
        out[f"oracle_{oracle}_bias"] = float(np.average(po - obs, weights=w)) / mean
    return out


def print_breakdown(label: str, rows: pd.DataFrame) -> None:
    cols = ("requests", "mean_ms", "mape", "bias", "h2d_abs", "comp_abs", "comp_bias",
            "d2h_abs", "oracle_predictor_mape", "oracle_truth_mape", "oracle_truth_bias")
    head = ("group", "requests", "mean ms", "MAPE", "bias", "|H2D|", "|comp|", "comp bias",
            "|D2H|", "oracle pred", "oracle truth", "truth bias")
    print(f"\n{label}: error shares of the mean service (H2D/compute/D2H: mean |error| "
          f"and bias of the part over the group's mean service); oracles given the "
          f"observed co-runs")
    print(" | ".join(head))
    colocated = rows["co_runs"] > 0
    groups: list[tuple[str, pd.DataFrame]] = [("all", rows), ("alone", rows[~colocated]),
                                              ("co-located", rows[colocated])]
    for k, g in rows.groupby("running_at_dispatch"):
        groups.append((f"{k} running at dispatch", g))
    for k, g in rows.groupby("co_runs"):
        groups.append((f"{k} co-runs", g))
    for m, g in rows.groupby("model"):
        groups.append((str(m), g))
    for name, g in groups:
        if not len(g):
            continue
        t = batch_table(g)
        cells = [name] + [f"{t[c]:.1%}" if c not in ("requests", "mean_ms") else
                          f"{t[c]:.0f}" for c in cols]
        print(" | ".join(cells), flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="strait")
    ap.add_argument("--profile", default="cpu-epyc2-fp32")
    ap.add_argument("--loads", default="0.9,1.1,1.3")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workloads", default="poisson")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--breakdown", action="store_true",
                    help="where the error comes from (parts, co-location, model, oracles)")
    a = ap.parse_args(argv)
    params = {}
    for p in a.param:
        name, _, value = p.partition("=")
        name = name.split(".", 1)[1] if name.startswith(f"{a.policy}.") else name
        try:
            params[name] = json.loads(value)
        except json.JSONDecodeError:
            params[name] = value
    loads = [float(x) for x in a.loads.split(",")]
    print(f"{'process':>11} {'load':>5} {'requests':>8} {'MAPE':>7} {'bias ms':>8} "
          f"{'mean ms':>8} {'bias/mean':>9}")
    details: dict[tuple[str, float], pd.DataFrame] = defaultdict(pd.DataFrame)
    for wl in a.workloads.split(","):
        for load in loads:
            frames, batches = [], []
            for s in range(1, a.seeds + 1):
                df, rows = run_one(a.policy, a.profile, wl, load, s, a.duration,
                                   a.max_batch, params, a.breakdown)
                frames.append(df)
                if rows is not None:
                    batches.append(rows)
            r = accuracy(pd.concat(frames, ignore_index=True))
            print(f"{wl:>11} {load:>5.2f} {r['n']:>8d} {r['mape']:>7.1%} "
                  f"{r['bias_ms']:>+8.1f} {r['mean_ms']:>8.1f} {r['bias_share']:>+9.1%}",
                  flush=True)
            if batches:
                details[(wl, load)] = pd.concat(batches, ignore_index=True)
    for (wl, load), rows in details.items():
        print_breakdown(f"{wl} load {load:g}", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
