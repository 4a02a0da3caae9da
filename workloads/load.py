"""Rates in utilisation terms: ``--load 0.8`` means "80% of the GPUs' solo capacity".

People think of load as how busy the hardware is, not as requests per second. The offered
work of one request is the profile's median solo latency of its model at batch = its items
(``profile.solo_ms(model, items)``): the GPU time it would take alone, unbatched.
Capacity is ``gpus`` x wall time. The rate for a load L is therefore::

    rate = L x gpus / E[work per request]

Batching makes a GPU do more than that: with ``capacity_batch = B`` the work of a request
is instead counted per item at batch B, ``solo_ms(model, B) / B x items``, so that load 1
means "saturated even when every batch is B items".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from strait_sim.profile_bundle import ProfileBundle
from strait_sim.requests import RequestChunk


def check_capacity_batch(capacity_batch: int | None) -> None:
    if capacity_batch is not None and (int(capacity_batch) != capacity_batch
                                       or capacity_batch < 1):
        raise ValueError(f"capacity batch must be a whole number >= 1, got {capacity_batch}")


def work_s(profile: ProfileBundle, model: str, items: int,
           capacity_batch: int | None = None) -> float:
    """GPU seconds one request of ``items`` items of ``model`` offers."""
    if capacity_batch is None:
        return profile.solo_ms(model, items) / 1e3
    return profile.solo_ms(model, capacity_batch) / capacity_batch * items / 1e3


def mean_work_s(profile: ProfileBundle, models: tuple[str, ...], model_probs: np.ndarray,
                items: tuple[int, ...], item_probs: np.ndarray,
                capacity_batch: int | None = None) -> float:
    """Expected work per request when model and items are drawn independently."""
    total = 0.0
    for m, pm in zip(models, model_probs, strict=True):
        for i, pi in zip(items, item_probs, strict=True):
            if pm > 0 and pi > 0:
                total += pm * pi * work_s(profile, m, i, capacity_batch)
    return total


def rate_for_load(load: float, gpus: int, mean_work: float) -> float:
    """Mean rate (requests per second) at which offered work / (gpus x time) = load."""
    if not (math.isfinite(load) and load > 0):
        raise ValueError(f"load must be a finite number > 0, got {load}")
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    if not mean_work > 0:
        raise ValueError("the profile gives zero work per request; cannot set a rate by load")
    return load * gpus / mean_work


def chunk_work_s(profile: ProfileBundle, chunk: RequestChunk,
                 capacity_batch: int | None = None) -> float:
    """Total offered work (GPU seconds) of the requests in ``chunk``."""
    if not len(chunk):
        return 0.0
    key = chunk.model.astype(np.int64) * (1 << 32) + chunk.items.astype(np.int64)
    uniq, counts = np.unique(key, return_counts=True)
    return float(sum(c * work_s(profile, chunk.models[k >> 32], k & 0xFFFFFFFF, capacity_batch)
                     for k, c in zip(uniq.tolist(), counts.tolist(), strict=True)))


def offered_load(profile: ProfileBundle, chunks: Iterable[RequestChunk], gpus: int,
                 duration_s: float, capacity_batch: int | None = None) -> float:
    """Offered utilisation of a request stream: total work / (gpus x duration)."""
    work = sum(chunk_work_s(profile, c, capacity_batch) for c in chunks)
    return work / (gpus * duration_s)
