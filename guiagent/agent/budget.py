"""Budgets: stop a run after so many steps, seconds or tokens, with a clear reason."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from guiagent.models.reply import Usage


class Budget(BaseModel):
    """Limits of one run; ``None`` means no limit of that kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int | None = Field(default=30, ge=1)
    max_seconds: float | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, ge=1)


class BudgetTracker:
    """Counts steps, wall time and tokens against a :class:`Budget`.

    ``clock`` is a monotonic clock in seconds (injectable for tests). The wall-time clock
    starts at :meth:`start` (or at the first step or usage when start was not called).
    """

    def __init__(
        self, budget: Budget | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.budget = budget or Budget()
        self.clock = clock
        self.steps = 0
        self.tokens = 0
        self.started_at: float | None = None

    def start(self) -> None:
        self.started_at = self.clock()

    def _ensure_started(self) -> None:
        if self.started_at is None:
            self.start()

    def add_step(self) -> None:
        self._ensure_started()
        self.steps += 1

    def add_usage(self, usage: Usage | None) -> None:
        self._ensure_started()
        if usage is not None:
            self.tokens += max(int(usage.total_tokens), 0)

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.started_at is None else self.clock() - self.started_at

    def exceeded(self) -> str | None:
        """The reason to stop, or None while every limit holds."""
        b = self.budget
        if b.max_steps is not None and self.steps >= b.max_steps:
            return f"step budget of {b.max_steps} steps used up"
        if (
            b.max_seconds is not None
            and self.started_at is not None
            and self.elapsed_s >= b.max_seconds
        ):
            return f"wall-time budget of {b.max_seconds:g} s used up after {self.steps} steps"
        if b.max_tokens is not None and self.tokens >= b.max_tokens:
            return f"token budget of {b.max_tokens} tokens used up ({self.tokens} used)"
        return None

    def remaining_seconds(self) -> float | None:
        """Seconds left on the wall-time budget (for bounding a model call), or None."""
        if self.budget.max_seconds is None:
            return None
        return max(self.budget.max_seconds - self.elapsed_s, 0.0)

    def snapshot(self) -> dict[str, float | int | None]:
        """Figures for the step record and the report."""
        return {
            "steps": self.steps,
            "tokens": self.tokens,
            "elapsed_s": round(self.elapsed_s, 3),
            "max_steps": self.budget.max_steps,
            "max_seconds": self.budget.max_seconds,
            "max_tokens": self.budget.max_tokens,
        }
