"""What a bundle must record so that it can be trusted later: device, host, software.

Read-only: nothing here changes clocks, power limits, MIG or MPS; it only asks. NVML is
used through ``nvidia-ml-py`` (``import pynvml``) where it is installed; without it the
CUDA fields that torch can answer are still filled and the rest say why they are missing.
The copy-engine count (how many host<->device copies can run at once, which decides
whether two same-direction copies share bandwidth or queue) comes from the CUDA runtime
through ``cuda-bindings`` (``cuda.bindings.runtime``; torch does not expose it). MPS state
is read from NVML's MPS process list, the MPS environment variables and the process table.

Status: the CUDA and NVML paths have not run on a GPU yet (no GPU in the development
sessions); the function and enum names were checked against cuda-bindings 13.5 and
nvidia-ml-py 13.615 installed on a CPU-only machine, where the calls answer "no driver".
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
        "throttle_reasons": _q(getattr(nv, "nvmlDeviceGetCurrentClocksEventReasons", None)
                               or nv.nvmlDeviceGetCurrentClocksThrottleReasons, h),
    }


def copy_engines(index: int) -> dict:
    """Copy engines and overlap abilities of GPU ``index`` from the CUDA runtime.

    ``async_engine_count``: 1 means copies in the two directions share one engine (they
    queue); 2 or more means one engine per direction at least. It does not say how two
    copies in the *same* direction are served (that the transfers step measures).
    """
    try:
        from cuda.bindings import runtime as rt  # type: ignore[import-not-found]
        source = "cuda-bindings (cuda.bindings.runtime)"
    except ImportError:
        try:
            from cuda import cudart as rt  # type: ignore[import-not-found,no-redef]
            source = "cuda-python (cuda.cudart)"
        except ImportError:
            return {"source": None, "error": "cuda-bindings not installed"}
    out: dict = {"source": source}
    for key, attr in (("async_engine_count", "cudaDevAttrAsyncEngineCount"),
                      ("concurrent_kernels", "cudaDevAttrConcurrentKernels"),
                      ("gpu_overlap", "cudaDevAttrGpuOverlap")):
        try:
            err, value = rt.cudaDeviceGetAttribute(getattr(rt.cudaDeviceAttr, attr), index)
        except Exception as exc:  # a missing driver library raises instead of returning
            out[f"{key}_error"] = f"{type(exc).__name__}: {exc}"[:200]
            continue
        if err == rt.cudaError_t.cudaSuccess:
            out[key] = int(value)
        else:
            out[f"{key}_error"] = str(err)
    return out


def _processes_named(names: tuple[str, ...]) -> list[int]:
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() in names:
                pids.append(int(comm.parent.name))
        except (OSError, ValueError):
            continue
    return sorted(pids)


def mps_state(nv: object | None = None, handle: object | None = None) -> dict:
    """Is the CUDA Multi-Process Service in play? (read-only: nothing is started)."""
    env = {k: os.environ[k] for k in ("CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY",
                                      "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE") if k in os.environ}
    pipe_dir = Path(env.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    out: dict = {"env": env, "pipe_dir": str(pipe_dir), "pipe_dir_exists": pipe_dir.exists(),
                 "control_daemon_pids": _processes_named(("nvidia-cuda-mps-control",)),
                 "server_pids": _processes_named(("nvidia-cuda-mps-server",))}
    if nv is not None and handle is not None:
        fn = getattr(nv, "nvmlDeviceGetMPSComputeRunningProcesses", None)
        procs = _q(fn, handle) if fn is not None else None
        out["nvml_mps_processes"] = None if procs is None else len(procs)
    out["active"] = bool(out["control_daemon_pids"] or out["server_pids"]
                         or out.get("nvml_mps_processes"))
    return out


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
    info["copy_engines"] = copy_engines(index)
    nv = _nvml()
    if nv is None:
        info["clocks"] = {"nvml": "unavailable (pip install nvidia-ml-py)"}
        info["driver_note"] = "driver version needs nvidia-ml-py"
        info["mps"] = mps_state()
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
    info["mps"] = mps_state(nv, h)
    info["persistence_mode"] = _q(nv.nvmlDeviceGetPersistenceMode, h)
    procs = _q(nv.nvmlDeviceGetComputeRunningProcesses, h) or []
    info["other_processes"] = [{"pid": p.pid, "used_memory": getattr(p, "usedGpuMemory", None)}
                               for p in procs if p.pid != os.getpid()]
    return info
