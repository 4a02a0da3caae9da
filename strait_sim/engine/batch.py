"""A batch in flight in the simulator (what policies see as a RunningBatch)."""

from __future__ import annotations

from strait_sim.requests import Request


class Batch:
    """One dispatched batch: its requests, phase, and fluid-model state."""

    __slots__ = ("batch_id", "gpu", "slot", "model", "model_idx", "size", "requests",
                 "priority", "dispatch_s", "phase", "compute_start_s", "compute_end_s",
                 "predicted_ms", "work_s", "remaining_s", "rate", "co", "tr_left", "tr_done")

    def __init__(self, batch_id: int, gpu: int, slot: int, model: str, model_idx: int,
                 size: int, requests: tuple[Request, ...], dispatch_s: float,
                 predicted_ms: float | None) -> None:
        self.batch_id = batch_id
        self.gpu = gpu
        self.slot = slot
        self.model = model
        self.model_idx = model_idx
        self.size = size
        self.requests = requests
        self.priority = requests[0].priority if len(requests) == 1 else \
            min(r.priority for r in requests)
        self.dispatch_s = dispatch_s
        self.phase = "h2d"
        self.compute_start_s: float | None = None
        self.compute_end_s: float | None = None
        self.predicted_ms = predicted_ms
        self.work_s = 0.0
        self.remaining_s = 0.0
        self.rate = 1.0
        self.co: dict[int, list] = {}  # co-runner batch id -> [model, size, overlap_s]
        self.tr_left = 0.0  # work left in the current copy (see fluid.Link)
        self.tr_done = None

    def __repr__(self) -> str:
        return (f"Batch(id={self.batch_id}, gpu={self.gpu}, slot={self.slot}, "
                f"model={self.model}, size={self.size}, phase={self.phase})")
