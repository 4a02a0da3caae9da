"""The run's shape and switches, shared by simulated and live runs."""

from __future__ import annotations

from dataclasses import dataclass

from strait_sim.errors import UserError


@dataclass(frozen=True)
class SimConfig:
    """The system's shape and the run's switches (simulated and live runs alike)."""

    gpus: int = 1  # GPUs per node
    slots: int = 2
    max_batch: int = 8
    seed: int = 0
    interference: bool = True  # co-location slowdowns from pairs.csv (simulation)
    pcie: bool = True  # H2D/D2H copies over the fitted links (simulation)
    record_timeline: bool = False  # keep every phase for --trace-out
    nodes: int = 1  # nodes of ``gpus`` GPUs each; above 1 a router spreads the requests
    router: str = "least-loaded"  # the dispatch tier's policy (policies/routing.py)

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus

    def __post_init__(self) -> None:
        for name in ("gpus", "slots", "max_batch", "nodes"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, "
                                f"got {getattr(self, name)}")
