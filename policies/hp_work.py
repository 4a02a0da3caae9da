"""The high-priority work running on one GPU, read from the view only where a decision goes.

``reef`` decides for each free slot with the HP batches already on its GPU. Reading them
for every GPU up front (one walk over every running batch per decision) grew with the
GPUs: on 1,024 GPUs it was most of its cost per request, and of ``orion``'s (issue 15).
A decision usually reaches a slot or two, so the HP work of a GPU is read on its first
visit and kept, with what the decision itself puts there, for the rest of the decision.
(``orion``, which walks past many GPUs busy with HP, keeps its own record of each GPU's
:class:`HpWork` instead.)
"""

from __future__ import annotations

from typing import NamedTuple

from strait_sim.policies.base import SystemView
from strait_sim.requests import HIGH


class HpWork(NamedTuple):
    """An HP batch on a GPU, as a decision sees it."""

    model: str
    size: int


def hp_work_on(view: SystemView, gpu: int, seen: dict[int, list[HpWork]]) -> list[HpWork]:
    """The HP batches running on ``gpu`` (slot order), plus those this decision added to
    the returned list: ``seen`` holds the GPUs this decision visited already."""
    hp = seen.get(gpu)
    if hp is None:
        hp = seen[gpu] = [HpWork(b.model, b.size) for b in view.running(gpu)
                          if b.priority == HIGH]
    return hp
