"""Benchmark harness: Shoal against in-process hnswlib and numpy brute force (`python -m bench.run`)."""
