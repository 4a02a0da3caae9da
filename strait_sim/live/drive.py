"""A live run: the one driver over the wall clock and a backend device.

This module is the thin live-only layer around :class:`~strait_sim.driver.driver.Driver`:
the wall clock with its inbox, the backend device, the measured overheads (the policy is
wrapped in :class:`~strait_sim.live.overheads.TimedPolicy`), and Ctrl-C. Everything a
policy sees and every rule it is held to is the driver's, the same as in simulation.

Ctrl-C (or ``KeyboardInterrupt`` from anywhere in the loop) stops the run: jobs in flight
are waited for up to ``drain_timeout_s`` (a second Ctrl-C abandons them) and recorded;
the policy is not called again; requests released but not finished are marked
``failed`` and counted as ``unfinished``; requests not yet released are not in the
results.
"""

from __future__ import annotations

import signal
import threading

from strait_sim.devices.backend import BackendDevice
from strait_sim.devices.phase_estimates import PhaseEstimates
from strait_sim.driver.clocks import WallClock, WallTime
from strait_sim.driver.config import SimConfig
from strait_sim.driver.driver import Driver, RunOutcome
from strait_sim.errors import UserError
from strait_sim.live.overheads import Overheads, TimedPolicy
from strait_sim.policies.base import Policy
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.profiler.backend import Backend
from strait_sim.workloads.base import Workload


def drive_live(profile: ProfileBundle, workload: Workload, policy: Policy, config: SimConfig,
               backend: Backend, *, drain_timeout_s: float = 30.0, handle_sigint: bool = True,
               time_source: WallTime | None = None, measure: bool = True) -> RunOutcome:
    """Run ``workload`` through ``policy`` on ``backend``; the outcome's ``extra`` holds
    what only a live run has (wall time, overheads, failures, interruption)."""
    if config.gpus != 1:
        raise UserError(f"live mode drives one device: --gpus must be 1, got {config.gpus}")
    streams = getattr(backend, "streams", config.slots)
    if streams < config.slots:
        raise UserError(f"the backend has {streams} stream(s) but --slots is {config.slots}")
    stats = Overheads()
    clock = WallClock(time_source, on_step=stats.event_ms.append if measure else None)
    estimates = PhaseEstimates(profile, config.pcie)
    device = BackendDevice(clock, backend, estimates)
    driven = TimedPolicy(policy, clock, stats) if measure else policy
    driver = Driver(clock, device, profile, workload, driven, config, mode="live")
    # One-off costs before the clock starts, not in the first request's latency: the
    # records' first column chunk and the profile look-ups behind the phase estimates.
    driver.records.ensure(1)
    driver.records.count = 0
    for m in driver.models:
        for size in range(1, config.max_batch + 1):
            estimates.h2d_compute_s(m, size)
    driver.start()
    previous = _install_sigint(clock) if handle_sigint else None
    interrupted = False
    origin = workload.time_origin_s()  # a trace at 1,000 s does not idle 1,000 s first
    clock.start(origin)
    try:
        clock.run_driver(driver.arrivals)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    abandoned = unfinished = 0
    if interrupted:
        driver.active = False
        abandoned = device.drain(drain_timeout_s)
        unfinished = driver.end_unfinished()
    else:
        driver.check_all_ended()
    wall = clock.wall() - origin  # seconds the run took
    stats.dispatch_delay_ms = device.dispatch_delay_ms
    stats.completion_lag_ms = device.completion_lag_ms
    return driver.outcome(
        wall_s=wall, overheads=stats.to_dict(wall), failed_batches=device.failed_batches,
        interrupted=interrupted, unfinished=unfinished, abandoned_jobs=abandoned,
        batch_log=device.batch_log)


def _install_sigint(clock: WallClock):
    """First Ctrl-C: stop the loop (through its inbox); second: stop draining too."""
    if threading.current_thread() is not threading.main_thread():
        return None
    state = {"stopping": False}

    def on_sigint(signum, frame) -> None:
        if state["stopping"]:
            raise KeyboardInterrupt
        state["stopping"] = True
        clock.stop()

    return signal.signal(signal.SIGINT, on_sigint)
