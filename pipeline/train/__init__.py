"""Stage 2 alone: fit one head on one few-shot cache into its run folder (`clipcache train`).

The work is the heads' (pipeline/heads/fitting.py); this stage only reads params and writes the run folder.
"""
