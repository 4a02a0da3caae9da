"""The Python API: what the CLI does, callable from a script or a notebook.

Researchers script experiments; this module gives them the CLI's verbs as functions with
the CLI's defaults, and the CLI calls these same functions, so a run started from Python
and one started from the shell are the same run (the same seed gives the same bytes)::

    >>> import strait_sim
    >>> result = strait_sim.simulate(policy="fifo", profile="synthetic-tiny", duration=2,
    ...                              seed=1)
    >>> sorted(result.summary["by_class"])
    ['high', 'low']
    >>> list(result.requests.columns[:4])
    ['id', 'model', 'priority', 'arrival_s']

Workloads are given either as an object (:func:`describe_workload`) or as keywords named
after the CLI's workload flags (``--hp-fraction 0.3`` is ``hp_fraction=0.3``; ``--slo
high=3,low=10`` is ``slo="high=3,low=10"`` or ``slo={"high": 3, "low": 10}``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from strait_sim.errors import UserError
from strait_sim.policies.base import Policy
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.results import RunResult, load_results
from strait_sim.workloads.base import Workload

ProfileLike = str | Path | ProfileBundle | None
PolicyLike = str | Policy


def load_profile(profile: ProfileLike = None) -> ProfileBundle:
    """A profile bundle from a bundled name, a bundle folder, or the default (None).

    >>> load_profile("synthetic-tiny").name
    'synthetic-tiny'
    """
    if isinstance(profile, ProfileBundle):
        return profile
    if profile is not None and not isinstance(profile, str | Path):
        raise UserError(f"profile must be a name, a bundle folder or a ProfileBundle, got "
                        f"{type(profile).__name__} {profile!r}")
    from strait_sim.profile_bundle import load_bundle
    from strait_sim.profile_registry import default_profile_name

    return load_bundle(default_profile_name() if profile is None else profile)


def make_policy(name: str, **params: Any) -> Policy:
    """A fresh policy object; ``params`` are the policy's parameters (``--param``).

    >>> make_policy("priority").name
    'priority'
    """
    from strait_sim.policies.registry import make_policy as _make

    return _make(name, **params)


def policy_names() -> list[str]:
    """Every registered policy name (built-ins and entry points).

    >>> "strait" in policy_names()
    True
    """
    from strait_sim.policies.registry import policy_names as _names

    return _names()


def _flag_text(key: str, value: Any) -> Any:
    """A Python value as the text its CLI flag takes: lists become ``a,b``, mappings
    ``k=v,k=v``; numbers stay numbers where the flag is numeric."""
    from strait_sim.sweep.spec import base_types, workload_parameters

    params = workload_parameters()
    if key not in params:
        valid = ", ".join(sorted(params))
        raise UserError(f"unknown workload keyword '{key}'; valid: {valid}")
    types = base_types(params[key].annotation)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, Path):
        return str(value)
    if str in types:
        if isinstance(value, Mapping):
            return ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in value.items())
        if isinstance(value, Iterable) and not isinstance(value, str):
            return ",".join(str(v) for v in value)
        if isinstance(value, int | float) and Path not in types:
            return f"{value:g}" if isinstance(value, float) else str(value)
    return value


def workload_options(**keywords: Any) -> dict[str, Any]:
    """The CLI's workload option dict (every flag, None where not given) for ``keywords``."""
    from strait_sim.sweep.spec import workload_defaults

    opts = workload_defaults()
    for key, value in keywords.items():
        opts[key] = _flag_text(key, value)
    return opts


def describe_workload(profile: ProfileLike = None, *, gpus: int = 1, max_batch: int = 8,
                      **keywords: Any) -> Workload:
    """A workload from the CLI's workload keywords, validated against ``profile``.

    >>> wl = describe_workload("synthetic-tiny", rate=50, duration=1)
    >>> wl.describe()["kind"]
    'poisson'
    """
    from strait_sim.workloads.spec import build_workload

    return build_workload(workload_options(**keywords), load_profile(profile), gpus=gpus,
                          max_batch=max_batch)


def _policy_object(policy: PolicyLike, params: Mapping[str, Any] | None) -> Policy:
    if isinstance(policy, Policy):
        if params:
            raise UserError("params apply to a policy given by name; this policy object "
                            "is already built")
        return policy
    return make_policy(policy, **dict(params or {}))


