"""The accuracy study of arXiv 2512.18725, reproduced on one profile bundle.

Protocol (each step a function, so tests can check them one by one):

1. :func:`colocation_samples` turns pairs.csv into one row per observed batch; both views
   of one co-located run share a ``run_id`` and always fall on the same side of a split.
2. :func:`make_scenarios` builds the train/test splits (75/25 of the runs; splits drawn
   at random use ``numpy.random.default_rng(seed)``):
   - ``random``: runs drawn at random (seeded): the test set is like the training set;
   - ``higher-load``: the 75% of runs with the least overlap train, the 25% with the most
     overlap test (overlap of a run = ``overlap_ms / min(solo_a, solo_b)``): the load, and
     so the overlap, grows after the fit;
   - ``unseen-pairs``: whole model pairs ``{a, b}`` (both orders) are held out, drawn at
     random until at least 25% of the runs are held out: pairs never seen in training;
   - ``chronological``: the first 75% of the runs in measurement order train, the last
     25% test: whatever drifts over a profiling session (the machine's background load,
     the mix of pairs the profiler's budget reached) drifts after the fit;
   - ``unseen-concurrency``: pairs.csv measures two batches at once only, so no test with
     more co-runners exists; the scenario is listed as not measured. (Copies were measured
     at several concurrency levels: see step 5.)
3. :func:`evaluate_scenario` fits each predictor on the training rows and walks the test
   runs in measurement order (pairs.csv row order): predict, then (online predictors
   only) ``update`` with the observed latencies, as a scheduler would after each
   completion. Errors are prediction-before-update (prequential).
4. :func:`noise_floor`: the error of predicting each sample by the median of its own
   repetitions, a rough floor for any predictor on this bundle.
5. :func:`metrics` per predictor and scenario: MAPE, MSE (ms^2), P90 and max relative
   error, and the mean signed relative error (bias: > 0 over-predicts). The learning curve
   is the MAPE of consecutive blocks of the test stream against the number of
   observations seen; the error by overlap bucket shows where coarse models fail.
6. :func:`evaluate_transfers`: the copy-time model on transfers.csv, a random 75/25 split
   and an ``unseen-concurrency`` split (fit on the lowest concurrency levels, test on the
   highest), against a no-contention baseline that ignores the other copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from strait_sim.errors import UserError
from strait_sim.predictors.base import CoRunner, Observation
from strait_sim.predictors.registry import fit_predictor, predictor_class, predictor_params
from strait_sim.predictors.samples import colocation_samples
from strait_sim.predictors.transfer import (
    DIRECTIONS,
    LARGE_COPY_BYTES,
    TransferPredictor,
    fit_link,
)

if TYPE_CHECKING:
    from strait_sim.profile_bundle import ProfileBundle

TEST_FRACTION = 0.25
MIN_TRAIN_ROWS = 20
MIN_TEST_ROWS = 8
CURVE_BLOCKS = 10
OVERLAP_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0, np.inf)

SCENARIO_DESCRIPTIONS = {
    "random": "random 75/25 split of the co-located runs",
    "higher-load": "train on the 75% of runs with least overlap, test on the 25% with most",
    "unseen-pairs": "test on model pairs never seen in training",
    "chronological": "train on the runs measured first, test on the last 25% measured",
    "unseen-concurrency": "test with more co-runners than in training",
}


@dataclass
class Scenario:
    """One train/test split (row masks over the samples table), or why there is none."""

    name: str
    train: np.ndarray | None = None
    test: np.ndarray | None = None
    note: str = ""

    @property
    def runnable(self) -> bool:
        return self.train is not None and self.test is not None

    @property
    def description(self) -> str:
        return SCENARIO_DESCRIPTIONS[self.name]


@dataclass
class Evaluation:
    """Everything the command writes: tables and the scenarios they came from."""

    accuracy: pd.DataFrame
    scenarios: pd.DataFrame
    curves: pd.DataFrame
    by_overlap: pd.DataFrame
    transfers: pd.DataFrame | None
    transfer_fit: pd.DataFrame | None
    noise: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


# -- splits ------------------------------------------------------------------------------


def _split_runs(samples: pd.DataFrame, test_runs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    test = samples["run_id"].isin(test_runs).to_numpy()
    return ~test, test


def make_scenarios(samples: pd.DataFrame, seed: int,
                   test_fraction: float = TEST_FRACTION) -> list[Scenario]:
    """The four scenarios of the module doc, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    runs = np.unique(samples["run_id"].to_numpy())
    n_test = max(1, int(round(test_fraction * len(runs))))
    out: list[Scenario] = []

    shuffled = rng.permutation(runs)
    out.append(Scenario("random", *_split_runs(samples, shuffled[:n_test])))

    per_run = samples.groupby("run_id").agg(overlap=("overlap_ms", "first"),
                                            solo=("solo_ms", "min"))
    load = (per_run["overlap"] / per_run["solo"]).reindex(runs).to_numpy()
    tiebreak = rng.permutation(len(runs))
    order = np.lexsort((tiebreak, load))  # by load, ties broken at random
    out.append(Scenario("higher-load", *_split_runs(samples, runs[order[-n_test:]])))

    first = samples[samples["view"] == "first"]
    pair_of_run = {int(r): tuple(sorted((str(m), str(c)))) for r, m, c in
                   zip(first["run_id"], first["model"], first["co_model"], strict=True)}
    pairs = sorted(set(pair_of_run.values()))
    if len(pairs) < 2:
        out.append(Scenario("unseen-pairs", note=f"only {len(pairs)} model pair measured"))
    else:
        runs_per_pair = pd.Series(pair_of_run).groupby(pd.Series(pair_of_run)).size()
        held: list[tuple[str, str]] = []
        held_runs = 0
        for i in rng.permutation(len(pairs)):
            if held_runs >= n_test or len(held) == len(pairs) - 1:
                break
            held.append(pairs[i])
            held_runs += int(runs_per_pair[pairs[i]])
        held_set = set(held)
        test_runs = np.array([r for r, p in pair_of_run.items() if p in held_set])
        sc = Scenario("unseen-pairs", *_split_runs(samples, test_runs))
        sc.note = "held out: " + "; ".join(f"{a}+{b}" for a, b in held)
        out.append(sc)

    out.append(Scenario("chronological", *_split_runs(samples, runs[-n_test:])))

    out.append(Scenario("unseen-concurrency",
                        note="not measured: pairs.csv holds runs of two batches at once only"))
    return out


