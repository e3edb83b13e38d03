"""Benchmarks: one script per measurement (see docs/benchmarks.md)."""
