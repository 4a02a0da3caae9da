"""Out-of-sample accuracy of the copy-time predictor: the shared link fit against the
two-step fit it replaced (issue 13, item 5; commit b205030).

The same splits as ``predict evaluate`` (strait_sim/predictors/evaluate.py,
``evaluate_transfers``: a seeded random 75/25 split per direction, and the unseen
highest concurrency level), both fits on the training rows only, errors on the test rows:

- ``two-step``: :func:`strait_sim.predictors.transfer.fit_link` with fair sharing, what
  TransferPredictor did before b205030 (and the "fair-share" row of predict evaluate);
- ``shared``: ``TransferPredictor.fit`` as it is now (strait_sim.truth.pcie.fit_direction:
  lone copies, sharing rule chosen by the data).

Run: .venv/bin/python experiments/transfer_predictor_oos.py [BUNDLE ...] (default: the
bundled profiles). Prints one row per bundle, direction, split and size range.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from strait_sim import api
from strait_sim.predictors.evaluate import LARGE_COPY_BYTES, TEST_FRACTION
from strait_sim.predictors.transfer import DIRECTIONS, TransferPredictor, fit_link


def mape(pred: np.ndarray, actual: np.ndarray, mask: np.ndarray) -> float:
    return float(100 * np.mean(np.abs(pred[mask] - actual[mask]) / actual[mask]))


def splits(df: pd.DataFrame, rng: np.random.Generator) -> dict:
    perm = rng.permutation(len(df))
    n_test = max(1, int(round(TEST_FRACTION * len(df))))
    out = {"random": (perm[n_test:], perm[:n_test])}
    levels = np.sort(df["concurrent"].unique())
    if len(levels) >= 2:
        top = levels[-max(1, len(levels) // 3):]
        is_top = df["concurrent"].isin(top).to_numpy()
        out["unseen-concurrency"] = (np.flatnonzero(~is_top), np.flatnonzero(is_top))
    return out


def main(names: list[str]) -> None:
    print("bundle | direction | split | sizes | n_test | two-step MAPE % | shared MAPE % | "
          "shared rule")
    for name in names:
        bundle = api.load_profile(name)
        tr = bundle.transfers
        if tr is None:
            continue
        rng = np.random.default_rng([0, 7])  # predict evaluate's default seed 0
        for direction in DIRECTIONS:
            df = tr[tr["direction"] == direction].reset_index(drop=True)
            for split, (a, b) in splits(df, rng).items():
                train, test = df.iloc[a], df.iloc[b]
                if train["bytes"].nunique() < 2 or len(test) == 0:
                    continue
                old = fit_link(train["bytes"].to_numpy(float), train["concurrent"].to_numpy(float),
                               train["time_ms"].to_numpy(float))
                # the class fits both directions; the other one's rows do not enter
                # this direction's fit (truth.pcie.fit_direction reads one direction)
                new = TransferPredictor.fit(pd.concat([train, tr[tr["direction"] != direction]]))
                nbytes = test["bytes"].to_numpy(float)
                conc = test["concurrent"].to_numpy(int)
                actual = test["time_ms"].to_numpy(float)
                p_old = old.fixed_ms + nbytes * conc / old.bandwidth_bytes_per_ms
                p_new = np.array([new.predict_ms(direction, x, int(c) - 1)
                                  for x, c in zip(nbytes, conc, strict=True)])
                rule = getattr(new.fits.get(direction), "rule", "two-step fallback")
                for sizes, mask in (("all", np.ones(len(test), bool)),
                                    (">=1MiB", nbytes >= LARGE_COPY_BYTES)):
                    if not mask.any():
                        continue

                    print(f"{name} | {direction} | {split} | {sizes} | {int(mask.sum())} | "
                          f"{mape(p_old, actual, mask):.1f} | {mape(p_new, actual, mask):.1f} | "
                          f"{rule}")


if __name__ == "__main__":
    main(sys.argv[1:] or ["cpu-epyc2-fp32", "synthetic-tiny"])
