"""Refuse to start a live run on a device that is already busy (unless forced).

A live run measures latencies; another job on the same device would make them
meaningless without anyone noticing. So before a run:

- CUDA: through NVML (``nvidia-ml-py``, ``import pynvml``) where importable: GPU
  utilisation over the last sample period, and compute processes other than this one.
  The device is busy when utilisation is above ``threshold`` (a fraction, default 0.10)
  or another process computes on it. Without NVML the check cannot be made; the result
  says so and the run goes on.
- CPU: the 1-minute load average divided by the logical core count (``os.getloadavg``;
  no extra dependency). Busy above ``threshold`` (default 0.5).

The observation is recorded in the run's summary either way.
"""

from __future__ import annotations

import contextlib
import os

from strait_sim.errors import UserError

DEFAULT_THRESHOLD = {"cuda": 0.10, "cpu": 0.5}


class DeviceBusyError(UserError):
    """The device is in use by something else; ``--force`` starts anyway."""


def cpu_load() -> dict:
    cores = os.cpu_count() or 1
    try:
        load1 = os.getloadavg()[0]
    except (AttributeError, OSError):
        return {"checked": False, "why": "no load average on this platform"}
    return {"checked": True, "load1": load1, "cores": cores, "busy": load1 / cores}


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
        what = (f"load average {obs['load1']:.2f} on {obs['cores']} cores"
                if kind == "cpu" else f"utilisation {100 * obs['utilization']:.0f}%")
        reasons.append(f"{what} is above the threshold {limit:g}")
    if obs.get("other_pids"):
        reasons.append(f"other processes compute on it (pids {obs['other_pids']})")
    obs["refused"] = bool(reasons) and not force
    if reasons and not force:
        device = "the CPU" if kind == "cpu" else f"GPU {index}"
        raise DeviceBusyError(f"{device} is busy ({'; '.join(reasons)}): live latencies would "
                              f"be meaningless; add --force to run anyway")
    obs["busy_reasons"] = reasons
    return obs