def simulate(policy: PolicyLike = "strait", profile: ProfileLike = None,
             workload: Workload | str | None = None, *, params: Mapping[str, Any] | None = None,
             seed: int = 0, gpus: int = 1, slots: int = 2, max_batch: int = 8,
             interference: bool = True, pcie: bool = True, timeline: bool = False,
             progress: Callable[[int, float], None] | None = None,
             out: str | Path | None = None, overwrite: bool = False, nodes: int = 1,
             router: str = "least-loaded", allow_large: bool = False,
             **workload_keywords: Any) -> RunResult:
    """Simulate one workload under one policy: ``strait-sim run`` from Python.

    ``policy`` and ``profile`` are names or objects; the workload is an object or the
    CLI's workload keywords (``load=0.9, duration=60``; none given: the CLI's defaults;
    ``workload="mmpp"`` is the ``--workload`` flag, as in :func:`compare`).
    The result has ``.requests`` (the requests.parquet columns), ``.summary`` (the
    summary.json dict), ``.write(folder)`` and, with ``timeline=True``, ``.timeline``
    (``.timeline.write("t.json")`` for Perfetto). With ``out`` the results stream into
    that folder while the run goes on (``--out``; memory holds only requests in flight).
    ``out`` and ``.write(folder)`` follow ``--out``'s rule: a folder holding an earlier run
    result is replaced only with ``overwrite=True`` (``--overwrite``), one of the user's
    files never.
    ``nodes`` above 1 simulates a cluster of ``nodes`` x ``gpus`` GPUs behind ``router``
    (docs/architecture.md, "Clusters"). A run above the work limit (work_limit.py: 20M
    requests, or more memory than is free) is refused before it starts, as the CLI refuses
    it, unless ``allow_large``.

    >>> r = simulate(policy="priority", profile="synthetic-tiny", rate=40, duration=1)
    >>> r.summary["policy"], int(r.summary["overall"]["count"]) == len(r.requests)
    ('priority', True)
    """
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation

    _check_system(seed=seed, gpus=gpus, slots=slots, max_batch=max_batch, nodes=nodes,
                  interference=interference, pcie=pcie, timeline=timeline)
    if out is not None:  # before any work, as run --out is checked
        from strait_sim.output_folder import check_output_folder

        check_output_folder(out, "run", overwrite=overwrite, flag="", option="overwrite=True")
    if isinstance(workload, str):  # the --workload flag's kind, not an object
        workload_keywords["workload"] = workload
        workload = None
    bundle = load_profile(profile)
    pol = _policy_object(policy, params)
    pol.check_system(slots=slots)
    if workload is not None and workload_keywords:
        raise UserError("give the workload as an object or as keywords, not both "
                        f"(got {', '.join(sorted(workload_keywords))})")
    if workload is None:
        workload = describe_workload(bundle, gpus=gpus * nodes, max_batch=max_batch,
                                     **workload_keywords)
    if router not in _router_names():
        from strait_sim.errors import UnknownNameError

        raise UnknownNameError("router", router, _router_names())
    from strait_sim.work_limit import check_work, expected_requests

    check_work(expected_requests(workload), allow_large=allow_large)
    config = SimConfig(gpus=gpus, slots=slots, max_batch=max_batch, seed=seed,
                       interference=interference, pcie=pcie, record_timeline=timeline,
                       nodes=nodes, router=router)
    return run_simulation(bundle, workload, pol, config, progress=progress, out=out)


def _check_system(**values: Any) -> None:
    """The system keywords' types and ranges, in one line naming the keyword, before any
    work: the CLI's flags arrive typed and checked, a script's values do not (``gpus=2.0``
    or ``seed=-1`` would otherwise fail deep in the driver or numpy)."""
    from strait_sim.sweep.spec import SYSTEM_TYPES, check_system_values, check_value

    types = {**SYSTEM_TYPES, "nodes": int, "timeline": bool}
    for key, value in values.items():
        if value is None:
            raise UserError(f"{key}: expected {types[key].__name__}, got None")
        check_value(value, (types[key],), key)
    check_system_values(values)


def _router_names() -> list[str]:
    from strait_sim.policies.routing import ROUTERS

    return sorted(ROUTERS)


