"""The rules every driver enforces on a policy, written once for the engine and the
live executor: what makes a dispatch valid, how a served or unserved request is recorded,
and the end-of-run check that every request ended exactly once.

Breaking a rule is a bug in the policy, not a user error: it raises :class:`PolicyError`
(with a traceback), never a one-line :class:`~strait_sim.errors.UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from strait_sim.engine.records import CHUNK_BITS, MASK, RequestRecords
from strait_sim.policies.base import Dispatch, Drop, Policy, Preempt, Reject, WakeAt
from strait_sim.requests import DROPPED, PENDING, REJECTED, Request


class PolicyError(RuntimeError):
    """A policy asked for something impossible (a bug in the policy, not user input)."""


class ActionRouter:
    """Mixin for a driver: apply a policy's actions in order, each to its handler.

    The driver provides ``policy`` and the handlers ``_dispatch(action)``,
    ``_end_unserved(requests, status)``, ``_wake_at(time_s)`` and ``_preempt(action)``.
    """

    policy: Policy

    def _apply(self, actions: Sequence) -> None:
        for a in actions:
            kind = type(a)
            if kind is Dispatch:
                self._dispatch(a)
            elif kind is Drop:
                self._end_unserved(a.requests, DROPPED)
            elif kind is Reject:
                self._end_unserved(a.requests, REJECTED)
            elif kind is WakeAt:
                self._wake_at(a.time_s)
            elif kind is Preempt:
                self._preempt(a)
            else:
                raise PolicyError(f"policy {self.policy.name} returned unknown action {a!r}")


def check_dispatch(policy: Policy, a: Dispatch, *, gpus: int, slots: int, slot_busy: bool,
                   max_batch: int) -> tuple[str, int]:
    """Validate a dispatch; return (model, batch size in items, capped at max_batch).

    A single request with more items than ``max_batch`` is allowed (and runs as a batch
    of ``max_batch``); several requests must fit together.
    """
    gpu, slot, reqs = a.gpu, a.slot, a.requests
    name = policy.name
    if not (0 <= gpu < gpus and 0 <= slot < slots):
        raise PolicyError(f"policy {name} dispatched to ({gpu}, {slot}), which does not exist")
    if slot_busy:
        raise PolicyError(f"policy {name} dispatched to busy slot ({gpu}, {slot})")
    if not reqs:
        raise PolicyError(f"policy {name} dispatched an empty batch")
    model = reqs[0].model
    size = 0
    for r in reqs:
        if r.model != model:
            raise PolicyError(f"policy {name} mixed models in one batch")
        size += r.items
    if size > max_batch and len(reqs) > 1:
        raise PolicyError(f"policy {name} formed a batch of {size} items, above "
                          f"--max-batch {max_batch}")
    return model, min(size, max_batch)


def record_dispatch(records: RequestRecords, policy: Policy, reqs: Sequence[Request], *,
                    now: float, gpu: int, slot: int, size: int,
                    predicted_ms: float | None) -> None:
    """Mark requests as started in a batch; each must not have ended already."""
    pred = math.nan if predicted_ms is None else predicted_ms
    cols = records.cols
    status, start, gpus, slots = cols["status"], cols["start_s"], cols["gpu"], cols["slot"]
    preds, sizes = cols["predicted_ms"], cols["batch_size"]
    for r in reqs:
        c, i = r.id >> CHUNK_BITS, r.id & MASK
        if status[c][i] != PENDING:
            raise PolicyError(f"policy {policy.name} dispatched request {r.id}, which has "
                              f"already ended")
        start[c][i] = now
        gpus[c][i] = gpu
        slots[c][i] = slot
        preds[c][i] = pred
        sizes[c][i] = size


def record_unserved(records: RequestRecords, policy: Policy, reqs: Sequence[Request], *,
                    status: int, now: float) -> None:
    """End requests that were never served (dropped, rejected): each only once."""
    for r in reqs:
        arr, i = records.column("status", r.id)
        if arr[i] != PENDING:
            raise PolicyError(f"policy {policy.name} ended request {r.id} twice")
        arr[i] = status
        records.set("finish_s", r.id, now)


def check_all_ended(policy: Policy, records: RequestRecords, ended: int) -> None:
    """At the end of a run: the policy holds nothing and every request has ended."""
    waiting = policy.waiting()
    if waiting:
        raise PolicyError(f"policy {policy.name} still holds {waiting} request(s) at the end "
                          f"of the run")
    if ended != records.count:
        raise PolicyError(f"{records.count - ended} request(s) never ended under policy "
                          f"{policy.name}")
