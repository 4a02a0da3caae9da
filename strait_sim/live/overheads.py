"""The live executor's own costs, measured and reported rather than hidden.

Each quantity is a list of samples (live runs are short: thousands of events, not
millions) summarised as count, mean, p50, p90, p99 and max, in milliseconds:

- ``dispatch_delay_ms``: from the executor applying the policy's Dispatch (the request's
  ``start_s``) to the backend job's measured start of the host-to-device copy;
- ``release_lag_ms``: from a request's nominal arrival time to the moment the executor
  handed it to the policy;
- ``completion_lag_ms``: from a batch's measured end of device-to-host copy to the moment
  the executor told the policy;
- ``timer_lag_ms``: from a WakeAt's time to the policy's ``on_timer`` call;
- ``policy_ms``: time inside the policy's hooks, per hook;
- ``event_ms``: the executor's whole handling of one event (policy, checks, submits).
"""

from __future__ import annotations

import heapq
import time
from collections import defaultdict

import numpy as np

from strait_sim.policies.base import WakeAt


def distribution(samples: list[float]) -> dict:
    if not samples:
        return {"count": 0}
    a = np.asarray(samples, dtype=float)
    return {"count": int(a.size), "mean": float(a.mean()),
            "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90)),
            "p99": float(np.percentile(a, 99)), "max": float(a.max())}


class Overheads:
    """Collects the executor's timing samples (all in milliseconds)."""

    def __init__(self) -> None:
        self.dispatch_delay_ms: list[float] = []
        self.release_lag_ms: list[float] = []
        self.completion_lag_ms: list[float] = []
        self.timer_lag_ms: list[float] = []
        self.policy_ms: dict[str, list[float]] = defaultdict(list)
        self.event_ms: list[float] = []

    def to_dict(self, wall_s: float) -> dict:
        handling_s = sum(self.event_ms) / 1e3
        policy_s = sum(sum(v) for v in self.policy_ms.values()) / 1e3
        return {
            "dispatch_delay_ms": distribution(self.dispatch_delay_ms),
            "release_lag_ms": distribution(self.release_lag_ms),
            "completion_lag_ms": distribution(self.completion_lag_ms),
            "timer_lag_ms": distribution(self.timer_lag_ms),
            "policy_ms": {k: distribution(v) for k, v in sorted(self.policy_ms.items())},
            "event_ms": distribution(self.event_ms),
            "executor_busy_fraction": handling_s / wall_s if wall_s > 0 else None,
            "policy_busy_fraction": policy_s / wall_s if wall_s > 0 else None,
        }


class TimedPolicy:
    """A policy wrapped so that each hook's cost and the lags around it are measured.

    Live runs only: the driver calls this object as it would the policy; in simulation
    the policy is called directly, so measuring costs nothing there.
    """

    def __init__(self, policy, clock, stats: Overheads) -> None:
        self._policy = policy
        self._clock = clock
        self._stats = stats
        self._wakes: list[float] = []
        self.name = policy.name

    def __getattr__(self, attr: str):  # bind, waiting, params, ctx, ...
        return getattr(self._policy, attr)

    def _timed(self, hook: str, fn, *args):
        t = time.perf_counter()
        actions = fn(*args)
        self._stats.policy_ms[hook].append((time.perf_counter() - t) * 1e3)
        if actions:
            for a in actions:
                if type(a) is WakeAt:
                    heapq.heappush(self._wakes, a.time_s)
        return actions

    def on_arrival(self, request, view):
        self._stats.release_lag_ms.append((self._clock.wall() - request.arrival_s) * 1e3)
        return self._timed("arrival", self._policy.on_arrival, request, view)

    def on_completion(self, batch, view):
        return self._timed("completion", self._policy.on_completion, batch, view)

    def on_preempted(self, batch, view):
        return self._timed("preempted", self._policy.on_preempted, batch, view)

    def on_timer(self, view):
        now = self._clock.wall()
        due = None
        while self._wakes and self._wakes[0] <= now:
            due = heapq.heappop(self._wakes)
        if due is not None:
            self._stats.timer_lag_ms.append((now - due) * 1e3)
        return self._timed("timer", self._policy.on_timer, view)
