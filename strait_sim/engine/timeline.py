"""The run's timeline, exported as a Chrome/Perfetto trace (``--trace-out``).

The driver records the phases of every batch with :meth:`Timeline.add` (one track per
execution slot and per copy direction of each device). :meth:`Timeline.to_chrome` joins
them with the run's per-request results, so that the trace answers "why was this request
late or dropped" and not only "what ran when":

- process "requests": each request is a slice from arrival to its end (finish or drop) on
  a lane of its class (lanes are packed so slices never overlap), with a child slice
  ``queue`` (arrival to dispatch) and ``served`` (dispatch to finish); the arguments carry
  id, model, class, items, deadline (absolute and relative, ms), status and batch;
- instant events for every arrival (track "arrivals") and every drop or rejection (track
  "drops");
- flow arrows from a request's arrival, through the compute slice of the batch that
  served it, to its end: in Perfetto, click a request to follow it into its batch;
- the device processes are named as the device is ("AMD EPYC (cpu), simulated"), not
  "GPU 0" whatever it was.

Open the JSON in https://ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

import heapq
import json
import math
from bisect import bisect_left
from pathlib import Path
from typing import Any

from strait_sim.atomic import atomic_file

US = 1e6  # trace timestamps are microseconds
REQUESTS_PID = 10_000  # the requests process, after every device


class Timeline:
    """Phases recorded during a run: (gpu, track, name, start_s, end_s, batch_id)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, str, float, float, int]] = []

    def add(self, gpu: int, track: str, name: str, start_s: float, end_s: float,
            batch_id: int) -> None:
        self.events.append((gpu, track, name, start_s, end_s, batch_id))

    def to_chrome(self, requests: Any = None, summary: dict | None = None) -> dict:
        """The trace as a dict; ``requests`` (the run's requests frame) adds the request
        slices, instants and flows; ``summary`` names the device."""
        out: list[dict] = []
        tracks: dict[tuple[int, str], int] = {}
        compute: dict[tuple[int, int], list[tuple[float, float, int]]] = {}
        for gpu, track, name, start, end, bid in self.events:
            key = (gpu, track)
            if key not in tracks:
                tracks[key] = len(tracks) + 1
                out.append({"ph": "M", "name": "thread_name", "pid": gpu,
                            "tid": tracks[key], "args": {"name": track}})
                out.append({"ph": "M", "name": "thread_sort_index", "pid": gpu,
                            "tid": tracks[key], "args": {"sort_index": tracks[key]}})
            out.append({"ph": "X", "name": name, "cat": track.split()[0], "pid": gpu,
                        "tid": tracks[key], "ts": start * US, "dur": (end - start) * US,
                        "args": {"batch": bid}})
            if track.startswith("slot ") and bid >= 0 and not name.startswith(
                    ("PREEMPTED", "FAILED")):
                slot = int(track.split()[1])
                compute.setdefault((gpu, slot), []).append((start, end, bid))
        devices = sorted({g for g, _ in tracks})
        label = device_label(summary)
        for gpu in devices:
            name = label if len(devices) == 1 and gpu == 0 else f"{label} #{gpu}"
            out.append({"ph": "M", "name": "process_name", "pid": gpu,
                        "args": {"name": name}})
            out.append({"ph": "M", "name": "process_sort_index", "pid": gpu,
                        "args": {"sort_index": gpu}})
        if requests is not None and len(requests):
            for lanes in compute.values():
                lanes.sort()
            out.extend(request_events(requests, compute, tracks))
        return {"traceEvents": out, "displayTimeUnit": "ms",
                "otherData": {"device": label}}

    def write(self, path: Path | str, requests: Any = None,
              summary: dict | None = None) -> None:
        with atomic_file(path) as fh:
            json.dump(self.to_chrome(requests, summary), fh)


def device_label(summary: dict | None) -> str:
    """The device as the run names it: the live device, or the profile's device."""
    if not summary:
        return "device"
    if summary.get("mode") == "live":
        dev = summary.get("device", {}) or {}
        return f"{dev.get('name', 'device')} ({dev.get('kind', '?')}), live"
    prof = summary.get("profile", {}) or {}
    return f"{prof.get('device') or 'device'} ({prof.get('kind') or '?'}), simulated"


def _finite(v: float) -> bool:
    return v is not None and not math.isnan(v)


def _serving_batch(compute: dict, gpu: int, slot: int, start: float,
                   finish: float) -> tuple[float, float, int] | None:
    """The compute slice on (gpu, slot) that served a request dispatched at ``start``:
    the last one to begin at or after the dispatch and no later than the finish."""
    spans = compute.get((gpu, slot))
    if not spans:
        return None
    i = bisect_left(spans, (start - 1e-9, -math.inf, -1))
    best = None
    while i < len(spans) and spans[i][0] <= finish + 1e-9:
        best = spans[i]
        i += 1
    return best


