"""What a bundle must record so that it can be trusted later: device, host, software.

Read-only: nothing here changes clocks, power limits, MIG or MPS; it only asks. NVML is
used through ``nvidia-ml-py`` (``import pynvml``) where it is installed; without it the
CUDA fields that torch can answer are still filled and the rest say why they are missing.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def cpu_device_info() -> dict:
    """The CPU as a device: model name, logical cores, memory, current clock."""
    cpuinfo = _read("/proc/cpuinfo")
    name = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                 if ln.startswith("model name")), platform.processor() or "unknown CPU")
    mhz = [float(ln.split(":", 1)[1]) for ln in cpuinfo.splitlines() if ln.startswith("cpu MHz")]
    mem_kib = next((int(ln.split()[1]) for ln in _read("/proc/meminfo").splitlines()
                    if ln.startswith("MemTotal")), 0)
    flags = next((ln.split(":", 1)[1].split() for ln in cpuinfo.splitlines()
                  if ln.startswith("flags")), [])
    return {
        "name": name,
        "kind": "cpu",
        "logical_cores": os.cpu_count(),
        "memory_bytes": mem_kib * 1024,
        "clocks": {"cpu_mhz_now": mhz[:8]},
        "isa": [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "fma") if f in flags],
        "driver": None,
        "cuda": None,
        "compute_capability": None,
        "sm_count": None,
    }


def host_info() -> dict:
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "name": socket.gethostname(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_device_info()["name"],
        "logical_cores": os.cpu_count(),
        "load_average_at_start": list(load) if load else None,
    }


def software_versions() -> dict:
    import numpy
    import pandas
    import torch

    from strait_sim import __version__ as strait_version

    out = {"strait_sim": strait_version, "torch": torch.__version__, "numpy": numpy.__version__,
           "pandas": pandas.__version__, "cuda_runtime": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available()
           else None, "torch_parallel": torch.__config__.parallel_info().splitlines()[-1]}
    try:
        import tensorrt  # type: ignore[import-not-found]

        out["tensorrt"] = tensorrt.__version__
    except Exception:
        out["tensorrt"] = None
    return out


def _nvml() -> object | None:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def _q(fn, *args):  # noqa: ANN001, ANN202 - NVML getters, any of which may be unsupported
    try:
        value = fn(*args)
    except Exception:
        return None
    return value.decode() if isinstance(value, bytes) else value


def nvml_clocks(index: int) -> dict:
    """Current/max SM and memory clocks, power, temperature, throttle reasons (NVML)."""
    nv = _nvml()
    if nv is None:
        return {"nvml": "unavailable (pip install nvidia-ml-py)"}
    h = nv.nvmlDeviceGetHandleByIndex(index)
    return {
        "sm_mhz": _q(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
        "mem_mhz": _q(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_MEM),
        "sm_max_mhz": _q(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM),
        "mem_max_mhz": _q(nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_MEM),
        "sm_app_mhz": _q(nv.nvmlDeviceGetApplicationsClock, h, nv.NVML_CLOCK_SM),
        "power_w": (_q(nv.nvmlDeviceGetPowerUsage, h) or 0) / 1000 or None,
        "power_limit_w": (_q(nv.nvmlDeviceGetEnforcedPowerLimit, h) or 0) / 1000 or None,
        "temperature_c": _q(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
        "throttle_reasons": _q(nv.nvmlDeviceGetCurrentClocksThrottleReasons, h),
    }


def cuda_device_info(index: int) -> dict:
    """The GPU: torch's view plus NVML's (driver, clocks, PCIe link, MIG, other processes)."""
    import torch

    props = torch.cuda.get_device_properties(index)
    info: dict = {
        "name": props.name,
        "kind": "cuda",
        "index": index,
        "compute_capability": f"{props.major}.{props.minor}",
        "sm_count": props.multi_processor_count,
        "memory_bytes": int(props.total_memory),
        "cuda": torch.version.cuda,
        "driver": None,
        "uuid": str(getattr(props, "uuid", "")) or None,
    }
    nv = _nvml()
    if nv is None:
        info["clocks"] = {"nvml": "unavailable (pip install nvidia-ml-py)"}
        info["driver_note"] = "driver version needs nvidia-ml-py"
        return info
    h = nv.nvmlDeviceGetHandleByIndex(index)
    info["driver"] = _q(nv.nvmlSystemGetDriverVersion)
    info["clocks"] = nvml_clocks(index)
    info["pcie"] = {"gen": _q(nv.nvmlDeviceGetCurrPcieLinkGeneration, h),
                    "width": _q(nv.nvmlDeviceGetCurrPcieLinkWidth, h),
                    "max_gen": _q(nv.nvmlDeviceGetMaxPcieLinkGeneration, h),
                    "max_width": _q(nv.nvmlDeviceGetMaxPcieLinkWidth, h)}
    mig = _q(nv.nvmlDeviceGetMigMode, h)
    info["mig_mode"] = list(mig) if isinstance(mig, list | tuple) else mig
    info["compute_mode"] = _q(nv.nvmlDeviceGetComputeMode, h)
    info["persistence_mode"] = _q(nv.nvmlDeviceGetPersistenceMode, h)
    procs = _q(nv.nvmlDeviceGetComputeRunningProcesses, h) or []
    info["other_processes"] = [{"pid": p.pid, "used_memory": getattr(p, "usedGpuMemory", None)}
                               for p in procs if p.pid != os.getpid()]
    return info
