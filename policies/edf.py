"""``edf``: earliest deadline first, blind to priority.

Stands for deadline-aware serving without classes (Clipper/Nexus-style ordering without
their admission control). The request with the earliest deadline picks the next batch's
model; the batch is filled by that model's earliest deadlines.
"""

from strait_sim.policies.simple import QueuePolicy


class EdfPolicy(QueuePolicy):
    name = "edf"
    summary = "earliest deadline first across classes; batches by deadline"
    order = "deadline"
    by_class = False
