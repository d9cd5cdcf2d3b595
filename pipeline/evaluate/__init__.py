"""Stage 3 in the library: score a fitted head on the test split (metrics, evaluation records)."""
