"""Two clocks under one driver: SimPy's virtual time, and the wall clock.

SimPy itself has one ``Environment`` and a wall-clock ``RealtimeEnvironment`` running the
same process code; the driver follows that pattern. Both clocks here *are* SimPy
environments, so the driver and the devices schedule callbacks the same way in both modes:
:func:`scheduler` (a lean entry on the environment's heap) or
``clock.timeout(delay, value)``. They differ only in how time passes:

- :class:`VirtualClock` jumps from event to event (simulation).
- :class:`WallClock` waits for the wall clock, and also takes events that come from other
  threads (a backend's "job done") through a thread-safe inbox: ``post(fn, value)``.
  SimPy's ``RealtimeEnvironment`` has no such inbox, hence this subclass.

Arrivals are not SimPy events at all: the driver's arrival source offers the time of the
next arrival (``next_t``) and the clock's loop releases it when it is due, before any
event at the same instant. That saves one heap push and pop per request.

A :class:`WallClock` takes its notion of "now" and of "wait until" from a
:class:`WallTime`; the real one reads ``time.perf_counter``; tests substitute one that
jumps (see :mod:`strait_sim.devices.truth_backend`), so the live driver can be checked
against the simulation bit for bit.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Protocol

import simpy
from simpy.events import NORMAL

INF = math.inf


class Call:
    """A callback scheduled on a plain SimPy environment's heap: only what ``step`` reads
    (``callbacks``, ``_ok``) and what the callback needs (``fn``, ``value``). A
    ``Timeout`` carries more (its environment, delay, the checks of a general event) and
    costs more to make. On a :class:`VirtualClock` the entry is leaner still: a
    ``(fn, value)`` pair its loop calls directly (see :func:`scheduler`)."""

    __slots__ = ("callbacks", "fn", "value", "_ok")

    def __init__(self, fn: Callable[[object], None], value: object) -> None:
        self.callbacks = [_run_call]
        self.fn = fn
        self.value = value
        self._ok = True


def _run_call(call: Call) -> None:
    call.fn(call.value)


def scheduler(env: simpy.Environment) -> Callable[[float, object, Callable], None]:
    """``call_in(delay, value, fn)`` bound to ``env``: run ``fn(value)`` after ``delay``
    (>= 0), ties broken exactly as SimPy breaks them for a ``Timeout`` (time, priority,
    insertion order). On a :class:`VirtualClock` the heap entry is a bare ``(fn, value)``
    pair that :meth:`VirtualClock.run_driver` calls without SimPy's event protocol (no
    callback list, no ok check: the fluid device schedules a few per request); on any
    other environment (a plain one stepped by SimPy itself) it is a :class:`Call`."""
    shared = env.__dict__.get("_call_in")
    if shared is not None:  # one closure per clock, shared by every caller: a 1,024-GPU
        return shared  # run's 3,072 links and units then read one hot object, not their own
    q = env._queue
    eid = env._eid
    if isinstance(env, VirtualClock):
        def call_in(delay: float, value: object, fn: Callable) -> None:
            heappush(q, (env._now + delay, NORMAL, next(eid), (fn, value)))
    else:
        def call_in(delay: float, value: object, fn: Callable) -> None:
            heappush(q, (env._now + delay, NORMAL, next(eid), Call(fn, value)))
    env._call_in = call_in
    return call_in


class ArrivalSource(Protocol):
    next_t: float  # time of the next arrival; inf when none is left

    def release(self) -> None:
        """Release the next arrival (the clock has set its time)."""


class VirtualClock(simpy.Environment):
    """Virtual time: simulation."""

    def run_driver(self, arrivals: ArrivalSource) -> None:
        """Run events and arrivals in time order until neither is left (SimPy's ``step``,
        inlined: this loop runs a few times per request)."""
        q = self._queue
        while True:
            ta = arrivals.next_t
            if q and q[0][0] < ta or (ta == INF and q):
                self._now, _, _, ev = heappop(q)
                if ev.__class__ is tuple:  # a lean entry of scheduler(): (fn, value)
                    ev[0](ev[1])
                    continue
                callbacks, ev.callbacks = ev.callbacks, None
                for cb in callbacks:
                    cb(ev)
                if not ev._ok and not hasattr(ev, "_defused"):
                    raise ev._value
            elif ta != INF:
                self._now = ta
                arrivals.release()
            else:
                return

    def wall(self) -> float:
        return self._now


class WallTime(Protocol):
    def now(self) -> float:
        """Seconds on this time source (any origin)."""

    def wait(self, inbox: queue.SimpleQueue, until: float | None) -> object | None:
        """Block until an item is in ``inbox`` (return it) or ``until`` passes (None)."""


class PerfCounterTime:
    """The host's ``perf_counter``: real waiting."""

    def now(self) -> float:
        return time.perf_counter()

    def wait(self, inbox: queue.SimpleQueue, until: float | None) -> object | None:
        try:
            if until is None:
                return inbox.get()
            timeout = until - time.perf_counter()
            return inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
        except queue.Empty:
            return None


