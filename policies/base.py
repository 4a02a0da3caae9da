"""The policy interface: one policy object, one driver, two clocks (simulated and live).

A policy never imports SimPy and never sees the truth model. It is told of arrivals,
completions, preemptions and timers, looks at a read-only :class:`SystemView` of the
device(s), and answers with actions:

- :class:`Dispatch` a batch of same-model requests onto a free (gpu, slot);
- :class:`Drop` requests early (they can no longer meet their deadline: status ``dropped``);
- :class:`Reject` requests (admission control or timeout: status ``rejected``);
- :class:`Preempt` the batch running on a slot (its requests come back through
  :meth:`Policy.on_preempted`; the work it had done is lost);
- :class:`WakeAt` a time, to be called back through :meth:`Policy.on_timer`.

The policy owns its queues. Drivers check at the end of a run that it holds no request
(:meth:`Policy.waiting`), so every request ends exactly once.

Actions and observations are plain slotted dataclasses, not frozen ones: millions are
made per run and frozen construction costs several times more. Treat them as read-only.

``predicted_ms`` on a dispatch is the policy's prediction of the batch's service time,
from dispatch to the end of its device-to-host copy, in milliseconds; results store it per
request so prediction error can be studied in simulation and live alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from strait_sim.requests import Request

if TYPE_CHECKING:
    from strait_sim.profile_bundle import ProfileBundle


# -- actions ------------------------------------------------------------------------------


@dataclass(slots=True)
class Dispatch:
    gpu: int
    slot: int
    requests: tuple[Request, ...]
    predicted_ms: float | None = None


@dataclass(slots=True)
class Drop:
    requests: tuple[Request, ...]
    reason: str = ""


@dataclass(slots=True)
class Reject:
    requests: tuple[Request, ...]
    reason: str = ""


@dataclass(slots=True)
class Preempt:
    """Kill the batch running on (gpu, slot). The slot stays busy ``cost_ms`` (the reset).

    ``restore``: ``"restart"`` loses all the batch's work; ``"kernel"`` keeps the work of
    the kernels that completed and loses only the kernel in flight (REEF's reset), so that
    the same requests, dispatched together again, resume. Simulation only: a live device
    cannot resume a batch and restarts it (docs/policies.md).
    """

    gpu: int
    slot: int
    cost_ms: float = 0.0
    restore: str = "restart"


@dataclass(slots=True)
class WakeAt:
    time_s: float


Action = Dispatch | Drop | Reject | Preempt | WakeAt
NO_ACTIONS: tuple[Action, ...] = ()


# -- what a policy sees -------------------------------------------------------------------


@dataclass(slots=True)
class CoRun:
    """One co-runner a batch's compute phase overlapped with, and for how long."""

    model: str
    size: int
    overlap_ms: float


class RunningBatch(Protocol):
    """A batch on a slot, as the driver exposes it: read-only properties, no truth state
    (implemented by :class:`strait_sim.driver.batch.Batch` under both clocks)."""

    batch_id: int
    gpu: int
    slot: int
    model: str
    size: int  # items in the batch (the profile's batch size)
    requests: tuple[Request, ...]
    priority: int  # the highest class in the batch (HIGH < LOW numerically)
    dispatch_s: float
    phase: str  # "h2d", "compute", "d2h" or "reset" (after a preemption)
    compute_start_s: float | None
    predicted_ms: float | None


@dataclass(slots=True)
class CompletedBatch:
    """What the driver observed of a finished batch: enough for online learners."""

    batch_id: int
    gpu: int
    slot: int
    model: str
    size: int
    requests: tuple[Request, ...]
    dispatch_s: float
    compute_start_s: float
    compute_end_s: float
    finish_s: float
    predicted_ms: float | None
    co_runs: tuple[CoRun, ...] = ()
    failed: bool = False
    error: str | None = None

    @property
    def h2d_ms(self) -> float:
        return (self.compute_start_s - self.dispatch_s) * 1e3

    @property
    def compute_ms(self) -> float:
        return (self.compute_end_s - self.compute_start_s) * 1e3

    @property
    def d2h_ms(self) -> float:
        return (self.finish_s - self.compute_end_s) * 1e3

    @property
    def service_ms(self) -> float:
        return (self.finish_s - self.dispatch_s) * 1e3


class SystemView(Protocol):
    """Read-only state of the device(s): :class:`strait_sim.driver.view.DriverView`,
    the same object in simulation and live runs."""

    n_gpus: int
    slots_per_gpu: int
    max_batch: int

    @property
    def now(self) -> float: ...

    def free_slots(self) -> Sequence[tuple[int, int]]:
        """Idle (gpu, slot) pairs, ordered by gpu then slot: a read-only view of the
        driver's own list (index, iterate, ``len``, ``in``), valid until the next dispatch;
        copy it (``list(...)``) to keep it. Why not a list: a copy per call costs time in
        the number of GPUs, and policies call it at every decision."""
        ...

    def running(self, gpu: int | None = None) -> list[RunningBatch]:
        """Batches on slots (of one gpu, or all), ordered by gpu then slot."""
        ...

    def transfers_in_flight(self, gpu: int, direction: str) -> int:
        """Copies active on this gpu's link in ``direction`` ('h2d' or 'd2h')."""
        ...


@dataclass(frozen=True)
class PolicyContext:
    """Static facts a policy may use: the run's shape and the measured profile.

    ``profile`` is the measurement bundle (for fitting predictors), never the simulator's
    truth model.
    """

    profile: ProfileBundle
    models: tuple[str, ...]
    n_gpus: int
    slots_per_gpu: int
    max_batch: int
    seed: int = 0
    extra: dict = field(default_factory=dict)


# -- the policy base class ------------------------------------------------------------------


class Policy:
    """Base class: subclasses override the ``on_*`` hooks they need.

    Parameters are validated in ``__init__`` (scikit-learn style): a bad value raises
    ``ValueError`` at construction, before any simulation starts.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""

    def check_system(self, *, slots: int) -> None:
        """Refuse parameters the run's system cannot honour, as one ``UserError`` line.

        Why a hook apart from ``__init__``: a parameter may be valid alone but not with the
        run's ``--slots`` (orion's ``hp_slots``), which ``__init__`` does not know. Commands
        call it right after building the policy, before any work or output; ``bind``
        implementations call it too, for policies built and run from Python. The base
        accepts every system.
        """

    def bind(self, ctx: PolicyContext) -> None:
        """Called once by the driver before the first event."""
        self.ctx = ctx

    def on_arrival(self, request: Request, view: SystemView) -> Sequence[Action]:
        raise NotImplementedError

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        return NO_ACTIONS

    def on_timer(self, view: SystemView) -> Sequence[Action]:
        return NO_ACTIONS

    def on_preempted(self, batch: RunningBatch, view: SystemView) -> Sequence[Action]:
        """The batch was killed; its requests are the policy's again. Default: error, since
        a policy that preempts must say what happens to the victims."""
        raise NotImplementedError(f"policy {self.name} preempted but has no on_preempted")

    def waiting(self) -> int:
        """Requests the policy holds (queued, not dispatched, not ended)."""
        raise NotImplementedError

    def params(self) -> dict:
        """Resolved parameters, recorded in the run's summary."""
        return {}

    def stats(self) -> dict[str, int | float]:
        """Counts the policy kept about its own decisions during the run (read once the
        run has ended), recorded in the run's summary as ``policy_stats``, summed over a
        cluster's nodes; nothing is recorded when there are none. They are not parameters,
        so ``params()`` does not carry them."""
        return {}
