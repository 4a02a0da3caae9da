"""``fifo``: first come, first served, blind to priority and deadlines.

Stands for a plain serving queue with dynamic batching and no notion of classes. The
oldest waiting request picks the model of the next batch, which is filled with that
model's oldest requests.
"""

from strait_sim.policies.simple import QueuePolicy


class FifoPolicy(QueuePolicy):
    name = "fifo"
    summary = "first come, first served; batches of the oldest request's model"
    order = "arrival"
    by_class = False