STOP = object()  # posted by a Ctrl-C handler: the loop raises KeyboardInterrupt


class WallClock(simpy.Environment):
    """Wall-clock time, with an inbox for events from other threads (live runs).

    ``now`` is seconds since :meth:`start`, plus its origin. An event due at t is
    processed once the wall clock passes t, with ``now`` set to the wall time at that
    moment (never earlier than t): what a policy sees is the real time it is called at.
    Items posted from other threads run, in the order posted, as soon as the loop is
    free. The loop ends when no event, no arrival and no outstanding external work is
    left (``outstanding``: the device counts jobs whose completion has not been taken
    yet).
    """

    def __init__(self, source: WallTime | None = None,
                 on_step: Callable[[float], None] | None = None) -> None:
        super().__init__(0.0)
        self.source = source or PerfCounterTime()
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.t0 = 0.0
        self.outstanding = 0
        self.on_step = on_step  # measured handling time of each event (ms), if wanted

    def start(self, origin_s: float = 0.0) -> None:
        """Start the clock at ``origin_s`` (the workload's time origin: a trace replayed
        as given starts at its first request, not after that many seconds of waiting)."""
        self.t0 = self.source.now() - origin_s
        self._now = origin_s

    def wall(self) -> float:
        return self.source.now() - self.t0

    def post(self, fn: Callable[[object], None], value: object) -> None:
        """Thread-safe: run ``fn(value)`` on the loop's thread as soon as it can."""
        self.inbox.put((fn, value))

    def stop(self) -> None:
        """Thread- and signal-safe: make the loop raise KeyboardInterrupt."""
        self.inbox.put(STOP)

    def _handle(self, item: object) -> None:
        if item is STOP:
            raise KeyboardInterrupt
        fn, value = item  # type: ignore[misc]
        self._now = max(self._now, self.wall())
        self._timed(fn, value)

    def _timed(self, fn: Callable, arg: object) -> None:
        if self.on_step is None:
            fn(arg)
            return
        t = time.perf_counter()
        fn(arg)
        self.on_step((time.perf_counter() - t) * 1e3)

    def _fire(self, ev: simpy.Event) -> None:
        callbacks, ev.callbacks = ev.callbacks, None
        for cb in callbacks:
            cb(ev)
        if not ev._ok and not hasattr(ev, "_defused"):
            raise ev._value

    def run_driver(self, arrivals: ArrivalSource) -> None:
        q = self._queue
        inbox = self.inbox
        while True:
            while True:  # whatever other threads posted
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
                self._handle(item)
            ta = arrivals.next_t
            te = q[0][0] if q else INF
            due = min(ta, te)
            w = self.wall()
            if due <= w:
                self._now = max(due, w)
                if te < ta:
                    _, _, _, ev = heappop(q)
                    self._timed(self._fire, ev)
                else:
                    self._timed(lambda _: arrivals.release(), None)
                continue
            if due == INF and self.outstanding <= 0:
                return
            item = self.source.wait(inbox, None if due == INF else due + self.t0)
            if item is not None:
                self._handle(item)
