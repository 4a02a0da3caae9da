"""Refuse to start a live run on a device that is already busy (unless forced).

A live run measures latencies; another job on the same device would make them
meaningless without anyone noticing. So before a run:

- CUDA: through NVML (``nvidia-ml-py``, ``import pynvml``) where importable: GPU
  utilisation over the last sample period, and compute processes other than this one.
  The device is busy when utilisation is above ``threshold`` (a fraction, default 0.10)
  or another process computes on it. Without NVML the check cannot be made; the result
  says so and the run goes on.
- CPU: the fraction of CPU time spent busy over the next half second, from
  ``/proc/stat`` (Linux; no extra dependency). Busy above ``threshold`` (default 0.5).
  The 1-minute load average is recorded beside it, and is the measure only where
  ``/proc/stat`` does not exist: it lags by a minute, so a live run started right after
  another one (``validate`` twice in a row) would be refused for the first run's load.

The observation is recorded in the run's summary either way.
"""

from __future__ import annotations

import contextlib
import os
import time

from strait_sim.errors import UserError

DEFAULT_THRESHOLD = {"cuda": 0.10, "cpu": 0.5}


class DeviceBusyError(UserError):
    """The device is in use by something else; ``--force`` starts anyway."""


CPU_WINDOW_S = 0.5


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, or None without ``/proc/stat``."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def cpu_utilisation(window_s: float = CPU_WINDOW_S) -> float | None:
    """Busy fraction of all CPUs over the next ``window_s`` seconds (this process sleeps
    meanwhile, so it counts only others); None where ``/proc/stat`` cannot be read."""
    first = _cpu_times()
    if first is None:
        return None
    time.sleep(window_s)
    second = _cpu_times()
    if second is None or second[1] <= first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1])


def cpu_load() -> dict:
    cores = os.cpu_count() or 1
    try:
        load1: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):
        load1 = None
    util = cpu_utilisation()
    if util is not None:
        return {"checked": True, "utilization": util, "window_s": CPU_WINDOW_S,
                "load1": load1, "cores": cores, "busy": util}
    if load1 is None:
        return {"checked": False, "why": "neither /proc/stat nor a load average here"}
    return {"checked": True, "load1": load1, "cores": cores, "busy": load1 / cores}


def describe_load(obs: dict) -> str:
    """The observation in words, for the refusal and for the report: on the CPU
    'CPU 12% busy over 0.5 s (load average 0.40 on 2 cores)' (or the load average alone),
    on CUDA 'utilisation 12%'."""
    if obs.get("kind") != "cpu":
        return f"utilisation {100 * obs['utilization']:.0f}%"
    load = (f"load average {obs['load1']:.2f} on {obs['cores']} cores"
            if obs.get("load1") is not None else "")
    if obs.get("utilization") is None:
        return load
    busy = f"CPU {100 * obs['utilization']:.0f}% busy over {obs['window_s']:g} s"
    return f"{busy} ({load})" if load else busy


def cuda_load(index: int) -> dict:
    try:
        import pynvml
    except ImportError:
        return {"checked": False, "why": "nvidia-ml-py (pynvml) is not installed"}
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVML library missing or driver mismatch
        return {"checked": False, "why": f"NVML unavailable: {exc}"}
    try:
        handle = _nvml_handle(pynvml, index)
        util = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0
        procs = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
        others = sorted({p.pid for p in procs if p.pid != os.getpid()})
        return {"checked": True, "utilization": util, "other_pids": others, "busy": util}
    except Exception as exc:
        return {"checked": False, "why": f"NVML query failed: {exc}"}
    finally:
        with contextlib.suppress(Exception):  # already shut down: nothing to release
            pynvml.nvmlShutdown()


def _nvml_handle(pynvml, index: int):
    """NVML's handle of CUDA device ``index`` (by PCI bus id: indices may differ)."""
    try:
        import torch

        props = torch.cuda.get_device_properties(index)
        bus = f"{props.pci_domain_id:08x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        return pynvml.nvmlDeviceGetHandleByPciBusId(bus.encode())
    except Exception:  # old torch without PCI ids, or no match: fall back to the index
        return pynvml.nvmlDeviceGetHandleByIndex(index)


def check_device_idle(kind: str, index: int | None = None, *, threshold: float | None = None,
                      force: bool = False) -> dict:
    """Observe the device's load; raise :class:`DeviceBusyError` if busy and not forced."""
    limit = DEFAULT_THRESHOLD[kind] if threshold is None else float(threshold)
    if not limit >= 0:  # also refuses NaN
        raise UserError(f"busy threshold must be >= 0, got {limit}")
    obs = cpu_load() if kind == "cpu" else cuda_load(int(index or 0))
    obs.update({"kind": kind, "threshold": limit, "forced": force})
    if not obs["checked"]:
        return obs
    reasons = []
    if obs["busy"] > limit:
        reasons.append(f"{describe_load(obs)} is above the threshold {limit:g}")
    if obs.get("other_pids"):
        reasons.append(f"other processes compute on it (pids {obs['other_pids']})")
    obs["refused"] = bool(reasons) and not force
    if reasons and not force:
        device = "the CPU" if kind == "cpu" else f"GPU {index}"
        raise DeviceBusyError(f"{device} is busy ({'; '.join(reasons)}): live latencies would "
                              f"be meaningless; add --force to run anyway")
    obs["busy_reasons"] = reasons
    return obs
