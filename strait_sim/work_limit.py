"""Bounded work: refuse, before it starts, a run far larger than was likely meant.

``--rate 1e9 --duration 1`` asks for a billion requests; the request count is known up
front (rate x duration, a trace's rows), so instead of a progress bar stuck at 0 while
memory climbs, the command says at once how many requests and how much memory the run
would take, and how to go ahead anyway.

The limit is :data:`DEFAULT_MAX_REQUESTS` requests per run, or the value of the
environment variable :data:`LIMIT_ENV`; a run whose memory estimate exceeds the memory
available on this machine is refused too. ``--allow-large`` lifts both.

The memory estimate is :data:`BYTES_PER_REQUEST` per request on top of
:data:`BASE_BYTES`. Measured with ``/usr/bin/time -f %M strait-sim run -q -p fifo
--rate R --duration 10`` on the shared 2-core VM of this project: peak RSS 365 MB at
200,000 requests and 490 MB at 1,000,000, i.e. about 160 B per request; the estimate
uses 250 B to leave room for policies that keep more state per request.
"""

from __future__ import annotations

import os

from strait_sim.errors import UserError

DEFAULT_MAX_REQUESTS = 20_000_000
LIMIT_ENV = "STRAIT_SIM_MAX_REQUESTS"
OVERRIDE_FLAG = "--allow-large"
BYTES_PER_REQUEST = 250
BASE_BYTES = 400 * 2**20


def request_limit() -> int:
    """The configured per-run request limit (environment variable or default)."""
    raw = os.environ.get(LIMIT_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_REQUESTS
    try:
        value = int(float(raw))
    except ValueError:
        raise UserError(f"{LIMIT_ENV}={raw!r}: expected a whole number of requests") from None
    if value < 1:
        raise UserError(f"{LIMIT_ENV}={raw!r}: must be at least 1")
    return value


def memory_estimate(requests: float, runs_at_once: int = 1) -> float:
    """Bytes a run of ``requests`` requests needs (``runs_at_once`` such runs in parallel)."""
    return runs_at_once * (BASE_BYTES + BYTES_PER_REQUEST * requests)


def available_memory() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is no such file)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _size(n_bytes: float) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes / 2**10:.0f} KiB"


def expected_requests(workload: object) -> float | None:
    """The request count of a workload for the limit: its own estimate, or for a closed
    loop (whose count the system's speed decides) the bound of one request per client per
    think time, plus each client's first."""
    n = workload.expected_count()  # type: ignore[attr-defined]
    if n is not None or not getattr(workload, "closed_loop", False):
        return n
    clients = float(getattr(workload, "clients", 0))
    think_s = float(getattr(workload, "think_s", 0.0))
    duration_s = float(getattr(workload, "duration_s", 0.0))
    bound = clients * (1 + (duration_s / think_s if think_s > 0 else 0))
    cap = getattr(workload, "max_requests", None)
    return min(bound, cap) if cap is not None else bound


def check_work(expected_requests: float | None, *, allow_large: bool = False,
               runs_at_once: int = 1, what: str = "this run", memory: bool = True) -> None:
    """Refuse (one line: the estimate, the limit, the override flag) a run above the limit.

    ``expected_requests`` None (unknown: a closed loop) is not checked.
    """
    if allow_large or expected_requests is None:
        return
    n = float(expected_requests)
    limit = request_limit()
    need = memory_estimate(n, runs_at_once)
    have = available_memory() if memory else None
    too_many = n > limit
    too_big = have is not None and need > have
    if not (too_many or too_big):
        return
    reason = (f"above the limit of {limit:,} requests per run (set {LIMIT_ENV} to change it)"
              if too_many else f"more than the {_size(have or 0)} of memory available")
    size = f" and {_size(need)} of memory" if memory else ""
    raise UserError(f"{what} would take about {n:,.0f} requests{size}, "
                    f"{reason}; lower --rate/--load/--duration or set --max-requests, or "
                    f"add {OVERRIDE_FLAG} to run it anyway")


def allow_large_option() -> bool:
    """The override flag, one definition for every command that checks its work."""
    import typer

    return typer.Option(  # type: ignore[return-value]
        False, OVERRIDE_FLAG,
        help=f"Run even above the work limit ({DEFAULT_MAX_REQUESTS:,} requests per run, "
             f"or ${LIMIT_ENV}; also refused: more memory than is available).")
