"""Agent settings and results: the boundary between the CLI/API and the loop."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guiagent.core.geometry import CoordSpace


class AgentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_url: str | None = None
    model_name: str | None = None
    api_key: str | None = None
    profile: str = "step3-vl"
    coord_space: CoordSpace | None = None  # None: the profile's
    max_image_tokens: int | None = None  # None: the profile's (Step3-VL: 670, the cost of 1280x720)
    image_format: Literal["jpeg", "png"] = "jpeg"
    jpeg_quality: int = Field(default=90, ge=30, le=100)
    sampling: dict[str, Any] = Field(default_factory=dict)  # overrides the profile's
    request_timeout_s: float = 120.0  # one deadline per request: connect, headers, whole body
    max_reply_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)  # a larger reply is refused
    max_tool_calls: int = Field(default=16, ge=1)  # tool calls in one reply, at most
    stream: bool = False
    pacore: int = Field(default=0, ge=0, le=64)  # K parallel rollouts + synthesis; 0 = off
    ground_votes: int = Field(default=1, ge=1, le=32)
    vote_radius: float = 0.02  # cluster radius as a fraction of the sent image's long side

    max_steps: int = Field(default=30, ge=1)
    max_seconds: float | None = None
    max_tokens: int | None = None
    max_invalid: int = Field(default=3, ge=1)  # consecutive invalid replies before giving up

    settle: bool = True
    settle_timeout_s: float = 3.0
    settle_quiet_ms: int = Field(default=200, ge=0)  # the screen must stay still this long
    dry_run: bool = False
    policy_path: Path | None = None
    redact_regions: list[tuple[float, float, float, float]] = Field(default_factory=list)
    redact_windows: list[str] = Field(default_factory=list)
    secret_patterns: list[str] = Field(default_factory=list)
    secrets: list[str] = Field(default_factory=list)
    record_dir: Path | None = None


StopStatus = Literal["finished", "failed", "stopped", "error"]


class RunResult(BaseModel):
    status: StopStatus
    answer: str | None = None
    stop_reason: str | None = None
    steps: int = 0
    invalid_replies: int = 0
    run_dir: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "finished"
