"""The request state machine every action is checked against, at once.

A request is *not arrived*, *waiting* (the policy holds it), *in flight* (in a dispatched
batch) or *ended* (on time, late, dropped, rejected, failed). Legal moves:

    not arrived -> waiting            (its arrival time came)
    waiting     -> in flight          (Dispatch)
    waiting     -> ended              (Drop, Reject)
    in flight   -> waiting            (Preempt: the policy gets it back)
    in flight   -> ended              (served, or failed on the device)

Anything else is a bug in the policy, reported when the action is applied, naming the
request, the action and the rule broken, rather than as a count mismatch at the end.

States are kept in one ``bytearray`` per 2^20 requests: indexing a bytearray is several
times cheaper than a numpy element, and a byte per request is the whole cost.
"""

from __future__ import annotations

from strait_sim.engine.records import CHUNK, CHUNK_BITS, MASK

NOT_ARRIVED = 0
WAITING = 1
IN_FLIGHT = 2
ENDED = 3
STATE_NAMES = ("not arrived yet", "waiting", "in flight", "ended")


class PolicyError(RuntimeError):
    """A policy asked for something impossible (a bug in the policy, not user input)."""


RULES = {
    "Dispatch": (WAITING, "only a waiting request can be dispatched"),
    "Drop": (WAITING, "only a waiting request can be dropped"),
    "Reject": (WAITING, "only a waiting request can be rejected"),
}


class RequestStates:
    """One state byte per request id."""

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        self.chunks: list[bytearray] = []

    def ensure(self, n: int) -> None:
        while len(self.chunks) * CHUNK < n:
            self.chunks.append(bytearray(CHUNK))

    def get(self, rid: int) -> int:
        return self.chunks[rid >> CHUNK_BITS][rid & MASK]

    def set(self, rid: int, state: int) -> None:
        self.chunks[rid >> CHUNK_BITS][rid & MASK] = state

    def move(self, policy_name: str, action: str, requests, new_state: int) -> None:
        """Check that every request may take ``action`` and move it to ``new_state``."""
        need, rule = RULES[action]
        chunks = self.chunks
        for r in requests:
            rid = r.id
            try:
                if rid < 0:
                    raise IndexError
                chunk = chunks[rid >> CHUNK_BITS]
            except (IndexError, TypeError):
                raise PolicyError(f"policy {policy_name}: {action} of request {rid!r} refused: "
                                  f"no such request (rule: {rule})") from None
            i = rid & MASK
            state = chunk[i]
            if state != need:
                raise PolicyError(f"policy {policy_name}: {action} of request {rid} refused: "
                                  f"it is {STATE_NAMES[state]} (rule: {rule})")
            chunk[i] = new_state

    def first_not_ended(self, count: int) -> tuple[int, int] | None:
        """(id, state) of the lowest request id below ``count`` that has not ended."""
        for c, chunk in enumerate(self.chunks):
            base = c * CHUNK
            if base >= count:
                break
            limit = min(CHUNK, count - base)
            view = memoryview(chunk)[:limit]
            if view.tobytes().count(ENDED) != limit:
                for i in range(limit):
                    if chunk[i] != ENDED:
                        return base + i, chunk[i]
        return None
