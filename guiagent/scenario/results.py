"""What running scenario steps reports: one :class:`StepResult` a step, a :class:`ScenarioResult`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

StepStatus = Literal["passed", "failed", "skipped"]


class StepResult(BaseModel):
    index: int
    kind: str
    label: str
    status: StepStatus
    ms: float = 0.0
    error: str | None = None
    frame_path: str | None = None
    detail: str = ""


class ScenarioResult(BaseModel):
    name: str
    path: str | None = None
    status: Literal["passed", "failed", "error"]
    steps: list[StepResult] = Field(default_factory=list)
    ms: float = 0.0
    run_dir: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def failure_message(self) -> str:
        step = self.failed_step
        if step is not None and step.error:
            where = f" (frame: {step.frame_path})" if step.frame_path else ""
            return f"{step.error}{where}"
        return self.error or ""
