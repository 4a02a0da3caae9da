"""Occupancy-aware service estimates: the interference a batch will meet, not only the one
it sees at dispatch.

Why: under load a slot that frees is refilled at once. On cpu-epyc2-fp32 at load 1.1, 97%
of batches were co-located for their whole compute time and half met more than one
co-runner in turn; an estimate that counts only the batches running at dispatch, each
until its predicted end, predicted 148 ms of co-located service against 242 ms observed.

The estimate of a candidate batch (model ``m``, ``b`` items) dispatched now on GPU ``g``:

- **wait**: zero when dispatched now; :meth:`OccupancyEstimator.earliest_free_s` gives
  the expected wait of work that finds every slot busy;
- **H2D**: the copy shares the link with the ``in_flight`` copies already running, under
  the link's fitted sharing rule (fair, partial or serial; ``TransferPredictor``);
- **compute**: a small fluid replay of the batch's life. While co-runners with excess
  slowdowns ``e_j`` compute beside it, it progresses at ``1 / (1 + sum_j e_j)`` of its solo
  rate (the additive form the truth model uses for several co-runners). Every other slot
  of ``g`` is followed over time: a running batch contributes its pair excess until its
  believed compute end (revised for the candidate's own interference); after the slot
  frees, or for a slot empty now, a *replacement* fills it after an expected gap and stays
  (under load, each freed slot is refilled at once). The gap is 0 when requests are queued;
  otherwise it is the expected time to the next arrival after the slot frees,
  ``exp(-lambda * (t_free - now)) / lambda`` with ``lambda`` the EWMA arrival rate (a
  Poisson-arrival reading: an arrival before ``t_free`` waits in the queue and takes the
  slot at once). The replacement's excess is the mean pair excess over the recently
  dispatched batches weighted by their solo time (the occupancy mix of a slot);
- **D2H**: the copy alone on the link.

Pair excesses come from the interference predictor. For the fine-grained linear family
(``linear``, ``sgd``, ``rls``) the predictor's form is the fluid model itself: the batch's
latency grows by ``k = w . phi`` per unit of overlap, and ``k = 1 - 1/s``, so the excess
``s - 1 = k / (1 - k)`` is read from the current coefficients without a memo (RLS moves
them at every completion). Other predictors are asked for a whole-life overlap, memoised
and refreshed every ``pair_refresh`` updates.

Beliefs about running batches are revised whenever their co-runners change (a dispatch
beside them, a completion). The estimator follows each batch's believed progress: its
solo work left (``Believed.work_ms``) is advanced at every change of co-runners on its GPU
with the pair excesses of the batches that actually computed beside it meanwhile, and a
revision replays that work with the new neighbours. (Dividing the compute time left by a
mean slowdown believed earlier misplaces the work of a batch that was alone at first and
co-located later.) A newcomer takes the slot that a running batch's belief expected a
replacement to refill, so the running batch is replayed beside the newcomer instead of
the replacement, not beside both.

The adaptive part is the predictor, updated by :meth:`ServiceEstimator.observe` from every
completion's observed co-run overlaps (``CompletedBatch.co_runs``), in simulation and live
alike. Strait uses this object; any policy can (``bind`` it, call :meth:`predict`,
:meth:`commit` each dispatch, :meth:`release` each completion).
"""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING

from strait_sim.policies.estimates import Believed, ServiceEstimator
from strait_sim.policies.occupancy_rows import OccupancyRows

if TYPE_CHECKING:
    from strait_sim.policies.base import PolicyContext
    from strait_sim.predictors.base import InterferencePredictor

MAX_RATE = 0.95  # k = 1 - 1/s capped here: s <= 20, the truth model's clamp
MIX_WINDOW = 64  # recent dispatches that define the replacement mix
MIX_REFRESH = 128  # dispatches between recomputations of the replacement excesses


