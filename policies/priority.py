"""``priority``: strict priority, high class before low, FIFO within a class.

Stands for the simplest priority-aware server: a low-priority batch starts only when no
high-priority request waits, but once started it runs to completion (no preemption) and
shares the GPU with whatever comes next, so it can still delay high-priority work.
"""

from strait_sim.policies.simple import QueuePolicy


class PriorityPolicy(QueuePolicy):
    name = "priority"
    summary = "high before low strictly, FIFO within a class, no preemption"
    order = "arrival"
    by_class = True
