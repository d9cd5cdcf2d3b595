"""Stage 3 in the library: score fitted heads on the test split, aggregate runs, draw the report."""
