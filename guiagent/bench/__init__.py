"""Benchmarks: each module exposes run(quick) -> list of result dicts."""
