"""``strait``: priority- and interference-aware scheduling, as we read Strait.

Stands for Strait (Zhao and Georgantas, arXiv 2604.28175). The paper is not available to
us; this is our reading of its abstract (DESIGN.md section 6), and every choice the
abstract leaves open is a constructor parameter (docs/policies.md lists them).

Decisions, each time a slot is free (an arrival, a completion):

1. **Early drop** (``drop_early``): a queued request that could not meet its deadline
   even alone on an idle GPU at batch 1 (H2D + solo compute + D2H) is dropped. Queues are
   EDF heaps per (class, model), so only heads need checking.
2. **HP before LP, EDF within a class**: the class's model whose head deadline is the
   earliest forms the batch.
3. **Latency estimate** of a candidate batch of ``b`` items on GPU ``g``
   (:class:`~strait_sim.policies.occupancy.OccupancyEstimator`): H2D time with the copies
   already in flight on g's link (fair share); compute time replayed over the batch's whole
   expected life, slowed by the batches running on g until their (revised) predicted ends
   and, after each slot frees, by the expected stream of batches that refill it (at once
   when requests are queued, after the learned refill gap and the expected next arrival
   otherwise); plus D2H time. Pair rates come from the interference predictor (``pairs``
   by default: per profiled pair, fitted on the predictors' half of pairs.csv, refined
   online from every co-located completion's observed overlaps). Beliefs about running
   batches are revised whenever their co-runners change. Wait is zero for a batch
   dispatched now; the expected wait of an HP request that would find no free slot enters
   the LP guard (5).
4. **Batch size**: the largest ``b`` (up to the run's max batch and ``max_batch``) whose
   predicted finish, scaled by ``safety`` plus ``margin_ms``, meets the earliest deadline
   in the batch; if even ``b = 1`` cannot, the largest batch (the head is late anyway,
   serve as many as possible).
5. **LP guard**: an LP batch is dispatched (or co-located) only if
   (a, ``hp_guard``) no HP batch running on that GPU that was predicted on time becomes
   predicted late through the slowdown the LP batch causes over their overlap, and
   (b, ``hp_lookahead``) when it would take the last free slot while other batches run,
   an HP request arriving meanwhile would wait until the first slot frees; it misses its
   deadline if it arrives more than its slack before then. With the HP arrival rate
   ``lambda`` (EWMA of gaps), the chance of such an arrival is
   ``1 - exp(-lambda * (t_free - slack))``; above ``hp_risk`` the LP batch is held back.
   Smaller LP batches are tried before giving up, and other models' LP queues (EDF
   order) after that. HP requests never wait behind a held LP batch.
6. **No preemption.** Every dispatch carries ``predicted_ms`` (dispatch to end of D2H).

Every held-back LP batch is reconsidered at the next completion or arrival; the look-ahead
never blocks when nothing else runs, so the queues always drain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from strait_sim.policies.base import (
    NO_ACTIONS,
    Action,
    CompletedBatch,
    Dispatch,
    Drop,
    Policy,
    PolicyContext,
    RunningBatch,
    SystemView,
)
from strait_sim.policies.classqueues import ClassQueues
from strait_sim.policies.estimates import (
    Believed,
    build_predictor,
    check_fraction,
    check_max_batch,
    check_positive,
)
from strait_sim.policies.occupancy import OccupancyEstimator
from strait_sim.requests import HIGH, LOW, Request


class StraitPolicy(Policy):
    """Strait: HP first, EDF, predicted deadlines guard every LP dispatch."""

    name = "strait"
    summary = ("priority- and interference-aware (our reading of Strait): HP first, EDF, "
               "LP only when predicted HP deadlines hold; occupancy-aware estimates, online "
               "per-pair predictor")

    def __init__(self, predictor: str = "pairs", predictor_params: dict | None = None,
                 drop_early: bool = True, safety: float = 1.0, margin_ms: float = 0.0,
                 hp_guard: bool = True, hp_lookahead: bool = True, hp_risk: float = 0.1,
                 max_batch: int | None = None, lp_model_tries: int = 0,
                 rate_alpha: float = 0.05) -> None:
        if not isinstance(predictor, str) or not predictor:
            raise ValueError(f"predictor must be a predictor name, got {predictor!r}")
        if predictor_params is not None and not isinstance(predictor_params, dict):
            raise ValueError("predictor_params must be a mapping of parameter -> value")
        self.predictor = predictor
        self.predictor_params = dict(predictor_params or {})
        self.drop_early = bool(drop_early)
        self.safety = check_positive("safety", safety)
        self.margin_ms = check_positive("margin_ms", margin_ms, allow_zero=True)
        self.hp_guard = bool(hp_guard)
        self.hp_lookahead = bool(hp_lookahead)
        self.hp_risk = check_fraction("hp_risk", hp_risk)
        self.max_batch = check_max_batch(max_batch)
        if int(lp_model_tries) != lp_model_tries or lp_model_tries < 0:
            raise ValueError(f"lp_model_tries must be a whole number >= 0, got "
                             f"{lp_model_tries!r}")
        self.lp_model_tries = int(lp_model_tries)
        self.rate_alpha = check_fraction("rate_alpha", rate_alpha)
        if self.rate_alpha == 0:
            raise ValueError("rate_alpha must be > 0")

    # -- setup -------------------------------------------------------------------------------
    def bind(self, ctx: PolicyContext) -> None:
        super().bind(ctx)
        pred, self.predictor_used = build_predictor(self.predictor, ctx.profile,
                                                    self.predictor_params)
        self.predictor_samples = getattr(pred, "samples_used", "unknown")
        self.est = OccupancyEstimator(ctx, pred, self.max_batch, rate_alpha=self.rate_alpha)
        self.q = ClassQueues(ctx.models, order="deadline")
        self.beliefs: dict[int, Believed] = {}  # first request id of a running batch
        self.by_gpu: list[list[Believed]] = self.est.by_gpu
        est = self.est
        # service time (ms) alone on an idle link, per model and batch size: the fast path
        self._svc0 = {m: [0.0] + [est.solo_service_ms(m, b) for b in range(1, ctx.max_batch + 1)]
                      for m in ctx.models}
        self._hp_gap: float | None = None
        self._last_hp: float | None = None
        self._hp_budget: dict[str, float] = {}
        self._hp_slack_ms: float | None = None
        self.held_back = 0  # free slots the LP guard kept idle (stats(): the summary)
        # (earliest believed end of any running batch,) or None until the look-ahead of
        # the current LP pick needs it: the pick's guard checks (a binary search over
        # sizes, then other models) read one scan of every running batch, not one each
        self._first_end: tuple[float | None] | None = None

    def params(self) -> dict:
        return {"predictor": self.predictor, "predictor_used": self.predictor_used
                if hasattr(self, "predictor_used") else self.predictor,
                "predictor_params": self.predictor_params,
                "predictor_samples": getattr(self, "predictor_samples", None),
                "drop_early": self.drop_early,
                "safety": self.safety, "margin_ms": self.margin_ms, "hp_guard": self.hp_guard,
                "hp_lookahead": self.hp_lookahead, "hp_risk": self.hp_risk,
                "max_batch": self.max_batch, "lp_model_tries": self.lp_model_tries,
                "rate_alpha": self.rate_alpha}

    def stats(self) -> dict[str, int | float]:
        """``held_back``: how often a free slot was left idle because no LP batch passed
        the guard (each refusal counts, a request refused at several events each time):
        how much the guard, and with it ``hp_risk``, cost the LP class."""
        return {"held_back": getattr(self, "held_back", 0)}

    def waiting(self) -> int:
        return len(self.q)

    # -- events ------------------------------------------------------------------------------
    def on_arrival(self, request: Request, view: SystemView) -> Sequence[Action]:
        self.q.push(request)
        self.est.note_arrival(request.arrival_s)
        if request.priority == HIGH:
            self._note_hp(request)
        free = view.free_slots()
        return self._schedule(view, free) if free else NO_ACTIONS

    def on_completion(self, batch: CompletedBatch, view: SystemView) -> Sequence[Action]:
        est = self.est
        est.observe(batch)
        self._forget(batch.requests[0].id, batch.gpu, batch.slot, view.now)
        if not len(self.q):
            est.settle(view.now, 0)
            return NO_ACTIONS
        free = view.free_slots()
        acts = self._schedule(view, free) if free else NO_ACTIONS
        est.settle(view.now, len(self.q))
        return acts

    def on_timer(self, view: SystemView) -> Sequence[Action]:
        free = view.free_slots()
        return self._schedule(view, free) if free else NO_ACTIONS

    def on_preempted(self, batch: RunningBatch, view: SystemView) -> Sequence[Action]:
        # Strait never preempts; a live driver may still hand work back (device error).
        self._forget(batch.requests[0].id, batch.gpu, batch.slot, view.now)
        for r in batch.requests:
            self.q.push(r)
        acts = self.on_timer(view)
        self.est.settle(view.now, len(self.q))
        return acts

    def _forget(self, key: int, gpu: int, slot: int, now: float) -> None:
        bel = self.beliefs.pop(key, None)
        if bel is not None:
            self.est.release(now, gpu, bel, len(self.q), slot)

    # -- HP arrival statistics (for the look-ahead) --------------------------------------------
    def _note_hp(self, req: Request) -> None:
        if self._last_hp is not None:
            gap = req.arrival_s - self._last_hp
            a = self.rate_alpha
            self._hp_gap = gap if self._hp_gap is None else (1 - a) * self._hp_gap + a * gap
        self._last_hp = req.arrival_s
        budget = req.deadline_s - req.arrival_s
        if self._hp_budget.get(req.model) != budget:
            self._hp_budget[req.model] = budget
            self._hp_slack_ms = None

    def hp_rate(self) -> float:
        """Estimated HP arrivals per second (0 until two HP requests were seen)."""
        return 1.0 / self._hp_gap if self._hp_gap else 0.0

    def hp_slack_ms(self) -> float:
        """How long the tightest HP request could wait for a slot and still be on time."""
        if self._hp_slack_ms is None:
            est = self.est
            self._hp_slack_ms = min(
                (budget * 1e3 - self.safety * est.min_service_ms[m] - self.margin_ms
                 for m, budget in self._hp_budget.items()), default=math.inf)
        return self._hp_slack_ms

    # -- scheduling --------------------------------------------------------------------------
    def _drop_infeasible(self, now: float) -> list[Request]:
        dropped: list[Request] = []
        q = self.q
        min_service = self.est.min_service_ms
        for cls in (HIGH, LOW):
            if not q.counts[cls]:
                continue
            heaps = q.heaps[cls]
            for model in q.models_with_work(cls):  # the models' order, as a walk of all
                heap = heaps[model]
                limit = now + min_service[model] / 1e3
                while heap and heap[0][3].deadline_s < limit:
                    dropped.append(q.pop(cls, model))
        return dropped

    def _schedule(self, view: SystemView, free: list[tuple[int, int]]) -> list[Action]:
        now = view.now
        q = self.q
        counts = q.counts
        actions: list[Action] = []
        if self.drop_early and (counts[0] or counts[1]):
            dropped = self._drop_infeasible(now)
            if dropped:
                actions.append(Drop(tuple(dropped), "cannot meet its deadline"))
        if not (counts[0] or counts[1]):
            return actions
        by_gpu = self.by_gpu
        left = len(free)
        occupancy = self.est.occupancy
        if left > 1 and occupancy is not None:
            free = occupancy.least_occupied_first(free)
        h2d: dict[int, int] = {}
        refused: tuple[int, ...] = ()
        max_batch = view.max_batch
        est = self.est
        for gpu, slot in free:
            if refused and gpu in refused:
                continue
            flight = h2d.get(gpu) if h2d else None
            if flight is None:
                flight = view.transfers_in_flight(gpu, "h2d")
            if counts[HIGH]:
                choice = self._pick_hp(now, gpu, flight)
            elif counts[LOW]:
                choice = self._pick_lp(now, by_gpu, gpu, flight, left - 1)
            else:
                break
            if choice is None:
                refused += (gpu,)
                self.held_back += 1
                continue
            cls, model, size, svc, cstart, comp = choice
            reqs = q.take(cls, model, size)
            if len(reqs) == 1:
                size = min(reqs[0].items, max_batch)
            else:
                size = min(sum(r.items for r in reqs), max_batch)
            solo = est.solo[model][size]
            bel = Believed(model, size, cls, cstart, cstart + comp / 1e3, now + svc / 1e3,
                           reqs[0].deadline_s, comp / solo if solo > 0 else 1.0)
            self.beliefs[reqs[0].id] = bel
            est.commit(now, gpu, bel, len(q), slot)
            h2d[gpu] = flight + 1
            left -= 1
            actions.append(Dispatch(gpu, slot, reqs, svc))
        return actions

    def _predict(self, now: float, gpu: int, model: str, size: int, h2d_flight: int
                 ) -> tuple[float, float, float]:
        """(service ms, compute start s, compute ms) of a batch dispatched now on ``gpu``
        (:class:`~strait_sim.policies.occupancy.OccupancyEstimator`)."""
        queued = len(self.q) - size
        return self.est.predict(now, gpu, model, size, h2d_flight, queued if queued > 0 else 0)

    def _largest(self, now: float, gpu: int, model: str, bmax: int,
                 deadline: float, h2d_flight: int, guard: tuple | None = None):  # noqa: ANN202
        """Largest b in [1, bmax] whose prediction meets ``deadline`` (or bmax when even
        b = 1 cannot: the head is late anyway) and, with ``guard``, passes the LP guard;
        returns (b, prediction), or None when b = 1 fails the guard. Predictions grow
        with b, so binary searches need about log2(bmax) predictions each."""
        limit = (deadline - now - self.margin_ms / 1e3) * 1e3 / self.safety  # ms
        memo: list = [None] * (bmax + 1)
        # _predict written out (a frame less per prediction): the requests left waiting
        # once b items are taken refill freed slots (the queue stays as it is meanwhile)
        counts = self.q.counts
        n = counts[0] + counts[1]
        predict = self.est.predict
        p = memo[bmax] = predict(now, gpu, model, bmax, h2d_flight,
                                 n - bmax if n > bmax else 0)
        if p[0] <= limit:
            top = bmax
        else:
            p1 = memo[1] = (predict(now, gpu, model, 1, h2d_flight, n - 1 if n > 1 else 0)
                            if bmax > 1 else p)
            if p1[0] > limit:
                top = bmax
            else:
                lo, hi = 1, bmax
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    pm = memo[mid] = predict(now, gpu, model, mid, h2d_flight,
                                             n - mid if n > mid else 0)
                    if pm[0] <= limit:
                        lo = mid
                    else:
                        hi = mid
                top = lo
        if guard is None:
            return top, memo[top]
        safe = self._lp_safe
        if safe(now, *guard, model, top, memo[top]):
            return top, memo[top]
        if top == 1:
            return None
        p1 = memo[1] or predict(now, gpu, model, 1, h2d_flight, n - 1 if n > 1 else 0)
        memo[1] = p1
        if not safe(now, *guard, model, 1, p1):
            return None
        lo, hi = 1, top
        while hi - lo > 1:
            mid = (lo + hi) // 2
            pm = memo[mid] or predict(now, gpu, model, mid, h2d_flight,
                                      n - mid if n > mid else 0)
            memo[mid] = pm
            if safe(now, *guard, model, mid, pm):
                lo = mid
            else:
                hi = mid
        return lo, memo[lo]

    def _pick_hp(self, now: float, gpu: int, h2d_flight: int):  # noqa: ANN202
        model, head = self.q.first(HIGH)  # type: ignore[misc]
        bmax = min(self.est.max_batch, self.q.waiting_items(HIGH, model))
        size, (svc, cstart, comp) = self._largest(now, gpu, model, bmax, head.deadline_s,
                                                  h2d_flight)
        return HIGH, model, size, svc, cstart, comp

    def _pick_lp(self, now: float, by_gpu: list[list[Believed]], gpu: int, h2d_flight: int,
                 free_after: int):  # noqa: ANN202
        q = self.q
        co = by_gpu[gpu]
        self._first_end = None  # the guard's earliest believed end, found once per pick
        need_guard = False
        if self.hp_guard:
            for c in co:
                if c.priority == HIGH:
                    need_guard = True
                    break
        if not need_guard and self.hp_lookahead and free_after == 0 and self._hp_gap:
            need_guard = any(by_gpu)
        guard = (by_gpu, co, free_after) if need_guard else None
        first, head = q.first(LOW)  # type: ignore[misc]
        bmax = min(self.est.max_batch, q.waiting_items(LOW, first))
        found = self._largest(now, gpu, first, bmax, head.deadline_s, h2d_flight, guard)
        if found is not None:
            size, (svc, cstart, comp) = found
            return LOW, first, size, svc, cstart, comp
        if self.lp_model_tries == 1:
            return None
        models = q.models_in_order(LOW)
        if self.lp_model_tries:
            models = models[:self.lp_model_tries]
        for model in models:
            if model == first:
                continue
            head = q.head(LOW, model)
            bmax = min(self.est.max_batch, q.waiting_items(LOW, model))
            found = self._largest(now, gpu, model, bmax, head.deadline_s, h2d_flight, guard)
            if found is not None:
                size, (svc, cstart, comp) = found
                return LOW, model, size, svc, cstart, comp
        return None

    def _lp_safe(self, now: float, by_gpu: list[list[Believed]], co: list[Believed],
                 free_after: int, model: str, size: int, p: tuple[float, float, float]
                 ) -> bool:
        """The LP guard (module docstring, step 5)."""
        svc, cstart, comp = p
        if self.hp_guard:
            safety, margin = self.safety, self.margin_ms / 1e3
            for c in co:
                if c.priority != HIGH or c.end_s > c.deadline_s:
                    continue  # LP work, or HP already predicted late either way
                if c.compute_end_s <= cstart:
                    continue
                new_end = c.end_s + (self.est.end_with(c, model, size, cstart, now, co)
                                     - c.compute_end_s)
                if now + safety * (new_end - now) + margin > c.deadline_s:
                    return False
        if self.hp_lookahead and free_after == 0:
            rate = self.hp_rate()
            if rate > 0.0:
                first = self._first_end
                if first is None:  # once per pick: no belief changes during one
                    first = self._first_end = (
                        min((c.end_s for row in by_gpu for c in row), default=None),)
                if first[0] is not None:
                    t_free = min(first[0], now + svc / 1e3) - now
                    exposed = t_free - self.hp_slack_ms() / 1e3
                    if exposed > 0.0 and 1.0 - math.exp(-rate * exposed) > self.hp_risk:
                        return False
        return True