def load_run(folder: str | Path) -> RunResult:
    """A run folder written by ``--out`` or ``RunResult.write`` (simulated or live)."""
    return load_results(folder)


@dataclass
class Comparison:
    """Several policies on identical workloads (``strait-sim compare`` from Python).

    ``runs``: one row per (load, policy, seed) run; ``table``: mean and 95% CI per
    (load, policy); ``reference_table``: the reference policy against each other one,
    paired over seeds, in percentage points (see :mod:`strait_sim.cli.compare_report`
    for what each sign means). ``summaries`` and ``folders`` follow ``runs``' rows.
    """

    policies: list[str]
    reference: str
    loads: list[float | None]
    runs: pd.DataFrame
    table: pd.DataFrame
    reference_table: pd.DataFrame
    summaries: list[dict] = field(repr=False, default_factory=list)
    folders: list[Path | None] = field(repr=False, default_factory=list)
    keys: list[tuple] = field(repr=False, default_factory=list)
    swept: bool = False
    out: Path | None = None  # where the tables, plots and runs were written
    written: list[str] = field(repr=False, default_factory=list)


def parse_policy_params(items: Sequence[str], policies: Sequence[str]) -> dict[str, dict]:
    """``POLICY.NAME=VALUE`` items into {policy: {name: value}}; a plain ``NAME=VALUE``
    is accepted when exactly one policy runs (the CLI's ``--param``)."""
    from strait_sim.cli.compare_cmd import parse_params

    if len(policies) == 1:
        items = [p if "." in p.partition("=")[0] else f"{policies[0]}.{p}" for p in items]
    return parse_params(list(items), list(policies))


