"""Run many point specs: in-process, on a local process pool, or on a Dask cluster.

The executors only differ in *where* :func:`execute_point` runs. It is a module-level
function of plain dicts, so it pickles to spawned processes and Dask workers alike; a point
runs the same code with the same spec anywhere, hence gives the same summary (wall-clock
fields aside, see :data:`TIMING_FIELDS`).

Workers write their point folder themselves (the per-request table can be large and
should not travel back through a pipe or the Dask scheduler); on a multi-machine Dask
cluster the sweep folder must therefore be on a filesystem every worker sees at the same
path. Failures are recorded by the driver, including those that happen outside a worker's
own code (a worker that dies, a task that cannot be sent).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strait_sim.errors import UserError
from strait_sim.sweep import store
from strait_sim.sweep.points import json_summary, point_key, profile_hash, simulate_point
from strait_sim.sweep.progress import point_progress

EXECUTORS = ("local", "dask")
DASK_CONNECT_TIMEOUT = "15s"  # how long to wait for a --scheduler that does not answer
# Summary fields that measure the host, not the simulation: they differ run to run.
TIMING_FIELDS = (("engine", "wall_s"), ("engine", "requests_per_wall_s"))


@dataclass
class PointOutcome:
    """What happened to one spec of a sweep."""

    spec: dict
    key: str
    summary: dict | None = None
    error: str | None = None
    folder: Path | None = None
    skipped: bool = False  # done by an earlier run and reused

    @property
    def ok(self) -> bool:
        return self.error is None and self.summary is not None


def without_timing(summary: dict) -> dict:
    """A copy of ``summary`` without its wall-clock fields, for equality checks."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in summary.items()}
    for section, field in TIMING_FIELDS:
        if isinstance(out.get(section), dict):
            out[section].pop(field, None)
    return out


def execute_point(task: dict) -> dict:
    """Run one point in whatever process this is; never raises for a point's own failure.

    ``task``: spec, key, profile_hash, out_dir (str or None), keep_requests, allow_large.
    """
    spec, key = task["spec"], task["key"]
    try:
        result = simulate_point(spec, expected_profile_hash=task["profile_hash"],
                                allow_large=task.get("allow_large", False))
        summary = json_summary(result.summary)
        folder = None
        if task["out_dir"] is not None:
            folder = store.write_point(Path(task["out_dir"]), key, spec, summary,
                                       result.requests if task["keep_requests"] else None)
        return {"key": key, "summary": summary, "folder": folder, "error": None}
    except Exception as exc:  # a failing point is recorded; the sweep goes on
        return {"key": key, "summary": None, "folder": None, **_error_fields(exc)}


def _error_fields(exc: BaseException) -> dict:
    message = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
    return {"error": message.splitlines()[0] if message else type(exc).__name__,
            "error_type": type(exc).__name__,
            "traceback": "".join(traceback.format_exception(exc))}


