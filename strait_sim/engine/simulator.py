"""Simulation: the driver over SimPy's virtual clock and the fluid device.

``simulate`` is the entry point scripts and the CLI use; it assembles
:class:`~strait_sim.driver.driver.Driver`, :class:`~strait_sim.driver.clocks.VirtualClock`
and :class:`~strait_sim.devices.fluid.FluidDevice`. The live counterpart is
:func:`strait_sim.live.runner.run_live`: the same driver over the wall clock and a
backend device.

Determinism: the workload draws from ``seed``; the truth model from an independent
stream derived from ``seed``; SimPy breaks ties by insertion order, arrivals go before
events at the same instant. Same inputs, same seed: the same results, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

from strait_sim.devices.fluid import FluidDevice, make_truth
from strait_sim.driver.clocks import VirtualClock
from strait_sim.driver.cluster import ClusterDriver
from strait_sim.driver.config import SimConfig
from strait_sim.driver.driver import Driver, RunOutcome
from strait_sim.errors import UserError
from strait_sim.policies.base import Policy
from strait_sim.policies.routing import make_router
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.workloads.base import Workload

SimOutcome = RunOutcome  # the name earlier code and scripts use

__all__ = ["SimConfig", "SimOutcome", "make_sim_driver", "simulate"]


def make_sim_driver(profile: ProfileBundle, workload: Workload, policy: Policy,
                    config: SimConfig,
                    progress: Callable[[int, float], None] | None = None
                    ) -> Driver | ClusterDriver:
    """The driver of one simulated run, ready to ``run()`` (a cluster's with
    ``config.nodes`` above 1: one policy copy per node behind ``config.router``)."""
    models = tuple(workload.models)
    for m in models:
        profile.require_model(m)
    if config.interference and config.slots > 1 and not profile.has("pairs"):
        raise UserError(f"profile '{profile.name}' has no pairs.csv, so co-location "
                        f"cannot be modelled: use --slots 1 or --no-interference")
    clock = VirtualClock()
    if config.nodes > 1:
        truth = make_truth(profile, models, config)  # one truth stream for the cluster
        devices = [FluidDevice(clock, profile, models, config, truth)
                   for _ in range(config.nodes)]
        return ClusterDriver(clock, devices, profile, workload, policy,
                             make_router(config.router), config, progress=progress)
    device = FluidDevice(clock, profile, models, config)
    return Driver(clock, device, profile, workload, policy, config, mode="sim",
                  progress=progress)


def simulate(profile: ProfileBundle, workload: Workload, policy: Policy,
             config: SimConfig | None = None,
             progress: Callable[[int, float], None] | None = None) -> RunOutcome:
    """Run ``workload`` through ``policy`` on the GPUs ``profile`` describes."""
    return make_sim_driver(profile, workload, policy, config or SimConfig(), progress).run()
