"""Read the copy engines' behaviour off a bundle's transfers.csv: fair share or serialized?

When ``n`` copies in one direction are released together (measure_transfers aligns them),
each copy's time runs from its own stream reaching it to its end. If the link is shared
fairly, all ``n`` copies end together, at about ``n`` times a lone copy's time; if one copy
engine serves them one after another, they end at 1, 2, ..., ``n`` times it. So the ratio
of the shortest to the longest copy of a round is about 1 under fair sharing and about
``1/n`` under serialization; the verdict takes the midpoint between the two as its line.
``aggregate`` is the round's total throughput relative to one copy alone (1.0: no gain
from concurrency; 2.0: two copies moved twice the bytes per second).

The opposite direction: ``opposite_factor`` is a lone copy's bandwidth with the other
direction busy relative to without (1.0: full duplex; 0.5: the two directions halve it).

Only sizes of at least ``min_bytes`` count: small copies are dominated by fixed costs.
"""

from __future__ import annotations

import pandas as pd


def link_sharing(transfers: pd.DataFrame, min_bytes: int = 4 << 20) -> dict:
    """Per direction: verdict, spread and aggregate per concurrency, opposite factor."""
    out: dict = {}
    big = transfers[transfers["bytes"] >= min_bytes]
    for direction, d in big.groupby("direction"):
        alone = d[(d["concurrent"] == 1) & (d["opposite_active"] == 0)]
        if alone.empty:
            continue
        t1 = alone.groupby("bytes")["time_ms"].median()
        row: dict = {"sizes": [int(b) for b in t1.index], "concurrency": {}}
        verdicts = []
        for n, dn in d[(d["concurrent"] > 1) & (d["opposite_active"] == 0)].groupby("concurrent"):
            rounds = dn.groupby(["bytes", "rep"])["time_ms"].agg(["min", "max"])
            spread = float((rounds["min"] / rounds["max"]).median())
            agg = []
            for (nbytes, _rep), r in rounds.iterrows():
                if nbytes in t1.index and r["max"] > 0:
                    agg.append(int(n) * float(t1[nbytes]) / float(r["max"]))
            line = (1 + 1 / int(n)) / 2
            verdict = "fair" if spread >= line else "serial"
            verdicts.append(verdict)
            row["concurrency"][int(n)] = {
                "min_over_max": round(spread, 3),
                "aggregate": round(float(pd.Series(agg).median()), 3) if agg else None,
                "verdict": verdict}
        row["sharing"] = verdicts[0] if verdicts and len(set(verdicts)) == 1 else \
            ("mixed" if verdicts else None)
        opp = d[(d["concurrent"] == 1) & (d["opposite_active"] == 1)]
        if not opp.empty:
            t_opp = opp.groupby("bytes")["time_ms"].median()
            common = t1.index.intersection(t_opp.index)
            ratios = (t1[common] / t_opp[common]).dropna()
            row["opposite_factor"] = round(float(ratios.median()), 3) if len(ratios) else None
        out[str(direction)] = row
    return out
