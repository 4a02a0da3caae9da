"""The shape rules of a dispatch, written once: what makes a batch well formed.

The request *states* (waiting, in flight, ended) are checked by
:mod:`strait_sim.driver.states`; here are the rules about the batch itself: the slot
exists and is free, the batch is not empty, holds one model, and fits ``--max-batch``.
A request never holds more items than ``--max-batch``: workloads are checked when their
requests are registered (:func:`check_items`), so that a request is always computed with
all its items (see docs/architecture.md, "Requests larger than --max-batch").

Breaking a rule is a bug in the policy, not a user error: it raises
:class:`~strait_sim.driver.states.PolicyError` naming the policy, the action and the rule.
"""

from __future__ import annotations

import numpy as np

from strait_sim.driver.states import PolicyError
from strait_sim.errors import UserError
from strait_sim.policies.base import Dispatch


def check_dispatch(policy_name: str, a: Dispatch, gpus: int, slots: int,
                   slot_busy: bool, max_batch: int) -> tuple[str, int]:
    """Validate a dispatch's shape; return (model, batch size in items)."""
    gpu, slot, reqs = a.gpu, a.slot, a.requests
    if not (0 <= gpu < gpus and 0 <= slot < slots):
        raise PolicyError(f"policy {policy_name}: Dispatch to ({gpu}, {slot}) refused: no such "
                          f"slot (rule: gpu < {gpus}, slot < {slots})")
    if slot_busy:
        raise PolicyError(f"policy {policy_name}: Dispatch to ({gpu}, {slot}) refused: the slot "
                          f"is busy (rule: dispatch only to a free slot)")
    if not reqs:
        raise PolicyError(f"policy {policy_name}: Dispatch of an empty batch refused "
                          f"(rule: a batch holds at least one request)")
    model = reqs[0].model
    size = 0
    for r in reqs:
        if r.model != model:
            raise PolicyError(f"policy {policy_name}: Dispatch of request {r.id} ({r.model}) "
                              f"with {model} refused (rule: one model per batch)")
        size += r.items
    if size > max_batch:
        raise PolicyError(f"policy {policy_name}: Dispatch of {size} items refused "
                          f"(rule: a batch holds at most --max-batch {max_batch} items)")
    return model, size


def check_items(items: np.ndarray, first_id: int, max_batch: int) -> None:
    """Refuse a workload whose requests do not fit one batch, with a one-line error.

    Splitting a request over several batches would need per-part results and a rule for
    when the request ends; no serving system in the papers splits an inference request,
    so the workload is refused instead (docs/architecture.md).
    """
    if len(items) == 0:
        return
    big = np.flatnonzero(items > max_batch)
    if len(big):
        i = int(big[0])
        raise UserError(f"request {first_id + i} has {int(items[i])} items, above --max-batch "
                        f"{max_batch}: a request runs as one batch, so raise --max-batch or "
                        f"lower --items")
