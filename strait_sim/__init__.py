"""strait-sim: priority- and interference-aware DNN inference scheduling on shared GPUs.

Three parts share one set of policy objects: a profiler that measures a real device into a
profile bundle, a SimPy simulator calibrated by that bundle, and a live executor that runs
the same policies on the device so the simulator can be checked against reality.
"""

__version__ = "0.1.0"