def check_run_options(workers: int, executor: str = "local",
                      scheduler: str | None = None) -> None:
    """The executor flags, checked before anything is written."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor '{executor}'; valid: {', '.join(EXECUTORS)}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    if scheduler is not None and executor != "dask":
        raise UserError("--scheduler needs --executor dask")
    if scheduler is not None:
        check_scheduler_address(scheduler)


#: the address schemes of Dask's network comms (``inproc`` is in-process only)
DASK_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def check_scheduler_address(address: str) -> None:
    """``[SCHEME://]HOST:PORT`` with a Dask scheme and a port in 1..65535, else one line.

    Why here and not left to Dask: ``Client('garbage')`` raises a bare ``ValueError``
    (missing port number) only once the sweep folder exists; checked with the other
    flags, a typo costs nothing and leaves nothing behind.
    """
    from urllib.parse import urlsplit

    scheme, sep, _rest = address.partition("://")
    if not sep:
        scheme = "tcp"  # Dask's default
    hint = "expected tcp://HOST:PORT, e.g. tcp://127.0.0.1:8786"
    if scheme not in DASK_SCHEMES:
        raise UserError(f"--scheduler '{address}': unknown scheme '{scheme}' "
                        f"(valid: {', '.join(DASK_SCHEMES)}); {hint}")
    try:
        parts = urlsplit(address if sep else f"tcp://{address}")
        port = parts.port
    except ValueError as exc:  # '[::1' (unclosed bracket), a port that is not a number...
        raise UserError(f"--scheduler '{address}': {exc}; {hint}") from None
    if not parts.hostname or port is None or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise UserError(f"--scheduler '{address}': needs a host and a port; {hint}")
    if not 1 <= port <= 65535:
        raise UserError(f"--scheduler '{address}': port must be in 1..65535; {hint}")


def run_points(specs: list[dict], *, workers: int = 1, executor: str = "local",
               scheduler: str | None = None, out_dir: Path | None = None,
               force: bool = False, progress: bool = True, keep_requests: bool = True,
               allow_large: bool = False) -> list[PointOutcome]:
    """Run every spec once (identical specs share a run); outcomes in the order of specs.

    With ``out_dir``, points already done there are skipped unless ``force``; each finished
    point has its folder ``out_dir/points/<key>/`` and each failed one an error file. A
    point above the work limit fails with the limit's message unless ``allow_large``.
    """
    check_run_options(workers, executor, scheduler)
    from strait_sim import __version__

    hashes: dict[str, str] = {}
    keys = []
    for spec in specs:
        if spec["profile"] not in hashes:
            hashes[spec["profile"]] = profile_hash(spec["profile"])
        keys.append(point_key(spec, hashes[spec["profile"]], __version__))
    out = Path(out_dir).resolve() if out_dir is not None else None

    by_key: dict[str, PointOutcome] = {}
    tasks: list[dict] = []
    for spec, key in zip(specs, keys, strict=True):
        if key in by_key:
            continue
        if out is not None and not force and store.is_done(out, key):
            by_key[key] = PointOutcome(spec, key, summary=store.read_summary(out, key),
                                       folder=store.point_dir(out, key), skipped=True)
            continue
        by_key[key] = PointOutcome(spec, key)
        tasks.append({"spec": spec, "key": key, "profile_hash": hashes[spec["profile"]],
                      "out_dir": str(out) if out is not None else None,
                      "keep_requests": keep_requests, "allow_large": allow_large})

    skipped = len(by_key) - len(tasks)
    with point_progress(len(tasks), skipped=skipped, enabled=progress) as advance:
        def record(result: dict) -> None:
            outcome = by_key[result["key"]]
            outcome.summary, outcome.error = result["summary"], result["error"]
            outcome.folder = Path(result["folder"]) if result["folder"] else None
            if outcome.error is not None and out is not None:
                store.write_error(out, outcome.key, outcome.spec, outcome.error,
                                  result.get("error_type", "Error"),
                                  result.get("traceback", ""))
            advance(outcome.error is not None)

        if executor == "dask":
            _run_dask(tasks, workers, scheduler, record)
        elif workers == 1 or len(tasks) <= 1:
            for task in tasks:
                record(execute_point(task))
        else:
            _run_pool(tasks, workers, record)
    return [by_key[k] for k in keys]


def _lost(task: dict, exc: BaseException) -> dict:
    """The result of a point whose worker failed outside the point's own code."""
    return {"key": task["key"], "summary": None, "folder": None, **_error_fields(exc)}


# Native thread pools (BLAS, OpenMP) in each worker would oversubscribe the cores the
# workers already fill; Dask's nanny sets the same variables for its workers.
SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """Set :data:`SINGLE_THREAD_ENV` (where the user has not) while workers are spawned."""
    added = {k: v for k, v in SINGLE_THREAD_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _run_pool(tasks: list[dict], workers: int, record: Callable[[dict], None]) -> None:
    """A spawn-context process pool: workers start clean (no forked state, any OS)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)),
                               mp_context=multiprocessing.get_context("spawn"))
    try:
        with _worker_environment():  # spawned on submit: the children inherit it
            futures = {pool.submit(execute_point, task): task for task in tasks}
        for fut in as_completed(futures):
            try:
                result = fut.result()
            except Exception as exc:  # the worker process died (BrokenProcessPool, ...)
                result = _lost(futures[fut], exc)
            record(result)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _dask_modules() -> Any:
    try:
        import dask.distributed as dd
    except ImportError:
        raise UserError("--executor dask needs Dask: pip install 'strait-sim[dask]'") from None
    return dd


def _run_dask(tasks: list[dict], workers: int, scheduler: str | None,
              record: Callable[[dict], None]) -> None:
    """Submit every point to a Dask cluster (the one at ``scheduler``, or a local one)."""
    import logging

    dd = _dask_modules()
    if not tasks:
        return
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = dd.Client(scheduler, timeout=DASK_CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as exc:
                raise UserError(f"cannot reach the Dask scheduler at {scheduler}: {exc}"
                                ) from None
        else:
            cluster = dd.LocalCluster(n_workers=min(workers, len(tasks)),
                                      threads_per_worker=1, processes=True,
                                      dashboard_address=None, silence_logs=logging.ERROR)
            client = dd.Client(cluster)
        with client:
            futures = client.map(execute_point, tasks, pure=False,
                                 key=[f"strait-point-{t['key']}" for t in tasks])
            owner = {f.key: t for f, t in zip(futures, tasks, strict=True)}
            for fut in _as_completed(dd, futures):
                try:
                    result = fut.result()
                except Exception as exc:  # KilledWorker, a worker that cannot import us...
                    result = _lost(owner[fut.key], exc)
                record(result)
    finally:
        if cluster is not None:
            cluster.close()


def _as_completed(dd: Any, futures: list) -> Iterable:
    return dd.as_completed(futures)