class OccupancyEstimator(ServiceEstimator):
    """Service estimates that follow each slot of a GPU over the candidate's life."""

    def __init__(self, ctx: PolicyContext, predictor: InterferencePredictor | None,
                 max_batch: int | None = None, pair_refresh: int = 16,
                 rate_alpha: float = 0.05, mirror: bool | None = None) -> None:
        super().__init__(ctx, predictor, max_batch, pair_refresh)
        self.slots = ctx.slots_per_gpu
        self.by_gpu: list[list[Believed]] = [[] for _ in range(ctx.n_gpus)]
        # the GPUs filed by believed batches (kept by commit and release when there are
        # several GPUs): a policy that prefers the least occupied GPU finds it without a
        # walk over every GPU (issue 15: flat from 1 to 1,024 GPUs)
        self.occupancy = OccupancyRows(ctx.n_gpus, self.slots) if ctx.n_gpus > 1 else None
        self.rate_alpha = rate_alpha
        self._gap: float | None = None  # EWMA of inter-arrival gaps (s), all classes
        self._last_arrival: float | None = None
        # a predictor that states its fluid rate per pair is read directly (no memo)
        self._pair_rate = getattr(predictor, "pair_rate", None)
        # a predictor that keeps its clamped rates in a dict (``pairs``) is read in place
        table = getattr(predictor, "k", None)
        self._rates: dict | None = table if isinstance(table, dict) else None
        # ... and mirrored under int keys (victim * n + aggressor, each (model, size) an
        # index) for replacement_excess's loop, which costs a tuple and its hash per look-up
        # otherwise. The mirror holds the table's values: filled from rate() on a miss and
        # updated in observe() for the keys each learn() step changes (the only writes).
        # It pays where (model, size) keys outnumber the mix window: the loop then runs
        # for many keys per refresh over many mix entries (measured, bench scenario, 1
        # GPU: 100 models, ~10% less time per request); with few keys the loop runs
        # seldom and the updates at every co-located completion cost more than they save
        # (6 models: ~3% more time). ``mirror`` forces it on or off (the same results
        # either way: the mirror only holds the table's values).
        if mirror is None:
            mirror = len(ctx.models) * ctx.max_batch > MIX_WINDOW
        self._pair_index: dict[tuple[str, int], int] | None = None
        self._pair_n = 0
        self._by_index: dict[int, float] = {}
        if self._rates is not None and mirror:
            top = ctx.max_batch
            self._pair_index = {(m, b): i * (top + 1) + b for i, m in enumerate(ctx.models)
                                for b in range(top + 1)}
            self._pair_n = len(ctx.models) * (top + 1)
        self._learn = getattr(predictor, "learn", None) if self.online else None
        self._observed = 0  # co-located completions since the replacement memo was built
        self._mix: deque[tuple[str, int]] = deque(maxlen=MIX_WINDOW)
        self._since_mix = 0
        self._replacement: dict[tuple[str, int], float] = {}
        self._mix_counts: dict[tuple[str, int], int] | None = None
        # the mix as (model, size, index, index * n, count * solo ms) rows, with the
        # counts; None until built, () when a (model, size) has no index
        self._mix_terms: list[tuple[str, int, int, int, float]] | tuple | None = None
        # learned refill gap (s) of a slot freed while requests were queued: 0 when the
        # policy refills at once, longer when it holds work back (strait's LP guard)
        self._freed: dict[tuple[int, int], tuple[float, bool]] = {}
        self._dirty: set[int] = set()  # GPUs whose beliefs await a revision
        self.refill_gap_s = 0.0
        # time (s) up to which the believed work left (Believed.work_ms) of each GPU's
        # batches has been advanced
        self._as_of: list[float] = [-math.inf] * ctx.n_gpus
        # copy times alone on the link per model and size (h2d_ms(m, b), d2h_ms(m, b)):
        # predict() reads them instead of two calls per prediction
        top = ctx.max_batch
        self._h2d_alone = {m: [self.h2d_ms(m, b) for b in range(top + 1)] for m in ctx.models}
        self._d2h_alone = {m: [self.d2h_ms(m, b) for b in range(top + 1)] for m in ctx.models}

    # -- what the estimator learns from the stream ---------------------------------------
    def note_arrival(self, t: float) -> None:
        """Track the arrival rate (EWMA of gaps) that sets how soon an idle slot refills."""
        last = self._last_arrival
        if last is not None:
            gap = t - last
            a = self.rate_alpha
            self._gap = gap if self._gap is None else (1 - a) * self._gap + a * gap
        self._last_arrival = t

    def arrival_rate(self) -> float:
        """Estimated arrivals per second (0 until two arrivals were seen)."""
        return 1.0 / self._gap if self._gap else 0.0

    # -- pair excess ---------------------------------------------------------------------
    def rate(self, model: str, size: int, co_model: str, co_size: int) -> float:
        """Fluid rate ``k = 1 - 1/s`` of (model, size) beside (co_model, co_size)."""
        pair_rate = self._pair_rate
        if pair_rate is not None:
            k = pair_rate(model, size, co_model, co_size)
        elif self.predictor is None:
            return 0.0
        else:
            k = self.pair_slowdown(model, size, co_model, co_size) - 1.0
        return 0.0 if k < 0.0 else (MAX_RATE if k > MAX_RATE else k)

    def excess(self, model: str, size: int, co_model: str, co_size: int) -> float:
        """Excess slowdown ``s - 1`` of (model, size) while (co_model, co_size) computes."""
        table = self._rates
        if table is not None:  # a per-pair table (clamped already): one look-up
            k = table.get((model, size, co_model, co_size))
            if k is not None:
                return k / (1.0 - k)
        k = self.rate(model, size, co_model, co_size)
        return k / (1.0 - k)

    def replacement_excess(self, model: str, size: int) -> float:
        """Excess slowdown that the stream of batches taking a freed slot inflicts on
        (model, size), over the recent dispatches (before any, every model at one item).

        What matters to a long batch is its mean *progress rate* while the slot holds
        one occupant after another: each occupant ``w`` holds the slot for about its solo
        time stretched by (model, size), ``tau_w``, and lets it progress at
        ``1 - k_w``. So the rates ``k`` are averaged weighted by ``tau_w`` and the excess
        is ``k / (1 - k)`` of the mean. (Averaging the excesses instead would let one
        short, very aggressive co-runner, at the clamp ``s = 20``, dominate.)"""
        key = (model, size)
        hit = self._replacement.get(key)
        if hit is not None:
            return hit
        counts = self._mix_counts
        if counts is None:
            counts = {}
            if self._mix:
                for k in self._mix:
                    counts[k] = counts.get(k, 0) + 1
            else:
                counts = {(m, 1): 1 for m in self.models}
            self._mix_counts = counts
        num = den = 0.0
        solo = self.solo
        table = self._rates
        index = self._pair_index
        a = index.get(key) if index is not None else None
        terms = self._mix_terms if a is not None else ()
        if terms is None:
            terms = self._mix_terms = self._terms(counts)
        if terms:
            # excess() and rate() written out over the int-keyed mirror of the per-pair
            # table (clamped already, so rate()'s clamp is the identity on it):
            # recomputed for every (model, size) asked after each refresh, this loop was
            # a third of strait's time at 100 models (issue 15). Same terms, same order,
            # same sums; a key not mirrored yet is read through rate(), as before (which
            # may add it to the table: in the same order as before).
            mirror = self._by_index
            get = mirror.get
            row = a * self._pair_n  # type: ignore[operator]
            for m, b, vi, vi_row, ns in terms:
                k = get(vi_row + a)
                if k is None:
                    k = mirror[vi_row + a] = self.rate(m, b, model, size)
                tau = ns * (1.0 + k / (1.0 - k))
                k = get(row + vi)
                if k is None:
                    k = mirror[row + vi] = self.rate(model, size, m, b)
                num += tau * k
                den += tau
        elif table is not None:
            get = table.get
            for (m, b), n in counts.items():
                k = get((m, b, model, size))
                if k is None:
                    k = self.rate(m, b, model, size)
                tau = n * solo[m][b] * (1.0 + k / (1.0 - k))
                k = get((model, size, m, b))
                if k is None:
                    k = self.rate(model, size, m, b)
                num += tau * k
                den += tau
        else:
            for (m, b), n in counts.items():
                tau = n * solo[m][b] * (1.0 + self.excess(m, b, model, size))
                num += tau * self.rate(model, size, m, b)
                den += tau
        k = num / den if den > 0.0 else 0.0
        hit = k / (1.0 - k)
        self._replacement[key] = hit
        return hit

    def _terms(self, counts: dict[tuple[str, int], int]) -> list | tuple:
        """The mix's rows for replacement_excess's mirrored loop (() when a (model,
        size) of the mix has no index: the loop over the table then serves)."""
        index = self._pair_index
        assert index is not None
        rows = []
        for (m, b), n in counts.items():
            vi = index.get((m, b))
            if vi is None:
                return ()
            rows.append((m, b, vi, vi * self._pair_n, n * self.solo[m][b]))
        return rows

    def observe(self, batch) -> None:  # noqa: ANN001 - a CompletedBatch
        """Learn from one completion's observed co-run overlaps (see
        :meth:`ServiceEstimator.observe`); a ``pairs`` predictor is fed plain tuples."""
        learn = self._learn
        if learn is not None:
            if batch.co_runs and not batch.failed:
                runs = [(c.model, c.size, c.overlap_ms) for c in batch.co_runs]
                learn(batch.model, batch.size, runs,
                      (batch.compute_end_s - batch.compute_start_s) * 1e3)
                self._observed += 1
                if self._by_index:
                    self._mirror(batch.model, batch.size, runs)
        else:
            before = self._since_refresh
            super().observe(batch)
            if self._since_refresh < before:  # the pair memo was refreshed
                self._observed = MIX_REFRESH
            elif batch.co_runs:
                self._observed += 1
        if self._observed >= MIX_REFRESH:
            self._observed = 0
            self._replacement.clear()

    def _mirror(self, model: str, size: int, runs: list[tuple[str, int, float]]) -> None:
        """Copy into the int-keyed mirror the table's entries that the learn() step of
        (model, size) beside ``runs`` changed: those of the runs that overlapped it
        (``PairPredictor.learn`` writes no others)."""
        index = self._pair_index
        table = self._rates
        assert index is not None and table is not None
        mirror = self._by_index
        vi = index.get((model, size))
        if vi is None:
            return  # never mirrored: no index
        row = vi * self._pair_n
        for cm, cb, o in runs:
            if o > 0.0:
                ai = index.get((cm, cb))
                if ai is not None:
                    mirror[row + ai] = table[(model, size, cm, cb)]

    # -- the estimate --------------------------------------------------------------------
    def _refill_gap(self, now: float, t_free: float, queued: int) -> float:
        """Expected time from ``t_free`` until a batch takes the freed slot: the learned
        gap of slots freed with work queued, plus, when nothing is queued now, the
        expected wait for the next arrival after ``t_free`` (Poisson reading: an arrival
        before ``t_free`` is queued by then)."""
        if queued > 0:
            return self.refill_gap_s
        lam = self.arrival_rate()
        if lam <= 0.0:
            return math.inf
        dt = t_free - now
        return self.refill_gap_s + (math.exp(-lam * dt) if dt > 0.0 else 1.0) / lam

    def _replay(self, now: float, start: float, work_ms: float, model: str, size: int,
                others: list[tuple[str, int, float, float, float]], queued: int) -> float:
        """Compute end (s) of ``work_ms`` of solo work of (model, size) starting at
        ``start`` on a GPU whose other batches are ``others`` = (model, size, compute
        start, compute end, slot free) each; every slot that frees (or is empty) is
        refilled by the replacement stream after its gap (:meth:`_refill_gap`)."""
        events: list[tuple[float, float]] = []
        level = 0.0
        excess = self.excess
        er = self._replacement.get((model, size))
        if er is None:
            er = self.replacement_excess(model, size)
        if queued > 0:
            lam = 0.0
            base = self.refill_gap_s
        else:
            lam = self.arrival_rate()
            base = self.refill_gap_s if lam > 0.0 else math.inf
        for cm, cb, cs, ce, free in others:
            if ce > start:
                e = excess(model, size, cm, cb)
                if cs > start:
                    events.append((cs, e))
                else:
                    level += e
                events.append((ce, -e))
            if lam > 0.0:
                dt = free - now
                events.append((free + base + (math.exp(-lam * dt) if dt > 0.0 else 1.0) / lam,
                               er))
            else:
                events.append((free + base, er))
        empty = self.slots - 1 - len(others)
        if empty > 0:
            events.append((now + base + (1.0 / lam if lam > 0.0 else 0.0), er * empty))
        t = start
        w = work_ms / 1e3
        events.sort()
        for te, de in events:
            if te > t:
                s = 1.0 + level
                step = (te - t) / s
                if step >= w:
                    return t + w * s
                w -= step
                t = te
            level += de
            if level < 0.0:
                level = 0.0
        return t + w * (1.0 + level)

    def predict(self, now: float, gpu: int, model: str, size: int, h2d_flight: int = 0,
                queued: int = 0) -> tuple[float, float, float]:
        """(service ms, compute start s, compute ms) of a batch dispatched now on ``gpu``;
        ``queued``: requests left waiting once it is dispatched (they refill freed slots)."""
        h2d = self._h2d_alone[model][size] if not h2d_flight else \
            self.h2d_ms(model, size, h2d_flight)
        cstart = now + h2d / 1e3
        solo = self.solo[model][size]
        co = self.by_gpu[gpu]
        if co and self._as_of[gpu] < now:
            self._advance(gpu, now)
        if self.predictor is None or self.slots < 2:
            comp = solo
        elif not co:  # idle GPU: alone until the other slots refill (the replay, inlined)
            er = self._replacement.get((model, size))
            if er is None:
                er = self.replacement_excess(model, size)
            if queued > 0:
                fill = now + self.refill_gap_s
            else:
                lam = self.arrival_rate()
                fill = now + self.refill_gap_s + 1.0 / lam if lam > 0.0 else math.inf
            alone = (fill - cstart) * 1e3
            if alone >= solo:
                comp = solo
            else:
                if alone < 0.0:
                    alone = 0.0
                comp = alone + (solo - alone) * (1.0 + er * (self.slots - 1))
        elif len(co) == 1 and self.slots == 2:
            comp = self._beside_one(now, cstart, solo, model, size, co[0], queued)
        else:
            others = []
            for c in co:
                end = self.end_with(c, model, size, cstart, now, co)
                others.append((c.model, c.size, c.compute_start_s, end,
                               c.end_s + end - c.compute_end_s))
            cend = self._replay(now, cstart, solo, model, size, others, queued)
            comp = (cend - cstart) * 1e3
        return h2d + comp + self._d2h_alone[model][size], cstart, comp

    def _beside_one(self, now: float, cstart: float, solo: float, model: str, size: int,
                    c: Believed, queued: int) -> float:
        """:meth:`_replay` written out for the common case, two slots and one batch
        running: beside ``c`` (stretched) until its compute end, alone until its slot
        refills, then beside the replacement stream. Returns compute ms."""
        excess = self.excess
        cs = c.compute_start_s
        w = (c.work_ms if c.work_ms >= 0.0 else self._untracked_work(c, now)) / 1e3
        # c's end (_end_beside written out): alone until the candidate computes, then
        # slowed by it
        end = cs if cs > now else now
        if cstart > end:
            if w <= cstart - end:
                end += w
                w = 0.0
            else:
                w -= cstart - end
                end = cstart
        if w > 0.0:
            end += w * (1.0 + excess(c.model, c.size, model, size))
        free = c.end_s + end - c.compute_end_s
        e = excess(model, size, c.model, c.size) if end > cstart else 0.0
        if queued > 0:
            fill = free + self.refill_gap_s
        else:
            lam = self.arrival_rate()
            if lam > 0.0:
                dt = free - now
                fill = free + self.refill_gap_s + (math.exp(-lam * dt) if dt > 0.0 else 1.0) / lam
            else:
                fill = math.inf
        t = cstart
        w = solo / 1e3
        for te, s in ((cs, 1.0), (end, 1.0 + e), (fill, 1.0)):
            if te > t:
                step = (te - t) / s
                if step >= w:
                    return (t + w * s - cstart) * 1e3
                w -= step
                t = te
        er = self._replacement.get((model, size))
        if er is None:
            er = self.replacement_excess(model, size)
        return (t + w * (1.0 + er) - cstart) * 1e3

    def end_with(self, c: Believed, model: str, size: int, cstart: float,
                 now: float | None = None, co: list[Believed] | None = None) -> float:
        """Believed compute end of running batch ``c`` once (model, size) computes beside
        it from ``cstart`` for the rest of its life (used by guards). From ``now`` (default
        ``cstart``) ``c`` has its believed work left; it computes beside the other
        batches of ``co`` (their excesses, for the rest of its life: a bound; none on two
        slots, where the candidate's slot is the only other one) and, from ``cstart``, the
        candidate. The candidate takes the slot that ``c``'s belief expected a
        replacement to refill, so the replacement's excess is not added on top."""
        t = cstart if now is None else now
        work = c.work_ms if c.work_ms >= 0.0 else self._untracked_work(c, t)
        base = 0.0
        if co is not None and len(co) > 1:
            excess = self.excess
            for o in co:
                if o is not c and o.compute_end_s > t:
                    base += excess(c.model, c.size, o.model, o.size)
        cs = c.compute_start_s
        return _end_beside(cs if cs > t else t, work, cstart,
                           self.excess(c.model, c.size, model, size), base)

    @staticmethod
    def _untracked_work(c: Believed, now: float) -> float:
        """Solo work (ms) left of a belief no estimator has followed: its remaining
        compute time over its mean slowdown."""
        start = c.compute_start_s if c.compute_start_s > now else now
        left = (c.compute_end_s - start) * 1e3 / c.slow
        return left if left > 0.0 else 0.0

    # -- believed progress ---------------------------------------------------------------
    def _advance(self, gpu: int, now: float) -> None:
        """Advance the believed solo work left (``Believed.work_ms``) of the batches on
        ``gpu`` to ``now``. Between the GPU's events each batch computing progresses at
        ``1 / (1 + sum of its pair excesses beside the others computing)``; a batch still
        copying in neither progresses nor slows anyone; a batch believed done that has not
        completed still holds its slot and slows the others (it is running, late). A
        revision replays from this progress, not from a mean slowdown believed earlier
        (which, for a batch alone at first and co-located later, misplaces its work)."""
        co = self.by_gpu[gpu]
        t = self._as_of[gpu]
        self._as_of[gpu] = now
        fresh = None
        for c in co:
            if c.work_ms < 0.0:  # first seen here (not committed through this object):
                c.work_ms = self._untracked_work(c, now)  # its work left as of now
                fresh = [c] if fresh is None else [*fresh, c]
        if t == -math.inf or now <= t:
            return
        if fresh is not None:
            co = [c for c in co if all(c is not f for f in fresh)]
        n = len(co)
        if n == 1:  # alone: full speed once its compute started
            c = co[0]
            cs = c.compute_start_s
            if cs < now:
                dt = (now - (cs if cs > t else t)) * 1e3
                c.work_ms = c.work_ms - dt if c.work_ms > dt else 0.0
            return
        if n == 2:  # the general loop below, written out: alone, then side by side
            a, b = co
            ta = a.compute_start_s if a.compute_start_s > t else t
            tb = b.compute_start_s if b.compute_start_s > t else t
            both = ta if ta > tb else tb
            if both < now:
                side = (now - both) * 1e3
                da = (both - ta) * 1e3 + side / (1.0 + self.excess(a.model, a.size,
                                                                   b.model, b.size))
                db = (both - tb) * 1e3 + side / (1.0 + self.excess(b.model, b.size,
                                                                   a.model, a.size))
            else:
                da = (now - ta) * 1e3 if ta < now else 0.0
                db = (now - tb) * 1e3 if tb < now else 0.0
            a.work_ms = a.work_ms - da if a.work_ms > da else 0.0
            b.work_ms = b.work_ms - db if b.work_ms > db else 0.0
            return
        self._progress(co, t, now)

    def _progress(self, co: list[Believed], t: float, now: float) -> None:
        """:meth:`_advance`'s general case: any number of batches, segment by segment
        between their compute starts."""
        excess = self.excess
        while t < now:
            nxt = now
            for c in co:
                cs = c.compute_start_s
                if t < cs < nxt:
                    nxt = cs
            active = [c for c in co if c.compute_start_s <= t]
            dt = (nxt - t) * 1e3
            if len(active) == 1:
                c = active[0]
                c.work_ms = c.work_ms - dt if c.work_ms > dt else 0.0
            elif active:
                steps = []
                for c in active:
                    level = 0.0
                    for o in active:
                        if o is not c:
                            level += excess(c.model, c.size, o.model, o.size)
                    steps.append(dt / (1.0 + level))
                for c, step in zip(active, steps, strict=True):
                    c.work_ms = c.work_ms - step if c.work_ms > step else 0.0
            t = nxt

    # -- beliefs -------------------------------------------------------------------------
    def commit(self, now: float, gpu: int, bel: Believed, queued: int = 0,
               slot: int | None = None) -> None:
        """Record a batch dispatched on (gpu, slot) and revise the beliefs of those it will
        slow (and of those whose co-runner left since: see :meth:`release`); learns how
        long slots freed with work queued stayed idle."""
        if slot is not None:
            freed = self._freed.pop((gpu, slot), None)
            if freed is not None and freed[1]:
                a = self.rate_alpha
                self.refill_gap_s = (1 - a) * self.refill_gap_s + a * (now - freed[0])
        co = self.by_gpu[gpu]
        if co and self._as_of[gpu] < now:
            self._advance(gpu, now)
        self._as_of[gpu] = now
        if bel.work_ms < 0.0:
            bel.work_ms = self.solo[bel.model][bel.size]
        co.append(bel)
        if self.occupancy is not None:
            self.occupancy.move(gpu, len(co))
        self._dirty.discard(gpu)
        self._mix.append((bel.model, bel.size))
        self._since_mix += 1
        if self._since_mix >= MIX_REFRESH:
            self._since_mix = 0
            self._replacement.clear()
            self._mix_counts = None
            self._mix_terms = None
        if len(co) > 1 and self.predictor is not None:
            self._revise(now, co, bel, queued)

    def release(self, now: float, gpu: int, bel: Believed, queued: int = 0,
                slot: int | None = None) -> None:
        """Forget a finished (or returned) batch. Its former co-runners are revised by the
        next :meth:`commit` on that GPU (which replays them with the newcomer), or by
        :meth:`settle` when the slot stays empty: until then their beliefs assume the
        slot refilled, which is what a dispatch right away makes true."""
        if slot is not None:
            self._freed[(gpu, slot)] = (now, queued > 0)
        co = self.by_gpu[gpu]
        if len(co) > 1 and self._as_of[gpu] < now:
            self._advance(gpu, now)  # the others' progress while it still ran beside them
        for i, c in enumerate(co):
            if c is bel:
                del co[i]
                if self.occupancy is not None:
                    self.occupancy.move(gpu, len(co))
                break
        if co and self.predictor is not None:
            self._dirty.add(gpu)

    def settle(self, now: float, queued: int = 0) -> None:
        """Revise the GPUs whose batches lost a co-runner and got no newcomer."""
        if self._dirty:
            for gpu in sorted(self._dirty):
                if self._as_of[gpu] < now:
                    self._advance(gpu, now)
                self._revise(now, self.by_gpu[gpu], None, queued)
            self._dirty.clear()

    def _revise(self, now: float, co: list[Believed], new: Believed | None,
                queued: int) -> None:
        """Replay each running batch's believed work left (advanced to ``now``) beside its
        current co-runners. With a newcomer on a two-slot GPU, a batch that ends before
        the newcomer does is simply slowed by the pair excess from the newcomer's compute
        start (what the replay would give)."""
        two = new is not None and self.slots == 2 and len(co) == 2
        for c in co:
            if c is new:
                continue
            work = c.work_ms
            if work <= 0.0:
                continue  # believed done already: running late, nothing to replay
            start = c.compute_start_s if c.compute_start_s > now else now
            if two:  # _end_beside written out: alone until the newcomer computes, then slowed
                ncs = new.compute_start_s  # type: ignore[union-attr]
                w = work / 1e3
                end = start
                if ncs > end:
                    if w <= ncs - end:
                        end += w
                        w = 0.0
                    else:
                        w -= ncs - end
                        end = ncs
                if w > 0.0:
                    end += w * (1.0 + self.excess(c.model, c.size, new.model,  # type: ignore
                                                  new.size))  # type: ignore[union-attr]
                if end <= new.compute_end_s:  # type: ignore[union-attr]
                    c.end_s += end - c.compute_end_s
                    c.compute_end_s = end
                    c.slow = (end - start) * 1e3 / work
                    continue
            others = [(o.model, o.size, o.compute_start_s, o.compute_end_s, o.end_s)
                      for o in co if o is not c]
            end = self._replay(now, start, work, c.model, c.size, others, queued)
            c.end_s += end - c.compute_end_s
            c.compute_end_s = end
            c.slow = (end - start) * 1e3 / work

    def earliest_free_s(self, gpu: int | None = None) -> float:
        """When the first believed-busy slot frees (on ``gpu``, or any): the expected wait
        of work that finds every slot busy (inf when nothing is believed running)."""
        rows = self.by_gpu if gpu is None else [self.by_gpu[gpu]]
        return min((c.end_s for row in rows for c in row), default=math.inf)


def _end_beside(t: float, work_ms: float, other_start: float, e: float, base: float
                ) -> float:
    """Compute end (s) of ``work_ms`` of solo work from ``t`` at slowdown ``1 + base``,
    then ``1 + base + e`` once another batch computes beside it from ``other_start``."""
    w = work_ms / 1e3
    s = 1.0 + base
    if other_start > t:
        alone = (other_start - t) / s
        if w <= alone:
            return t + w * s
        w -= alone
        t = other_start
    return t + w * (s + e)


__all__ = ["OccupancyEstimator"]
