"""Datasets: the synthetic hand generator and the sharded on-disk format."""
