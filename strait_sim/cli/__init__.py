"""The ``strait-sim`` command line."""
