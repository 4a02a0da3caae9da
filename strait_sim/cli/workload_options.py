"""The workload flags shared by ``run``, ``compare``, ``validate`` and ``workload generate``.

Owned by the workloads part: :data:`WORKLOAD_OPTIONS` lists the flags, and
:func:`workload_from_options` turns their values (plus an optional ``--config`` TOML) into
a :class:`~strait_sim.workloads.base.Workload`. Every flag defaults to None ("not given")
so that a flag given on the command line can override the experiment file; the real
defaults are applied, and documented, in :mod:`strait_sim.workloads.spec`.
"""

from __future__ import annotations

from pathlib import Path

import typer

from strait_sim.cli.options import option, with_option_group
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.workloads.base import Workload

_P = "Workload"  # rich help panel


def _opt(name: str, annotation, flag: str, help: str) -> object:
    return option(name, annotation, typer.Option(None, flag, help=help, rich_help_panel=_P))


WORKLOAD_OPTIONS = [
    _opt("config", Path | None, "--config",
         "Experiment file (TOML) whose [workload] table sets any of these flags; flags "
         "given here override it."),
    _opt("workload", str | None, "--workload",
         "poisson | gamma | mmpp | diurnal | closed | trace | azure-conv | azure-code "
         "[default: poisson; trace when --trace is given]."),
    _opt("rate", float | None, "--rate", "Mean requests per second (or use --load)."),
    _opt("load", float | None, "--load",
         "Offered work as a share of the GPUs' solo capacity, e.g. 0.8 [default when "
         "neither --rate nor --load: 0.8; traces: the trace's own rate]."),
    _opt("capacity_batch", str | None, "--capacity-batch",
         "With --load: count work per item at this batch size (or 'max' for --max-batch) "
         "instead of solo latency at the request's own size."),
    _opt("duration", float | None, "--duration",
         "Seconds of arrivals, a trace's counted from its first request (or --window's "
         "start) [default: 60; traces: the whole trace]."),
    _opt("max_requests", int | None, "--max-requests", "Stop after this many requests."),
    _opt("models", str | None, "--models",
         "Comma-separated models [default: all in the profile, or those in --mix]."),
    _opt("mix", str | None, "--mix",
         "Model mix as weights: resnet50=3,bert=1 (or 3,1 in --models order) "
         "[default: equal]."),
    _opt("hp_fraction", float | None, "--hp-fraction",
         "Share of high-priority requests [default: 0.2]."),
    _opt("hp_models", str | None, "--hp-models",
         "Priority per model instead: bert (all bert requests HP, the rest LP) or "
         "bert=0.5,resnet50=0.1 (HP share per model)."),
    _opt("slo", str | None, "--slo",
         "Deadline as a multiple of the model's solo latency at its items: 5, or per class "
         "high=3,low=10 [default: 5]."),
    _opt("deadline_ms", str | None, "--deadline-ms",
         "Absolute deadline after arrival, in ms: 50, or per class high=20,low=200 "
         "(a class named here overrides a bare --slo)."),
    _opt("items", str | None, "--items",
         "Items per request: 4, a range 1-8 (uniform), or weights 1=3,8=1 [default: 1]."),
    _opt("cv", float | None, "--cv",
         "gamma: coefficient of variation of the inter-arrival times [default: 2]."),
    _opt("burst_ratio", float | None, "--burst-ratio",
         "mmpp: burst rate / quiet rate [default: 10]."),
    _opt("burst_fraction", float | None, "--burst-fraction",
         "mmpp: long-run share of time in bursts [default: 0.1]."),
    _opt("burst_s", float | None, "--burst-s",
         "mmpp: mean burst length in seconds [default: 1]."),
    _opt("diurnal_amplitude", float | None, "--diurnal-amplitude",
         "diurnal: rate swings by this share of the mean, 0..1 [default: 0.5]."),
    _opt("diurnal_period", float | None, "--diurnal-period",
         "diurnal: period in seconds [default: --duration, one cycle]."),
    _opt("diurnal_phase", float | None, "--diurnal-phase",
         "diurnal: phase in radians at time 0 [default: 0]."),
    _opt("clients", int | None, "--clients", "closed: number of clients [default: 8]."),
    _opt("think_ms", float | None, "--think-ms",
         "closed: mean think time between a response and the next request [default: 100]."),
    _opt("think_dist", str | None, "--think-dist",
         "closed: exp | const think times [default: exp]."),
    _opt("trace", str | None, "--trace",
         "Trace file to replay (strait-sim CSV/Parquet, or an Azure trace as published)."),
    _opt("trace_map", str | None, "--trace-map",
         "How trace requests get models: column | weighted | round-robin | tokens "
         "[default: column if the trace has one, else weighted by --mix]."),
    _opt("token_buckets", str | None, "--token-buckets",
         "tokens mapping: bucket boundaries, e.g. 500,2000 for 3 models [default: "
         "equal-count quantiles]."),
    _opt("window", str | None, "--window",
         "Trace time window START:END in trace seconds (either may be empty)."),
    _opt("time_scale", float | None, "--time-scale",
         "Multiply trace times by this (0.5 = twice as fast, bursts shorter)."),
    _opt("rate_scale", float | None, "--rate-scale",
         "Replay this many times the trace's requests over the same time (thin or copy)."),
]

workload_options = with_option_group(WORKLOAD_OPTIONS, "workload_opts")


def workload_from_options(opts: dict, profile: ProfileBundle, *, gpus: int = 1,
                          max_batch: int = 8) -> Workload:
    """Build the workload the flags (and ``--config``) describe, validated against
    ``profile``. ``gpus`` and ``max_batch`` are the run's, needed by ``--load``."""
    from strait_sim.workloads.spec import build_workload

    return build_workload(opts, profile, gpus=gpus, max_batch=max_batch)
