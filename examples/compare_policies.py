# %% [markdown]
# # Three policies on one shared device, from Python
#
# The same runs as `strait-sim run` and `strait-sim compare`, scripted: simulate one
# workload, compare three policies over seeds and loads on identical arrivals, and plot
# deadline violations per priority class. Every number comes from the bundled default
# profile (a measured CPU, see `strait-sim profiles`); no GPU figure is claimed.
# This file and `compare_policies.ipynb` hold the same cells (`# %%` marks a cell).

# %%
from pathlib import Path

import matplotlib.pyplot as plt

import strait_sim
from strait_sim.plotting import bounded_interval, clamp_ylim

out = Path("runs/examples")
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## One run
# A short workload at 90% offered load under `strait`; `result.requests` is a DataFrame
# with one row per request, `result.summary` the run's summary.

# %%
result = strait_sim.simulate(policy="strait", load=0.9, duration=10, seed=1)
for cls in ("high", "low"):
    c = result.summary["by_class"][cls]
    print(f"{cls:>4}: {c['count']} requests, {100 * c['violation_rate']:.1f}% violated, "
          f"p99 {c['p99_ms']:.0f} ms")
result.write(out / "strait", overwrite=True)  # a rerun of the example replaces its run
print("report:", strait_sim.report(out / "strait"))

# %% [markdown]
# ## Three policies, two loads, three seeds
# Every policy sees the same arrivals for a given seed and load (a paired comparison).

# %%
cmp = strait_sim.compare(["strait", "priority", "fifo"], loads=[0.7, 1.1], seeds=3,
                         duration=5)
cmp.table[["load", "policy", "seeds"]].assign(**{
    "HP violated (%)": 100 * cmp.table["hp_violation"],
    "LP violated (%)": 100 * cmp.table["lp_violation"],
    "HP p99 (ms)": cmp.table["hp_p99_ms"]}).round(1)

# %% [markdown]
# ## Violations against load
# Mean over seeds with a 95% bootstrap interval that stays within 0-100%.

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), sharey=True, layout="constrained")
for ax, (cls, col) in zip(axes, (("high", "hp_violation"), ("low", "lp_violation")),
                          strict=True):
    for policy in cmp.policies:
        rows = cmp.runs[cmp.runs["policy"] == policy]
        loads = sorted(rows["load"].unique())
        stats = [bounded_interval(rows.loc[rows["load"] == ld, col], lo=0.0, hi=1.0)
                 for ld in loads]
        mean = [100 * s[0] for s in stats]
        err = [[100 * (s[0] - s[1]) for s in stats], [100 * (s[2] - s[0]) for s in stats]]
        ax.errorbar(loads, mean, yerr=err, marker="o", capsize=3,
                    label=f"{policy} (n={stats[0][3]} seeds)")
    ax.set_title(f"{cls}-priority requests")
    ax.set_xlabel("offered load (share of solo capacity)")
    ax.grid(alpha=0.3)
clamp_ylim(axes[0], 0.0, 100.0)  # shared y: once, after both panels have their data
axes[0].set_ylabel("deadline violations (%)")
axes[0].legend(fontsize=8)
fig.savefig(out / "violations_vs_load.png", dpi=100)
print("figure:", out / "violations_vs_load.png")