def request_events(requests: Any, compute: dict, tracks: dict) -> list[dict]:
    """Slices, instants and flows of the requests (see the module docstring)."""
    out: list[dict] = []
    pid = REQUESTS_PID
    out.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": "requests"}})
    out.append({"ph": "M", "name": "process_sort_index", "pid": pid,
                "args": {"sort_index": -1}})
    tids = {"arrivals": 1, "drops": 2}
    for name, tid in tids.items():
        out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                    "args": {"name": name}})
    lane_ends: dict[str, list[tuple[float, int]]] = {"high": [], "low": []}
    lane_count: dict[str, int] = {"high": 0, "low": 0}
    lane_tid: dict[tuple[str, int], int] = {}
    cols = ("id", "model", "priority", "arrival_s", "deadline_s", "start_s", "finish_s",
            "gpu", "slot", "status", "items", "batch_size")
    have = [c for c in cols if c in requests.columns]
    frame = requests[have].sort_values("arrival_s", kind="stable")
    for row in frame.itertuples(index=False):
        r = row._asdict()
        cls, arrival, finish = str(r["priority"]), float(r["arrival_s"]), float(r["finish_s"])
        end = finish if _finite(finish) else arrival
        rid = int(r["id"])
        args = {"id": rid, "model": str(r["model"]), "class": cls,
                "items": int(r.get("items", 1)),
                "deadline_s": round(float(r["deadline_s"]), 9),
                "deadline_ms": round((float(r["deadline_s"]) - arrival) * 1e3, 6),
                "status": str(r["status"])}
        out.append({"ph": "i", "s": "t", "name": f"arrival {cls}", "cat": "arrival",
                    "pid": pid, "tid": tids["arrivals"], "ts": arrival * US, "args": args})
        # the first lane of this class free at the arrival (min-heap of lane ends)
        heap = lane_ends.setdefault(cls, [])
        if heap and heap[0][0] <= arrival:
            _, lane = heapq.heappop(heap)
        else:
            lane_count[cls] = lane_count.get(cls, 0) + 1
            lane = lane_count[cls]
        heapq.heappush(heap, (end, lane))
        if (cls, lane) not in lane_tid:
            tid = 100 + len(lane_tid)
            lane_tid[(cls, lane)] = tid
            out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                        "args": {"name": f"{cls} priority, lane {lane}"}})
            out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                        "args": {"sort_index": tid + (0 if cls == "high" else 100_000)}})
        tid = lane_tid[(cls, lane)]
        start = float(r["start_s"]) if _finite(float(r["start_s"])) else None
        batch = None
        if start is not None and _finite(finish):
            batch = _serving_batch(compute, int(r["gpu"]), int(r["slot"]), start, finish)
        if batch is not None:
            args["batch"] = batch[2]
            args["batch_size"] = int(r.get("batch_size", 0))
        out.append({"ph": "X", "name": f"{r['model']} #{rid} ({args['status']})",
                    "cat": f"request,{cls}", "pid": pid, "tid": tid, "ts": arrival * US,
                    "dur": (end - arrival) * US, "args": args})
        queue_end = start if start is not None else end
        out.append({"ph": "X", "name": "queue", "cat": "queue", "pid": pid, "tid": tid,
                    "ts": arrival * US, "dur": (queue_end - arrival) * US,
                    "args": {"id": rid}})
        if start is not None and _finite(finish):
            out.append({"ph": "X", "name": "served", "cat": "served", "pid": pid,
                        "tid": tid, "ts": start * US, "dur": (finish - start) * US,
                        "args": {"id": rid}})
        if args["status"] in ("dropped", "rejected", "failed"):
            out.append({"ph": "i", "s": "t", "name": f"{args['status']} {cls}",
                        "cat": "drop", "pid": pid, "tid": tids["drops"], "ts": end * US,
                        "args": args})
        # the flow: arrival (queue slice) -> the batch's compute slice -> the end
        inside = min(1.0, (end - arrival) * US / 2)  # just inside the request's slice
        out.append({"ph": "s", "id": rid, "name": "request", "cat": "flow", "pid": pid,
                    "tid": tid, "ts": arrival * US + inside})
        if batch is not None:
            bstart, bend, _bid = batch
            slot_tid = tracks.get((int(r["gpu"]), f"slot {int(r['slot'])}"))
            if slot_tid is not None:
                out.append({"ph": "t", "id": rid, "name": "request", "cat": "flow",
                            "pid": int(r["gpu"]), "tid": slot_tid,
                            "ts": (bstart + (bend - bstart) / 2) * US})
        out.append({"ph": "f", "bp": "e", "id": rid, "name": "request", "cat": "flow",
                    "pid": pid, "tid": tid, "ts": end * US - inside})
    return out


def is_timeline_file(path: Path | str) -> bool | None:
    """Whether an existing file is a timeline strait-sim wrote (None: there is none): a
    timeline may replace only its own kind, never a user's file of that name."""
    from strait_sim.output_folder import file_start

    start = file_start(path, 16)
    return None if start is None else start == b'{"traceEvents": '