def split_problem(scenario: Scenario, samples: pd.DataFrame) -> str | None:
    """Why a split is too small to fit or to judge, or None when it is usable."""
    assert scenario.train is not None and scenario.test is not None
    n_train, n_test = int(scenario.train.sum()), int(scenario.test.sum())
    if n_train < MIN_TRAIN_ROWS or n_test < MIN_TEST_ROWS:
        return (f"split '{scenario.name}' has {n_train} training and {n_test} test "
                f"samples (of {len(samples)}); need at least {MIN_TRAIN_ROWS} and "
                f"{MIN_TEST_ROWS}")
    return None


def check_split(scenario: Scenario, samples: pd.DataFrame) -> None:
    """A split too small to fit or to judge is a user error (one line)."""
    problem = split_problem(scenario, samples)
    if problem:
        raise UserError(f"{problem}: profile more co-located runs")


# -- metrics -----------------------------------------------------------------------------


def metrics(pred: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """MAPE, MSE, P90 and max relative error (percent), bias (mean signed, percent)."""
    rel = (pred - actual) / actual
    abs_rel = np.abs(rel)
    return {
        "mape_pct": float(100 * abs_rel.mean()),
        "mse_ms2": float(np.mean((pred - actual) ** 2)),
        "p90_rel_err_pct": float(100 * np.quantile(abs_rel, 0.9)),
        "max_rel_err_pct": float(100 * abs_rel.max()),
        "bias_pct": float(100 * rel.mean()),
    }


def learning_curve(abs_rel: np.ndarray, blocks: int = CURVE_BLOCKS) -> list[tuple[int, float]]:
    """(observations seen at the block's end, MAPE of the block) for consecutive blocks."""
    edges = np.unique(np.linspace(0, len(abs_rel), blocks + 1).astype(int))
    return [(int(hi), float(100 * abs_rel[lo:hi].mean()))
            for lo, hi in zip(edges[:-1], edges[1:], strict=True) if hi > lo]


# -- one scenario ------------------------------------------------------------------------


def stream_predictions(predictor, test: pd.DataFrame) -> np.ndarray:  # noqa: ANN001
    """Predict the test rows in order; online predictors then learn from them.

    Rows of one run (its two views) are all predicted before the predictor learns from
    any of them: both batches of a run finish at about the same time, so a scheduler
    could not have used one to predict the other.
    """
    preds = np.empty(len(test))
    online = predictor.online
    pending: list[Observation] = []
    last_run = None
    cols = zip(test["run_id"].astype(int), test["model"].astype(str),
               test["batch"].astype(int), test["co_model"].astype(str),
               test["co_batch"].astype(int), test["overlap_ms"].astype(float),
               test["latency_ms"].astype(float), strict=True)
    for i, (run, m, b, c, cb, ov, lat) in enumerate(cols):
        if online and run != last_run:
            for obs in pending:
                predictor.update(obs)
            pending.clear()
        last_run = run
        co = (CoRunner(c, cb, ov),)
        preds[i] = predictor.predict(m, b, co)
        if online:
            pending.append(Observation(m, b, co, lat))
    return preds


def _params_for(name: str, seed: int) -> dict:
    return {"seed": seed} if "seed" in predictor_params(name) else {}


def evaluate_scenario(samples: pd.DataFrame, profile: ProfileBundle, scenario: Scenario,
                      predictors: Sequence[str], seed: int, *, cache: bool = True
                      ) -> tuple[list[dict], list[dict], list[dict]]:
    """Accuracy rows, learning-curve rows and error-by-overlap rows of one scenario."""
    check_split(scenario, samples)
    assert scenario.train is not None and scenario.test is not None
    train = samples[scenario.train].reset_index(drop=True)
    test = samples[scenario.test].reset_index(drop=True)
    test = test.sort_values(["run_id", "view"], kind="stable").reset_index(drop=True)
    actual = test["latency_ms"].to_numpy(dtype=float)
    frac = test["overlap_fraction"].to_numpy(dtype=float)
    bucket = pd.cut(frac, OVERLAP_BUCKETS, right=False)
    acc, curves, by_ov = [], [], []
    for name in predictors:
        predictor = fit_predictor(name, train, profile, cache=cache, **_params_for(name, seed))
        pred = stream_predictions(predictor, test)
        row = {"scenario": scenario.name, "predictor": name, "online": predictor.online,
               "n_train": len(train), "n_test": len(test)}
        row.update(metrics(pred, actual))
        acc.append(row)
        rel = (pred - actual) / actual
        for seen, mape in learning_curve(np.abs(rel)):
            curves.append({"scenario": scenario.name, "predictor": name,
                           "observations": seen, "block_mape_pct": mape})
        grouped = pd.DataFrame({"bucket": bucket, "rel": rel, "abs": np.abs(rel)}).groupby(
            "bucket", observed=True)
        for b, g in grouped:
            by_ov.append({"scenario": scenario.name, "predictor": name,
                          "overlap_fraction": f"[{b.left:g}, {b.right:g})", "n": len(g),
                          "mape_pct": float(100 * g["abs"].mean()),
                          "bias_pct": float(100 * g["rel"].mean())})
    return acc, curves, by_ov


# -- how noisy are the measurements? -------------------------------------------------------


def _leave_one_out(values: pd.Series, keys: list[pd.Series]) -> tuple[np.ndarray, np.ndarray]:
    """Each value, and the median of the *other* values of its configuration (groups of
    at least two samples only)."""
    actual, pred = [], []
    for _, grp in values.groupby(keys):
        v = grp.to_numpy(dtype=float)
        if len(v) < 2:
            continue
        for i in range(len(v)):
            actual.append(v[i])
            pred.append(float(np.median(np.delete(v, i))))
    return np.array(actual), np.array(pred)


def noise_floor(samples: pd.DataFrame, profile: ProfileBundle) -> pd.DataFrame:
    """Error of predicting each sample by the median of its repetitions.

    Repetitions of one configuration (same models, batches, start offset; for solo runs,
    same model and batch; for copies, same direction, size and concurrency) differ only
    by measurement noise, so this error is roughly the best any predictor of those
    features can hope for on this bundle. With two repetitions (the CPU profile's pairs)
    it compares two noisy samples, so it overstates the noise of one sample around its
    mean by up to about sqrt(2).
    """
    rows = []
    solo = profile.solo
    a, p = _leave_one_out(solo["latency_ms"], [solo["model"], solo["batch"]])
    groups = [samples[c] for c in ("model", "batch", "co_model", "co_batch", "view",
                                   "config_offset")]
    b, q = _leave_one_out(samples["latency_ms"], groups)
    sets = [("solo runs", a, p), ("co-located runs", b, q)]
    if profile.has("transfers"):
        tr = profile.transfers
        assert tr is not None
        c, r = _leave_one_out(tr["time_ms"], [tr["direction"], tr["bytes"], tr["concurrent"]])
        sets.append(("copies", c, r))
    for what, actual, pred in sets:
        if len(actual) == 0:
            continue
        row = {"samples": what, "n": len(actual)}
        row.update(metrics(pred, actual))
        rows.append(row)
    return pd.DataFrame(rows)


# -- transfers ---------------------------------------------------------------------------


def _fit_partial_sharing(nbytes: np.ndarray, concurrent: np.ndarray, t: np.ndarray
                         ) -> np.ndarray:
    """Coefficients ``(a, b, c)`` of ``t = a + bytes * (b + c * (concurrent - 1))``.

    ``c / b`` is the fraction of a fair share each extra copy takes (1: fair sharing,
    0: copies do not slow each other). Fitted like the predictor's link (see
    :mod:`strait_sim.predictors.transfer`): ``a`` from the smallest copies, then one
    inverse bandwidth per concurrency level (log-space least squares on the copies of at
    least 1 MiB, or on all copies when fewer), then a straight line through those.
    An evaluation-only generalisation that tells how far the measured link is from the
    fair-sharing model the predictor uses.
    """
    levels = np.unique(concurrent)
    fixed = fit_link(nbytes, np.ones_like(t), t).fixed_ms
    inv = []
    for k in levels:
        at = concurrent == k
        big = at & (nbytes >= LARGE_COPY_BYTES)
        rows = big if big.sum() >= 3 else at
        excess = t[rows] - fixed
        ok = excess > 0
        inv.append(float(np.exp(np.mean(np.log(excess[ok] / nbytes[rows][ok]))))
                   if ok.any() else np.nan)
    inv_arr = np.array(inv)
    good = np.isfinite(inv_arr)
    if good.sum() >= 2:
        c, b = np.polyfit(levels[good] - 1.0, inv_arr[good], 1)
    else:
        b, c = float(np.nanmean(inv_arr)), 0.0
    return np.array([fixed, b, c])


def evaluate_transfers(transfers: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy rows, fitted coefficients on all rows) of the copy-time model.

    Three models, each fitted on the training rows: ``fair-share`` (the predictor),
    ``no-contention`` (the same form fitted as if every copy ran alone) and
    ``partial-sharing`` (see :func:`_fit_partial_sharing`). Errors are given over all
    test copies and over the copies of at least 1 MiB, where the bandwidth (and so the
    sharing) matters more than the fixed cost.
    """
    rng = np.random.default_rng([seed, 7])
    rows = []
    fit = TransferPredictor.fit(transfers).describe()
    shares = []
    for direction in DIRECTIONS:
        df = transfers[transfers["direction"] == direction].reset_index(drop=True)
        b_all = df["bytes"].to_numpy(dtype=float)
        c_all = df["concurrent"].to_numpy(dtype=float)
        part = _fit_partial_sharing(b_all, c_all, df["time_ms"].to_numpy(dtype=float))
        shares.append(float(part[2] / part[1]) if part[1] > 0 else float("nan"))
        perm = rng.permutation(len(df))
        n_test = max(1, int(round(TEST_FRACTION * len(df))))
        levels = np.sort(df["concurrent"].unique())
        splits = {"random": (perm[n_test:], perm[:n_test])}
        if len(levels) >= 2:
            top = levels[-max(1, len(levels) // 3):]
            is_top = df["concurrent"].isin(top).to_numpy()
            splits["unseen-concurrency"] = (np.flatnonzero(~is_top), np.flatnonzero(is_top))
        for scen, (tr, te) in splits.items():
            train, test = df.iloc[tr], df.iloc[te]
            if train["bytes"].nunique() < 2 or len(test) == 0:
                continue
            tb = train["bytes"].to_numpy(dtype=float)
            tc = train["concurrent"].to_numpy(dtype=float)
            tt = train["time_ms"].to_numpy(dtype=float)
            fair = fit_link(tb, tc, tt)
            alone = fit_link(tb, np.ones_like(tc), tt)
            actual = test["time_ms"].to_numpy(dtype=float)
            conc = test["concurrent"].to_numpy(dtype=float)
            nbytes = test["bytes"].to_numpy(dtype=float)
            models = [
                ("fair-share", fair.fixed_ms + nbytes * conc / fair.bandwidth_bytes_per_ms),
                ("no-contention", alone.fixed_ms + nbytes / alone.bandwidth_bytes_per_ms),
            ]
            if tc.min() < tc.max():  # a sharing coefficient needs two levels to fit
                a, b, c = _fit_partial_sharing(tb, tc, tt)
                models.append(("partial-sharing", a + nbytes * (b + c * (conc - 1))))
            large = nbytes >= LARGE_COPY_BYTES
            for model, pred in models:
                for sizes, mask in (("all", np.ones_like(large)), (">=1MiB", large)):
                    if not mask.any():
                        continue
                    row = {"direction": direction, "scenario": scen, "model": model,
                           "sizes": sizes, "n_train": len(train), "n_test": int(mask.sum()),
                           "train_concurrency": _levels(train),
                           "test_concurrency": _levels(test)}
                    row.update(metrics(pred[mask], actual[mask]))
                    rows.append(row)
    fit["fitted_share_per_extra_copy"] = shares
    return pd.DataFrame(rows), fit


def _levels(df: pd.DataFrame) -> str:
    return ",".join(str(int(v)) for v in sorted(df["concurrent"].unique()))


# -- the whole study ---------------------------------------------------------------------


def evaluate(profile: ProfileBundle, predictors: Sequence[str] | None = None, seed: int = 0,
             *, cache: bool = True) -> Evaluation:
    """Run the protocol of the module doc on ``profile``."""
    from strait_sim.predictors.registry import predictor_names

    names = list(predictors) if predictors else predictor_names()
    for n in names:
        predictor_class(n)  # unknown names fail before any work
    samples = colocation_samples(profile)
    scenarios = make_scenarios(samples, seed)
    acc, curves, by_ov, scen_rows = [], [], [], []
    for sc in scenarios:
        if sc.runnable and sc.name != "random":
            problem = split_problem(sc, samples)  # only the random split is mandatory
            if problem:
                sc = Scenario(sc.name, note=f"skipped: {problem}")
        if not sc.runnable:
            scen_rows.append({"scenario": sc.name, "status": "skipped", "n_train": 0,
                              "n_test": 0, "description": sc.description, "note": sc.note})
            continue
        a, c, o = evaluate_scenario(samples, profile, sc, names, seed, cache=cache)
        acc += a
        curves += c
        by_ov += o
        scen_rows.append({"scenario": sc.name, "status": "evaluated",
                          "n_train": int(sc.train.sum()), "n_test": int(sc.test.sum()),
                          "description": sc.description, "note": sc.note})
    notes = []
    transfers = transfer_fit = None
    if profile.has("transfers"):
        assert profile.transfers is not None
        transfers, transfer_fit = evaluate_transfers(profile.transfers, seed)
    else:
        notes.append("no transfers.csv in the bundle: copy-time model not evaluated")
    return Evaluation(pd.DataFrame(acc), pd.DataFrame(scen_rows), pd.DataFrame(curves),
                      pd.DataFrame(by_ov), transfers, transfer_fit,
                      noise_floor(samples, profile), notes)


def markdown_tables(result: Evaluation) -> str:
    """The accuracy and copy-time tables as Markdown (pasted as-is into docs)."""
    lines = ["| scenario | predictor | n_train | n_test | MAPE % | MSE ms² | P90 % | max % "
             "| bias % |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result.accuracy.itertuples(index=False):
        lines.append(f"| {r.scenario} | {r.predictor} | {r.n_train} | {r.n_test} | "
                     f"{r.mape_pct:.2f} | {r.mse_ms2:.3g} | {r.p90_rel_err_pct:.2f} | "
                     f"{r.max_rel_err_pct:.1f} | {r.bias_pct:+.2f} |")
    for r in result.scenarios.itertuples(index=False):
        if r.status != "evaluated":
            lines.append(f"\n{r.scenario}: {r.note}")
    if len(result.noise):
        lines += ["", "Noise floor (each sample predicted by the median of its repetitions):",
                  "", "| samples | n | MAPE % | P90 % | max % |", "|---|---:|---:|---:|---:|"]
        for r in result.noise.itertuples(index=False):
            lines.append(f"| {r.samples} | {r.n} | {r.mape_pct:.2f} | "
                         f"{r.p90_rel_err_pct:.2f} | {r.max_rel_err_pct:.1f} |")
    if result.transfers is not None and len(result.transfers):
        lines += ["", "| direction | scenario | model | sizes | test concurrency | n_test "
                  "| MAPE % | P90 % | max % | bias % |",
                  "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
        for r in result.transfers.itertuples(index=False):
            lines.append(f"| {r.direction} | {r.scenario} | {r.model} | {r.sizes} | "
                         f"{r.test_concurrency} | {r.n_test} | {r.mape_pct:.2f} | "
                         f"{r.p90_rel_err_pct:.2f} | {r.max_rel_err_pct:.1f} | "
                         f"{r.bias_pct:+.2f} |")
    return "\n".join(lines) + "\n"
