"""A deterministic backend whose jobs follow the truth model, and the time that drives it.

Live runs cannot be compared with simulations bit for bit on real hardware, so the claim
"the simulation driver and the live driver are one" is checked here: the live driver
(wall clock, backend device, inbox, phase reports, co-runs from measured intervals) runs
over :class:`TruthBackend`, whose jobs take exactly the time the fluid truth model says,
on a private SimPy environment; :class:`TruthTime` is the "wall clock" of that
environment: waiting runs the truth forward until a job reports or the wait is over.
Same workload, policy and seed: the same per-request records as a simulation
(tests/test_driver_conformance.py).

It is also a way to dry-run a live set-up (streams, policies, reports) without a device.
"""

from __future__ import annotations

import itertools
import queue
from collections.abc import Callable

import simpy

from strait_sim.devices.fluid import FluidDevice
from strait_sim.driver.batch import Batch
from strait_sim.driver.config import SimConfig
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.profiler.backend import Backend, Job, PhaseTiming
from strait_sim.profiler.jobs import FutureJob
from strait_sim.requests import LOW, Request


class TruthBackend(Backend):
    """Jobs computed by the fluid truth model on a private virtual clock."""

    name = "truth"
    kind = "truth"
    reports_phases = True
    can_cancel = True

    def __init__(self, profile: ProfileBundle, models: tuple[str, ...],
                 config: SimConfig) -> None:
        self.env = simpy.Environment()
        self.device = FluidDevice(self.env, profile, tuple(models), config)
        self.device.bind(self)
        self.device.on_phase = self._phase
        self.streams = config.slots
        self.profile = profile
        self._ids = itertools.count()
        self._jobs: dict[int, tuple[FutureJob, Callable | None]] = {}
        self._batches: dict[int, Batch] = {}

    def device_info(self) -> dict:
        return {"name": f"truth model of {self.profile.name}", "kind": "truth"}

    def prepare(self, model: str, batch: int) -> None:
        """Nothing to load: the truth model knows every (model, batch)."""

    def synchronize(self) -> None:
        """Nothing to wait for: jobs advance only while the clock waits."""

    def submit(self, model: str, batch: int, stream: int,
               on_done: Callable[[Job], None] | None = None,
               on_phase: Callable[[Job, str, float], None] | None = None) -> Job:
        job = FutureJob(model, batch, stream, on_done)
        bid = next(self._ids)
        placeholder = (Request(-1, model, LOW, 0.0, 0.0, batch),)
        b = Batch(bid, 0, stream, model, batch, placeholder, self.env.now, None)
        self._jobs[bid] = (job, on_phase)
        self._batches[bid] = b
        self.device.start(b)
        return job

    def cancel(self, job: FutureJob) -> bool:
        for bid, (j, _) in self._jobs.items():
            if j is job:
                self.device.cancel(self._batches[bid], "restart")
                del self._jobs[bid], self._batches[bid]
                return True
        return False

    # -- the fluid device's "driver" callbacks ---------------------------------------------
    def _phase(self, b: Batch, phase: str) -> None:
        job, on_phase = self._jobs[b._batch_id]
        if on_phase is not None:
            on_phase(job, phase, self.env.now)

    def batch_done(self, b: Batch, co_runs: tuple = ()) -> None:
        job, _ = self._jobs.pop(b._batch_id)
        del self._batches[b._batch_id]
        job.set_result(PhaseTiming(b._dispatch_s, b._compute_start_s, b._compute_end_s,
                                   b._finish_s))


class TruthTime:
    """The :class:`~strait_sim.driver.clocks.WallTime` of a :class:`TruthBackend`."""

    def __init__(self, backend: TruthBackend) -> None:
        self.env = backend.env

    def now(self) -> float:
        return self.env.now

    def wait(self, inbox: queue.SimpleQueue, until: float | None) -> object | None:
        env = self.env
        while inbox.empty():
            nxt = env.peek()
            if nxt != float("inf") and (until is None or nxt <= until):
                env.step()
                continue
            if until is None:
                raise RuntimeError("the live driver waits for a job that will never end")
            if until > env.now:
                env.run(until=until)
            return None
        return inbox.get_nowait()
