"""Benchmarks: each module exposes run(quick) -> list of result dicts (name, median_ms, ...)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def median_ms(fn: Callable[[], Any], repeats: int, warmup: bool = True) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` calls (after one warm-up call)."""
    if warmup:
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)
