"""Parameter sweeps: grids of simulated runs, resumable, on local processes or Dask.

- :mod:`.spec` turns partial parameter sets into fully resolved, JSON-able point specs;
- :mod:`.points` runs one spec and names it by a hash (:func:`~.points.point_key`);
- :mod:`.store` is the on-disk layout of a sweep folder (one atomic folder per point);
- :mod:`.executors` runs many specs on a process pool or a Dask cluster;
- :mod:`.experiment_file` reads and validates the experiment TOML and expands its grid;
- :mod:`.table` flattens summaries into the tidy ``results.parquet``;
- :mod:`.report` draws tables and plots from a finished sweep folder.
"""
