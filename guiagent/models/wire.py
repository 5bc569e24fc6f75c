"""The OpenAI chat-completion response as pydantic models: what a server may send, checked.

Lenient where SGLang, vLLM and parser-less servers differ (DESIGN.md §4b): any key may be
absent or null, ``content`` is a string, null or a list of parts, reasoning comes as
``reasoning_content`` or ``reasoning``, ids are any string (or a number), unknown keys are
ignored. Strict where a wrong type would be misread: counts are integers (not strings,
lists, floats or NaN), ``finish_reason`` is a string, ``choices``, ``message``, ``delta``,
``tool_calls`` and ``function`` have their container types. :func:`check_response` and
:func:`check_chunk` turn any other shape into one line naming the first wrong field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

Id = StrictStr | StrictInt | None
Text = StrictStr | list[StrictStr | dict[str, Any]] | None
Count = StrictInt | None


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WireFunction(_Wire):
    name: StrictStr | None = None
    # a JSON string as the spec says; some servers send the object itself
    arguments: StrictStr | dict[str, Any] | None = None


class WireToolCall(_Wire):
    id: Id = None
    index: Count = None
    type: StrictStr | None = None
    function: WireFunction | None = None


class WireMessage(_Wire):
    role: StrictStr | None = None
    content: Text = None
    reasoning_content: StrictStr | None = None
    reasoning: StrictStr | None = None
    tool_calls: list[WireToolCall] | None = None


class WireChoice(_Wire):
    index: Count = None
    message: WireMessage | None = None
    finish_reason: StrictStr | None = None


class WireTokenDetails(_Wire):
    cached_tokens: Count = Field(default=None, ge=0)
    image_tokens: Count = Field(default=None, ge=0)
    reasoning_tokens: Count = Field(default=None, ge=0)


class WireUsage(_Wire):
    prompt_tokens: Count = Field(default=None, ge=0)
    completion_tokens: Count = Field(default=None, ge=0)
    total_tokens: Count = Field(default=None, ge=0)
    reasoning_tokens: Count = Field(default=None, ge=0)
    # vLLM sends [] or null where SGLang sends an object or null: anything else is ignored
    prompt_tokens_details: WireTokenDetails | list[Any] | None = None
    completion_tokens_details: WireTokenDetails | list[Any] | None = None


class WireResponse(_Wire):
    id: Id = None
    model: StrictStr | None = None
    choices: list[WireChoice] | None = None
    usage: WireUsage | None = None


class WireDelta(WireMessage):
    pass


class WireChunkChoice(_Wire):
    index: Count = None
    delta: WireDelta | None = None
    finish_reason: StrictStr | None = None


class WireChunk(_Wire):
    id: Id = None
    model: StrictStr | None = None
    choices: list[WireChunkChoice] | None = None
    usage: WireUsage | None = None


def describe(exc: ValidationError) -> str:
    """The first wrong field of a validation error as ``choices.0.message: expected ...``."""
    first = exc.errors(include_url=False)[0]
    # a union reports one error per member: the location before the member name is the field
    loc = [str(p) for p in first["loc"] if not str(p).startswith(("str", "int", "list", "dict"))]
    value = repr(first.get("input"))
    if len(value) > 80:
        value = value[:77] + "..."
    more = len(exc.errors()) - 1
    tail = (
        f" (and {more} more)" if more > 0 and len({e["loc"][:1] for e in exc.errors()}) > 1 else ""
    )
    return f"{'.'.join(loc) or 'body'}: {first['msg'].lower()}, got {value}{tail}"


def check_response(data: dict[str, Any]) -> str | None:
    """None when a non-streaming response has a shape we understand, else what is wrong."""
    try:
        WireResponse.model_validate(data)
    except ValidationError as exc:
        return describe(exc)
    return None


def check_chunk(data: dict[str, Any]) -> str | None:
    """None when a streamed chunk has a shape we understand, else what is wrong."""
    try:
        WireChunk.model_validate(data)
    except ValidationError as exc:
        return describe(exc)
    return None
