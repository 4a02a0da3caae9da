"""The devices a driver runs batches on.

- :class:`~strait_sim.devices.fluid.FluidDevice`: the truth model (simulation);
- :class:`~strait_sim.devices.backend.BackendDevice`: a profiler backend's streams (live);
- :class:`~strait_sim.devices.truth_backend.TruthBackend`: a deterministic backend whose
  jobs follow the truth model, so the live driver can be checked against the simulation.
"""
