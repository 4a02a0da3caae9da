"""One grid point: run a resolved spec, and name it by what it depends on.

A point's key is a hash of its resolved spec, the profile bundle's content and the package
version (plus the content of any workload input file, such as a trace). Anything that
could change the result changes the key, so a finished point can be reused safely and a
changed one is never mistaken for done. The profile's *name or path* is deliberately left
out of the key: the same bundle under another path is the same simulation.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

from strait_sim.results import RunResult

KEY_LENGTH = 20  # hex digits of SHA-256 kept in folder names: 80 bits, no collisions


def canonical_json(obj: Any) -> str:
    """One text per value: sorted keys, no spaces, so equal specs hash equally."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      default=str)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, computed once per (path, size, mtime) in a process."""
    stat = Path(path).stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_file_hashes(spec: dict) -> dict[str, str]:
    """Content hashes of the workload's input files (a trace, a workload config file)."""
    from strait_sim.sweep.spec import FILE_OPTIONS, is_path_option

    out = {}
    for name, value in sorted(spec.get("workload", {}).items()):
        if (isinstance(value, str) and (is_path_option(name) or name in FILE_OPTIONS)
                and Path(value).is_file()):
            out[name] = file_sha256(value)
    return out


def point_key(spec: dict, profile_hash: str, version: str) -> str:
    """The hash name of a point (``KEY_LENGTH`` hex digits)."""
    keyed = {k: v for k, v in spec.items() if k != "profile"}
    text = canonical_json({"spec": keyed, "profile_hash": profile_hash, "version": version,
                           "inputs": input_file_hashes(spec)})
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


@functools.lru_cache(maxsize=8)
def _cached_bundle(profile: str, mtime_key: tuple):
    from strait_sim.profile_bundle import load_bundle

    return load_bundle(profile)


def load_profile(profile: str):
    """Load a bundle once per worker process (reused across the points it runs)."""
    from strait_sim.profile_registry import resolve_profile

    path, _ = resolve_profile(profile)
    stamp = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                         for p in Path(path).iterdir() if p.is_file()))
    return _cached_bundle(profile, stamp)


def profile_hash(profile: str) -> str:
    """The content hash of a bundle given by name or path, without parsing its tables."""
    from strait_sim.profile_bundle import hash_bundle_dir
    from strait_sim.profile_registry import resolve_profile

    path, _ = resolve_profile(profile)
    return hash_bundle_dir(Path(path))


def simulate_point(spec: dict, *, expected_profile_hash: str | None = None,
                   allow_large: bool = False) -> RunResult:
    """Build the workload and policy a spec names and simulate them; a point above the
    work limit (work_limit.py) fails at once, as ``run`` refuses it, instead of filling
    the machine's memory (``allow_large`` lifts the limit, as ``--allow-large`` does)."""
    from strait_sim.cli.workload_options import workload_from_options
    from strait_sim.engine.simulator import SimConfig
    from strait_sim.errors import UserError
    from strait_sim.experiment import run_simulation
    from strait_sim.policies.registry import make_policy

    bundle = load_profile(spec["profile"])
    if expected_profile_hash is not None and bundle.content_hash != expected_profile_hash:
        raise UserError(f"profile {spec['profile']} changed while the sweep ran "
                        f"(content hash differs); rerun the sweep")
    config = SimConfig(gpus=spec["gpus"], slots=spec["slots"], max_batch=spec["max_batch"],
                       seed=spec["seed"], interference=spec["interference"],
                       pcie=spec["pcie"])
    workload = workload_from_options(dict(spec["workload"]), bundle, gpus=spec["gpus"],
                                     max_batch=spec["max_batch"])
    from strait_sim.work_limit import check_work, expected_requests

    # in a worker the points already running hold their memory: MemAvailable shows it
    check_work(expected_requests(workload), allow_large=allow_large, what="this point")
    policy = make_policy(spec["policy"], **spec.get("policy_params", {}))
    return run_simulation(bundle, workload, policy, config)


def json_summary(summary: dict) -> dict:
    """The summary exactly as it reads back from summary.json (NaN -> null, plain types)."""
    from strait_sim.results import dumps, nan_to_none

    return json.loads(dumps(nan_to_none(summary)))


def run_point(spec: dict, out: str | Path | None = None, *, keep_requests: bool = True
              ) -> dict:
    """Simulate one resolved spec and return its summary (JSON-normalised).

    With ``out``, the run folder (summary.json, spec.json, requests.parquet unless
    ``keep_requests`` is false) is written there atomically.
    """
    result = simulate_point(spec)
    summary = json_summary(result.summary)
    if out is not None:
        from strait_sim.sweep.store import write_point_folder

        write_point_folder(Path(out), spec, summary,
                           result.requests if keep_requests else None)
    return summary
