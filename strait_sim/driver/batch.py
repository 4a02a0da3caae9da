"""A dispatched batch as the driver keeps it, and as policies see it: read only.

One class serves simulation and live runs alike. Policies read its public attributes
(``batch_id``, ``gpu``, ``slot``, ``model``, ``size``, ``requests``, ``priority``,
``dispatch_s``, ``phase``, ``compute_start_s``, ``predicted_ms``) through properties
without setters, so a policy cannot change what the driver believes. What only the
simulated device knows (the sampled solo time, the work left, the current rate) is not
here at all: it lives in the device's own per-batch state
(:class:`strait_sim.devices.fluid.Work`), out of a policy's reach, so that a policy that
would read the future fails in simulation exactly as it would live.

The driver and the devices write the underscore fields directly; nothing else should.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

from strait_sim.requests import Request


def _ro(name: str) -> property:
    return property(attrgetter(name), doc=f"read-only ({name[1:]})")


class Batch:
    """One dispatched batch: requests, slot, phase, observed times."""

    __slots__ = ("_batch_id", "_gpu", "_slot", "_model", "_size", "_requests", "_priority",
                 "_dispatch_s", "_phase", "_compute_start_s", "_compute_end_s", "_finish_s",
                 "_predicted_ms", "_phase_fn", "_credit", "_job", "_submit_s")

    batch_id = _ro("_batch_id")
    gpu = _ro("_gpu")
    slot = _ro("_slot")
    model = _ro("_model")
    size = _ro("_size")
    requests = _ro("_requests")
    priority = _ro("_priority")
    dispatch_s = _ro("_dispatch_s")
    compute_start_s = _ro("_compute_start_s")
    predicted_ms = _ro("_predicted_ms")

    def __init__(self, batch_id: int, gpu: int, slot: int, model: str, size: int,
                 requests: tuple[Request, ...], dispatch_s: float,
                 predicted_ms: float | None) -> None:
        self._batch_id = batch_id
        self._gpu = gpu
        self._slot = slot
        self._model = model
        self._size = size
        self._requests = requests
        self._priority = requests[0].priority if len(requests) == 1 else \
            min(r.priority for r in requests)
        self._dispatch_s = dispatch_s
        self._phase = "h2d"
        self._compute_start_s: float | None = None
        self._compute_end_s: float | None = None
        self._finish_s: float | None = None
        self._predicted_ms = predicted_ms
        # A device that cannot observe phases live sets an estimator here.
        self._phase_fn: Callable[[Batch], str] | None = None
        self._credit = 0.0  # fraction of the solo work kept from an earlier, preempted run
        self._job = None  # live: the backend's job handle
        self._submit_s = dispatch_s

    @property
    def phase(self) -> str:
        """'h2d', 'compute', 'd2h', or 'reset' (a preempted slot being cleared)."""
        fn = self._phase_fn
        return self._phase if fn is None or self._phase in ("reset", "done") else fn(self)

    def __repr__(self) -> str:
        return (f"Batch(id={self._batch_id}, gpu={self._gpu}, slot={self._slot}, "
                f"model={self._model}, size={self._size}, phase={self._phase})")
