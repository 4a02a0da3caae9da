"""Terminal rendering of run summaries (rich), shared by run, compare and validate."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v < 100 else f"{v:.0f}"


def summary_table(summary: dict, title: str | None = None) -> Table:
    table = Table(title=title or f"{summary.get('policy', '?')} on "
                  f"{summary.get('profile', {}).get('name', '?')} (seed {summary.get('seed')})",
                  box=box.SIMPLE_HEAD, padding=(0, 1), show_edge=False,
                  caption_justify="left")
    table.caption = ("n = requests = on time + late + dropped + rejected + failed (a live "
                     "run's requests that never finished, e.g. after Ctrl-C); "
                     "viol. = violated, not on time; latency percentiles of served requests")
    for col in ("class", "n", "on time", "late", "drop", "rej", "fail", "viol. %",
                "p50 ms", "p95 ms", "p99 ms"):
        table.add_column(col, justify="right" if col != "class" else "left",
                         min_width=len(col))
    rows = [(name, summary["by_class"][name]) for name in ("high", "low")]
    rows.append(("all", summary["overall"]))
    for name, c in rows:
        vr = c.get("violation_rate")
        table.add_row(name, str(c["count"]), str(c["on_time"]), str(c["late"]),
                      str(c["dropped"]), str(c["rejected"]), str(c.get("failed", 0)),
                      "-" if vr is None else f"{100 * vr:.1f}",
                      _ms(c["p50_ms"]), _ms(c["p95_ms"]), _ms(c["p99_ms"]))
    return table


def print_summary(summary: dict, console: Console | None = None) -> None:
    console = console or Console()
    console.print(summary_table(summary))
    busy = summary.get("gpu_busy_fraction")
    eng = summary.get("engine", {})
    bits = []
    if busy is not None:
        bits.append(f"device busy {100 * busy:.1f}%")
    if summary.get("jain_fairness") is not None:
        bits.append(f"Jain fairness {summary['jain_fairness']:.3f}")
    if eng.get("requests_per_wall_s"):
        bits.append(f"{eng['requests_per_wall_s']:,.0f} simulated requests/s")
    pred = summary.get("prediction", {})
    if pred.get("predictions"):
        bits.append(f"prediction MAPE {100 * pred['mape']:.1f}%")
    if bits:
        console.print("  ".join(bits))
