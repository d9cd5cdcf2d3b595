"""Stage 2 in the library: the shared training loop and the train stage."""