def compare(policies: Sequence[str] | str, profile: str | Path | None = None, *,
            loads: Sequence[float] | str | float | None = None, seeds: int = 3, seed: int = 0,
            params: Mapping[str, Mapping[str, Any]] | None = None,
            reference: str | None = None, gpus: int = 1, slots: int = 2,
            max_batch: int = 8, interference: bool = True, pcie: bool = True,
            out: str | Path | None = None, workers: int = 1, rerun: bool = False,
            progress: bool = False, command: str | None = None, allow_large: bool = False,
            **workload_keywords: Any) -> Comparison:
    """Compare policies on identical workloads over seeds (and loads).

    ``policies`` is a list of names or the flag's text (``"fifo,strait"``); ``loads`` a
    list of numbers, one number or text (``"0.5,0.9"``). ``params`` maps a policy name to
    its parameters (``{"strait": {"hp_risk": 0.02}}``).
    With ``out`` every run's folder is kept and reused by a later identical call unless
    ``rerun``, and the tables (CSV, Markdown) and plots are written there, as
    ``strait-sim compare --out`` writes them (``report(out)`` makes the HTML page).
    Workload keywords are the CLI's (``rate=30, duration=5``). A run above the work limit
    fails, with the limit's message, unless ``allow_large``.

    >>> c = compare(["fifo", "priority"], "synthetic-tiny", seeds=2, rate=40, duration=1)
    >>> list(c.table["policy"])
    ['fifo', 'priority']
    """
    from strait_sim.cli import compare_report as rep
    from strait_sim.policies.registry import policy_class
    from strait_sim.sweep.executors import run_points
    from strait_sim.sweep.spec import resolve_spec

    if isinstance(policies, str):
        policies = policies.split(",")  # the --policies flag's text
    if isinstance(policies, Iterable):
        policies = list(policies)
    if not isinstance(policies, list) or not all(isinstance(n, str) for n in policies):
        raise UserError(f"policies must be names (a list, or text like 'fifo,strait'), got "
                        f"{policies!r}")
    names = list(dict.fromkeys(n.strip() for n in policies if n.strip()))
    if not names:
        raise UserError("--policies needs at least one policy")
    for name in names:
        policy_class(name)  # unknown -> one line listing the valid ones
    per_policy: dict[str, dict] = {n: {} for n in names}
    for name, values in (params or {}).items():
        if name not in per_policy:
            raise UserError(f"--param: policy '{name}' is not in --policies "
                            f"({', '.join(names)})")
        per_policy[name] = dict(values)
    _check_system(seed=seed, gpus=gpus, slots=slots, max_batch=max_batch,
                  interference=interference, pcie=pcie)
    for name in names:  # bad parameter (or one --slots cannot honour): one line, before any run
        make_policy(name, **per_policy[name]).check_system(slots=slots)
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise UserError(f"--seeds must be a whole number of at least 1, got {seeds!r}")
    ref = reference or ("strait" if "strait" in names else names[0])
    if ref not in names:
        raise UserError(f"--reference '{ref}' is not in --policies ({', '.join(names)})")
    wl = {k: _flag_text(k, v) for k, v in workload_keywords.items() if v is not None}
    load_list: list[float | None] = [None]
    if loads is not None:
        if "rate" in wl or "load" in wl:
            raise UserError("--loads sets the load of each run: drop --rate/--load")
        load_list = _load_values(loads)
    specs, keys = [], []
    for load in load_list:
        for s in range(seed, seed + seeds):
            for name in names:
                workload = dict(wl)
                if load is not None:
                    workload["load"] = load
                specs.append(resolve_spec({
                    "policy": name, "policy_params": per_policy[name],
                    "profile": None if profile is None else str(profile),
                    "workload": workload, "gpus": gpus, "slots": slots,
                    "max_batch": max_batch, "seed": s, "interference": interference,
                    "pcie": pcie}, where="compare"))
                keys.append((load if load is not None else wl.get("load"), name, s))
    if out is not None:
        from strait_sim.output_folder import check_output_folder, open_resumable_folder

        check_output_folder(out, "compare", resume=True)
        open_resumable_folder(out, "compare")
    outcomes = run_points(specs, workers=workers,
                          out_dir=None if out is None else Path(out), force=rerun,
                          progress=progress, keep_requests=out is not None,
                          allow_large=allow_large)
    failed = [(k, o) for k, o in zip(keys, outcomes, strict=True) if not o.ok]
    if failed:
        (load, name, s), o = failed[0]
        first = (o.error or "no summary").strip().splitlines()[-1]
        raise UserError(f"{len(failed)} of {len(specs)} run(s) failed; first: policy "
                        f"{name}, seed {s}" + (f", load {load}" if load else "") +
                        f": {first}")
    records = [(*k, o.summary) for k, o in zip(keys, outcomes, strict=True)]
    runs = rep.runs_frame(records)
    labels = load_list if loads is not None else [wl.get("load")]
    result = Comparison(policies=names, reference=ref, loads=labels, runs=runs,
                        table=rep.comparison_table(runs, names),
                        reference_table=rep.reference_table(runs, ref, names),
                        summaries=[o.summary for o in outcomes],
                        folders=[o.folder for o in outcomes], keys=keys,
                        swept=loads is not None,
                        out=None if out is None else Path(out))
    if out is not None:
        result.written = rep.write_comparison(Path(out), result, command or _python_call(
            "compare", policies=names, profile=profile, loads=loads, seeds=seeds, seed=seed,
            **workload_keywords))
    return result


def _load_values(loads: Sequence[float] | str | float) -> list[float]:
    """``loads`` as numbers: a list, one number, or the --loads flag's text ('0.5,0.9'),
    checked as the flag is (each a finite number > 0)."""
    from strait_sim.cli.compare_cmd import parse_loads

    if isinstance(loads, str):
        return parse_loads(loads)
    items = [loads] if isinstance(loads, int | float) else list(loads)
    return parse_loads(",".join(repr(x) if isinstance(x, float) else str(x) for x in items))


