"""Benchmarks: the project measured against its baseline, side by side in one run."""
