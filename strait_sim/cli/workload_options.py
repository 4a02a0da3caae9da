"""The workload flags shared by ``run``, ``compare``, ``validate`` and ``workload generate``.

Owned by the workloads part: :data:`WORKLOAD_OPTIONS` lists the flags, and
:func:`workload_from_options` turns their values (plus an optional ``--config`` TOML) into
a :class:`~strait_sim.workloads.base.Workload`.
"""

from __future__ import annotations

from typing import Optional

import typer

from strait_sim.cli.options import option, with_option_group
from strait_sim.errors import UserError
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.workloads.base import Workload

WORKLOAD_OPTIONS = [
    option("workload", str, typer.Option("poisson", "--workload", help="Arrival process.")),
    option("rate", Optional[float], typer.Option(None, "--rate", help="Requests per second.")),
    option("duration", float, typer.Option(60.0, "--duration", help="Seconds of arrivals.")),
    option("models", Optional[str], typer.Option(
        None, "--models", help="Comma-separated models (default: all in the profile).")),
    option("hp_fraction", float, typer.Option(0.2, "--hp-fraction",
                                              help="Share of high-priority requests.")),
    option("slo", float, typer.Option(5.0, "--slo",
                                      help="Deadline as a multiple of the solo latency.")),
    option("max_requests", Optional[int], typer.Option(
        None, "--max-requests", help="Stop after this many requests.")),
]

workload_options = with_option_group(WORKLOAD_OPTIONS, "workload_opts")


def workload_from_options(opts: dict, profile: ProfileBundle, *, gpus: int = 1,
                          max_batch: int = 8) -> Workload:
    """Build the workload the flags describe, validated against ``profile``."""
    from strait_sim.workloads.poisson_basic import BasicPoissonWorkload

    if opts["workload"] != "poisson":
        raise UserError(f"unknown workload '{opts['workload']}'; valid: poisson")
    models = tuple(m.strip() for m in opts["models"].split(",")) if opts.get("models") \
        else profile.model_names
    for m in models:
        profile.require_model(m)
    if opts.get("rate") is None:
        raise UserError("--rate is required")
    try:
        return BasicPoissonWorkload(models, rate=opts["rate"], duration_s=opts["duration"],
                                    hp_fraction=opts["hp_fraction"], slo=opts["slo"],
                                    max_requests=opts.get("max_requests"))
    except ValueError as exc:
        raise UserError(str(exc)) from None