def validate(policy: str = "strait", device: str | int = "cpu", *, out: str | Path,
             profile: str | Path | None = None, params: Mapping[str, Any] | None = None,
             seed: int = 0, slots: int = 2, max_batch: int = 8, interference: bool = True,
             pcie: bool = True, margin: float = 0.10, alpha: float = 0.05,
             force: bool = False, busy_threshold: float | None = None, quiet: bool = True,
             command: str | None = None, allow_model_mismatch: bool = False,
             allow_large: bool = False, overwrite: bool = False,
             **workload_keywords: Any) -> dict:
    """Run a workload live on ``device`` ("cpu" or a CUDA index) and in simulation, write
    the comparison into ``out`` and return the report dict (``strait-sim validate``).

    Needs the device to be idle (``force=True`` starts anyway) and takes as long as the
    workload's duration; the CLI's ``validate --live`` calls this. Refuses a profile that
    timed other definitions of the models than the zoo's (architecture fingerprints)
    unless ``allow_model_mismatch``. ``out`` follows ``validate --out``'s rule, checked
    before the device is touched (a refusal after minutes of live run wastes them): a new
    or empty folder, or one holding an earlier validation only with ``overwrite=True``;
    a folder holding files strait-sim did not write never.
    """
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.experiment import run_simulation
    from strait_sim.live.report import write_validation
    from strait_sim.live.runner import LiveOptions, run_live

    out = Path(out)
    if not 0 < margin < 1:
        raise UserError(f"--margin must be between 0 and 1, got {margin}")
    if not 0 < alpha < 0.5:
        raise UserError(f"--alpha must be between 0 and 0.5, got {alpha}")
    cpu = device == "cpu"
    if not cpu and not (isinstance(device, int) and not isinstance(device, bool)):
        raise UserError(f"device must be 'cpu' or a CUDA device index, got {device!r}")
    gpu = None if cpu else int(device)
    from strait_sim.output_folder import check_output_folder

    check_output_folder(out, "validation", overwrite=overwrite, flag="", option="overwrite=True")
    live_kind = "cpu" if cpu else "cuda"
    if live_kind == "cuda":
        from strait_sim.profiler.backends import check_gpu

        check_gpu(int(gpu or 0))  # no GPU: say so first, before looking for its profile
    bundle = load_profile(profile if profile is not None else default_device_profile(
        live_kind))
    if bundle.device_kind != live_kind:
        raise UserError(f"profile '{bundle.name}' describes a {bundle.device_kind} device; "
                        f"validating a {live_kind} run needs a profile of the same device")
    config = SimConfig(gpus=1, slots=slots, max_batch=max_batch, seed=seed,
                       interference=interference, pcie=pcie)
    workload = describe_workload(bundle, gpus=1, max_batch=max_batch, **workload_keywords)
    from strait_sim.work_limit import check_work, expected_requests

    check_work(expected_requests(workload), allow_large=allow_large)  # see work_limit.py
    # a bad policy (or one --slots cannot honour) fails before the device
    make_policy(policy, **dict(params or {})).check_system(slots=slots)
    from strait_sim.profiler.model_fingerprint import check_live_models

    for problem in check_live_models(bundle, workload.models, allow=allow_model_mismatch):
        import sys

        print(f"validate: warning: {problem}", file=sys.stderr)
    live_result = run_live(bundle, workload, make_policy(policy, **dict(params or {})),
                           config, LiveOptions(gpu=gpu, cpu=cpu, force=force, quiet=quiet,
                                               busy_threshold=busy_threshold))
    if not quiet:
        import sys

        print("validate: simulating the same workload on the profile", file=sys.stderr)
    sim_result = run_simulation(bundle, workload, make_policy(policy, **dict(params or {})),
                                config)
    return write_validation(out, live_result, sim_result, margin=margin, alpha=alpha,
                            command=command or _python_call("validate", policy=policy,
                                                            device=device, seed=seed))


def default_device_profile(kind: str) -> str:
    """The preferred bundled, measured profile of a device of ``kind`` (cpu | cuda)."""
    from strait_sim.profile_registry import DEFAULT_PREFERENCE, bundled_profiles

    entries = [e for e in bundled_profiles() if e.kind == kind and not e.synthetic]
    entries.sort(key=lambda e: (DEFAULT_PREFERENCE.index(e.name)
                                if e.name in DEFAULT_PREFERENCE else len(DEFAULT_PREFERENCE),
                                e.name))
    if not entries:
        raise UserError(f"no bundled profile of a {kind} device: profile this device first "
                        f"(`strait-sim profile`) and pass --profile DIR")
    return entries[0].name


def _python_call(verb: str, **kwargs: Any) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"strait_sim.{verb}({args})"


def report(folder: str | Path, out: str | Path | None = None) -> Path:
    """One self-contained HTML file for a run, a comparison, a validation or a study folder
    (``strait-sim report DIR``); written to ``out`` (default ``DIR/report.html``), which
    must be new or a page the tool wrote (a file of the user's is never replaced)."""
    from strait_sim.html_report import write_html_report
    from strait_sim.output_folder import check_report_target

    check_report_target(Path(folder), None if out is None else Path(out), overwrite=True)
    return write_html_report(Path(folder), None if out is None else Path(out))
