"""The simulated timeline, exported as a Chrome/Perfetto trace (``--trace-out``).

One process per GPU; one track (thread) per execution slot and per PCIe direction.
Open the JSON in https://ui.perfetto.dev or chrome://tracing.
"""

from __future__ import annotations

import json
from pathlib import Path

from strait_sim.atomic import atomic_file


class Timeline:
    """Phases recorded during a run: (gpu, track, name, start_s, end_s, batch_id)."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, str, float, float, int]] = []

    def add(self, gpu: int, track: str, name: str, start_s: float, end_s: float,
            batch_id: int) -> None:
        self.events.append((gpu, track, name, start_s, end_s, batch_id))

    def to_chrome(self) -> dict:
        tracks: dict[tuple[int, str], int] = {}
        out: list[dict] = []
        for gpu, track, name, start, end, bid in self.events:
            key = (gpu, track)
            if key not in tracks:
                tracks[key] = len(tracks) + 1
                out.append({"ph": "M", "name": "thread_name", "pid": gpu,
                            "tid": tracks[key], "args": {"name": track}})
            out.append({"ph": "X", "name": name, "cat": track.split()[0], "pid": gpu,
                        "tid": tracks[key], "ts": start * 1e6, "dur": (end - start) * 1e6,
                        "args": {"batch": bid}})
        for gpu in sorted({g for g, _ in tracks}):
            out.append({"ph": "M", "name": "process_name", "pid": gpu,
                        "args": {"name": f"GPU {gpu}"}})
        return {"traceEvents": out, "displayTimeUnit": "ms"}

    def write(self, path: Path | str) -> None:
        with atomic_file(path) as fh:
            json.dump(self.to_chrome(), fh)
