"""The ``strait-sim`` command line."""

# One malloc arena before any import starts a thread (numpy starts OpenBLAS's): the device
# commands' forward times must not depend on malloc's history (profiler/malloc_pin.py).
from strait_sim.profiler.malloc_pin import pin_arenas

pin_arenas()
