"""Datasets: readers of the public depth datasets, the synthetic hand generator and the v2v-shards format."""
