"""Runs and sweeps: a run is fit + evaluate of one (data set, model, head, shots, seed); a sweep runs the grid.

`grid.py` expands params.yaml into (data set, model) pairs, `fingerprint.py` says what a run depends on, `run.py`
executes one run into a temporary folder renamed into place, `sweep.py` plans the grid, skips what is done and hands
the rest to an engine (`pipeline.engine`: in-process or dask.distributed).
"""
