"""Workloads (installed as ``strait_sim.workloads``): arrivals, priorities, deadlines."""

from strait_sim.workloads.base import ClosedLoopSession, Workload

__all__ = ["ClosedLoopSession", "Workload"]
