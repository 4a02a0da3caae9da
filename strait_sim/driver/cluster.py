"""A cluster: nodes of GPUs, one router in front, one policy per node.

``--nodes N --gpus G`` builds N node drivers (:class:`~strait_sim.driver.driver.Driver`),
each with its own policy instance, its own view of its G GPUs (numbered 0..G-1 as on a
single node) and its own device (GPUs with their own PCIe links: a node's host links are
its own), all on one clock and writing one set of per-request records (``gpu`` in the
results is the run-wide number, ``node * G + local``). A router
(:mod:`strait_sim.policies.routing`) sends each arrival to a node when it arrives;
requests do not migrate between nodes. Nothing models the network between the front end
and the nodes (a request reaches its node when it arrives).

Per-request cost does not grow with the cluster: each node's policy and device see only
the node's G GPUs, so their scans stay O(G); the router is O(1) (round-robin, two-choices)
or O(N) (least-loaded).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from strait_sim.driver.arrivals import Arrivals
from strait_sim.driver.config import SimConfig
from strait_sim.driver.driver import (
    Driver,
    RunOutcome,
    check_policy_empty,
    check_states_ended,
    open_workload,
)
from strait_sim.driver.states import PolicyError, RequestStates
from strait_sim.engine.records import RequestRecords
from strait_sim.engine.timeline import Timeline
from strait_sim.policies.base import Policy
from strait_sim.policies.routing import Router, RouterContext
from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import Request
from strait_sim.workloads.base import Workload


class ClusterDriver:
    """N node drivers behind a router, on one clock."""

    def __init__(self, clock, devices: list, profile: ProfileBundle, workload: Workload,
                 policy: Policy, router: Router, config: SimConfig, *, mode: str = "sim",
                 progress: Callable[[int, float], None] | None = None) -> None:
        self.clock = clock
        self.profile = profile
        self.workload = workload
        self.router = router
        self.config = config
        self.progress = progress
        self.models = tuple(workload.models)
        self.records = RequestRecords()
        self.states = RequestStates()
        self.arrivals = Arrivals(self.records, self.models, config.max_batch, self._route)
        self.timeline = Timeline() if config.record_timeline else None
        # each node gets its own copy of the (unbound) policy object
        self.nodes = [Driver(clock, devices[k], profile, workload,
                             policy if k == 0 else copy.deepcopy(policy), config, mode=mode,
                             cluster=self, node=k) for k in range(config.nodes)]
        self.routed = [0] * config.nodes
        self.loads = [0] * config.nodes  # routed and not ended, per node (kept by the nodes)
        self.policy = policy

    # -- what the router sees --------------------------------------------------------------
    def load(self, node: int) -> int:
        return self.loads[node]

    def free_slots(self, node: int) -> int:
        return len(self.nodes[node].free)

    def _route(self, req: Request) -> None:
        k = self.router.route(req, self)
        if not (isinstance(k, int) and 0 <= k < self.config.nodes):
            raise PolicyError(f"router {self.router.name}: request {req.id} routed to node "
                              f"{k!r} (rule: a node index below {self.config.nodes})")
        self.routed[k] += 1
        self.loads[k] += 1
        self.nodes[k]._deliver(req)
        if self.progress is not None and req.id % 8192 == 0:
            self.progress(self.ended, self.clock._now)

    @property
    def ended(self) -> int:
        return sum(n.ended for n in self.nodes)

    # -- the run ---------------------------------------------------------------------------
    def run(self) -> RunOutcome:
        cfg = self.config
        self.router.bind(RouterContext(nodes=cfg.nodes, gpus_per_node=cfg.gpus,
                                       slots_per_gpu=cfg.slots, models=self.models,
                                       seed=cfg.seed))
        for node in self.nodes:
            node.policy.bind(node.context())
        session = open_workload(self.workload, self.profile, cfg.seed, self.arrivals)
        for node in self.nodes:
            node.session = session
        self.clock.run_driver(self.arrivals)
        for node in self.nodes:
            check_policy_empty(node.policy, f" on node {node.node}")
        check_states_ended(self.states, self.records.count)
        return RunOutcome(
            records=self.records, models=self.models, end_s=self.clock._now,
            busy_s=[b for node in self.nodes for b in node.device.busy_s()],
            batches=sum(n.next_batch for n in self.nodes),
            preemptions=sum(n.preemptions for n in self.nodes),
            lost_work_s=sum(n.lost_work_s for n in self.nodes), timeline=self.timeline,
            extra={"nodes": cfg.nodes, "router": self.router.name,
                   "requests_per_node": list(self.routed)})
