"""Scheduling policies (installed as ``strait_sim.policies``), one module each."""

from strait_sim.policies.base import (
    CompletedBatch,
    CoRun,
    Dispatch,
    Drop,
    Policy,
    PolicyContext,
    Preempt,
    Reject,
    RunningBatch,
    SystemView,
    WakeAt,
)
from strait_sim.policies.registry import describe_policies, make_policy, policy_names

__all__ = [
    "CoRun", "CompletedBatch", "Dispatch", "Drop", "Policy", "PolicyContext", "Preempt",
    "Reject", "RunningBatch", "SystemView", "WakeAt", "describe_policies", "make_policy",
    "policy_names",
]
