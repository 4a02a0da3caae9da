"""Measurement on real hardware (installed as ``strait_sim.profiler``)."""
