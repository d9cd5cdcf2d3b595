"""Stage 3 alone: score one fitted head on the test split (`clipcache evaluate`).

The work is pipeline/scoring's (metrics and the evaluation record); this stage only reads params and the run folder.
"""
