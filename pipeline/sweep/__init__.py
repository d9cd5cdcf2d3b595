"""The sweep stage: a run is fit + evaluate of one (data set, model, head, shots, seed); a sweep runs the grid.

`pipeline/grid.py` expands params.yaml into (data set, model) pairs, `fingerprint.py` says what a run depends on,
`execute.py` executes one run into a temporary folder renamed into place (fitting by pipeline/heads/fitting.py,
scoring by pipeline/scoring), `plan.py` plans the grid, skips what is done and hands the rest to an engine
(`pipeline.engine`: in-process or dask.distributed).
"""
