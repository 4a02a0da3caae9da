"""Pin glibc malloc's adaptive behaviour, so that a forward's time does not depend on
what the process ran before.

Why: on the CPU a forward allocates its activations from malloc, and glibc adapts to the
process's history in two ways that changed forward times by up to 1.7x:

- blocks above the mmap threshold (128 KiB at start) are mapped and unmapped on every
  use (page faults each time), and the threshold rises each time such a block is freed;
- every thread that allocates gets an arena of its own, whose secondary heaps are unmapped
  as soon as they are empty, so a stream's worker thread faults its pages in again.

Measured on the 2-vCPU development VM (2026-12-01, torch-cpu, 1 thread per stream, solo
medians of 15 forwards): efficientnet_b0@1 took 25-30 ms as the first unit a process
timed and 19 ms after a batch-4 forward; mobilenet_v2@4 51.5 ms or 71.5 ms by the order
the models were profiled in. The profiler times batch 1 first while live runs mix every
size, so profiles were 1.2-1.7x slower than live runs. With the mmap threshold and the trim
threshold fixed and one arena, three orders gave efficientnet_b0 17.3-19.2 / 32.7-34.3 /
47.7-50.6 / 62.5-66.1 ms at batch 1-4 and mobilenet_v2 13.3-13.8 / 24.2-28.1 /
38.0-42.4 / 49.8-55.2 ms (`strait-sim profile --cpu --only solo --reps 15`, 08:27 UTC).

Setting the thresholds with ``mallopt`` turns their adaptation off at once, whenever it is
done, so the device backends (torch-cpu, torch-cuda) call :func:`pin_malloc` when they are
built. The arena limit only counts if it is set before a second thread first allocates,
and importing numpy starts OpenBLAS's threads; so the command line's package
(``strait_sim.cli``) calls :func:`pin_arenas` before anything else is imported. The arena
limit only matters where threads allocate; a simulation runs its engine in one thread.
``arena_count`` reads the arenas glibc has (``malloc_info``) so that a bundle records what
held. Elsewhere than glibc nothing changes and the result says so.
"""

from __future__ import annotations

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's largest on 64-bit (HEAP_MAX / 2)
TRIM_THRESHOLD_BYTES = 256 << 20

_STATE: dict | None = None


def _mallopt():  # noqa: ANN202
    import ctypes

    return ctypes.CDLL(None).mallopt


def pin_arenas() -> bool:
    """One malloc arena for the whole process (effective before a second thread allocates)."""
    try:
        return _mallopt()(M_ARENA_MAX, 1) == 1
    except (OSError, AttributeError):  # no mallopt: not glibc
        return False


def pin_malloc() -> dict:
    """Fix the thresholds (and ask for one arena), once per process; say what was done."""
    global _STATE
    if _STATE is None:
        try:
            mallopt = _mallopt()
            ok = (mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
                  and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1)
        except (OSError, AttributeError):
            ok = False
        ok = ok and pin_arenas()
        _STATE = ({"pinned": True, "mmap_threshold": MMAP_THRESHOLD_BYTES,
                   "trim_threshold": TRIM_THRESHOLD_BYTES} if ok else {"pinned": False})
    return {**_STATE, "arenas": arena_count()}


def arena_count() -> int | None:
    """How many arenas glibc's malloc has now (None where that cannot be read)."""
    import ctypes
    import os
    import re
    import tempfile

    try:
        libc = ctypes.CDLL(None)
        libc.fopen.restype = ctypes.c_void_p
        libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        fd, path = tempfile.mkstemp(prefix="strait-malloc-", suffix=".xml")
        os.close(fd)
        try:
            fp = libc.fopen(path.encode(), b"w")
            if not fp:
                return None
            libc.malloc_info(0, fp)
            libc.fclose(fp)
            with open(path) as f:
                text = f.read()
        finally:
            os.unlink(path)
    except (OSError, AttributeError):
        return None
    return len(re.findall(r"<heap nr=", text)) or None
