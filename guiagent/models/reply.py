"""What a model said: the shared result type of the parser and the client."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class ToolCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None
    # where the call was found: parsed by the server, or recovered by us from content/reasoning
    source: Literal["server", "content", "reasoning"] = "content"


class Reply(BaseModel):
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None
    image_tokens: int | None = None


class Completion(BaseModel):
    """One chat completion as the client understood it."""

    reply: Reply
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    request_id: str | None = None
    model: str | None = None
    latency_s: float = 0.0
    raw_message: dict[str, Any] = Field(default_factory=dict)
