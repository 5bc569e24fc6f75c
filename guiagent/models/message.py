"""An assistant message, whole or streamed, turned into a :class:`Reply`.

It copes with the shapes DESIGN.md §4b lists: tool calls parsed by the server or left as
hermes text in ``content`` or in the reasoning, ``content`` as ``""`` or ``null``,
reasoning under ``reasoning_content`` or ``reasoning``, keys absent or null alike. The
shapes are checked first (guiagent/models/wire.py); this turns them into a Reply.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from guiagent.models.errors import ModelProtocolError
from guiagent.models.hermes import THINK_CLOSE, parse_message, parse_reply
from guiagent.models.reply import Reply, ToolCall, Usage

DEFAULT_MAX_TOOL_CALLS = 16


class StreamEvent(BaseModel):
    """One increment of a streamed reply, for live display."""

    kind: Literal["reasoning", "content", "tool_call", "tool_arguments", "finish", "usage"]
    text: str = ""
    index: int | None = None
    name: str | None = None


def parse_usage(data: dict[str, Any] | None) -> Usage:
    if not isinstance(data, dict):
        return Usage()
    details = data.get("prompt_tokens_details")
    details = details if isinstance(details, dict) else {}
    completion_details = data.get("completion_tokens_details")
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    reasoning = data.get("reasoning_tokens")
    if reasoning is None:
        reasoning = completion_details.get("reasoning_tokens")
    return Usage(
        prompt_tokens=_count(data.get("prompt_tokens")) or 0,
        completion_tokens=_count(data.get("completion_tokens")) or 0,
        total_tokens=_count(data.get("total_tokens")) or 0,
        reasoning_tokens=_count(reasoning),
        cached_tokens=_count(details.get("cached_tokens")),
        image_tokens=_count(details.get("image_tokens")),
    )


def _count(value: Any) -> int | None:
    """A token count as an int; None for anything that is not a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def _text(value: Any) -> str:
    """A message's ``content`` as text: a string, null, or a list of text parts."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in value)
    return str(value)


def _reasoning_of(message: dict[str, Any]) -> str | None:
    """SGLang and older vLLM say ``reasoning_content``, newer vLLM ``reasoning``; some send both."""
    values = [message.get("reasoning_content"), message.get("reasoning")]
    texts = [v for v in values if isinstance(v, str)]
    return next((t for t in texts if t), texts[0] if texts else None)


def reply_from_message(message: dict[str, Any], finish_reason: str | None) -> Reply:
    """Build a Reply from an assistant message in any of the shapes servers send."""
    content = _text(message.get("content"))
    reasoning = _reasoning_of(message)
    errors: list[str] = []
    server_calls: list[ToolCall] = []
    for n, raw in enumerate(message.get("tool_calls") or []):
        if not isinstance(raw, dict):
            errors.append(f"tool call #{n} is not an object: {raw!r}")
            continue
        fn = raw.get("function") or {}
        if not isinstance(fn, dict):
            errors.append(f"tool call #{n}: function is not an object: {fn!r:.200}")
            continue
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            errors.append(f"tool call #{n} has no function name: {raw!r}")
            continue
        args = fn.get("arguments")
        if args is None or args == "":
            args = {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError as exc:
                errors.append(f"tool call {name!r}: arguments are not valid JSON ({exc}): {args!r}")
                continue
        if not isinstance(args, dict):
            errors.append(f"tool call {name!r}: arguments must be a JSON object, got {args!r}")
            continue
        server_calls.append(ToolCall(name=name, arguments=args, id=raw.get("id"), source="server"))
    if server_calls or errors:
        # SGLang's hermes_detector.py streams the text between two calls unfiltered when one
        # chunk holds several tokens ("\n</tool_call>\n"): the calls are parsed, drop the tag
        content = content.replace("</tool_call>", "")
        if reasoning is None and THINK_CLOSE in content:
            # a tool parser without a reasoning parser: the content holds the reasoning
            split = parse_reply(content)
            content, reasoning = split.content, split.reasoning
        reply = Reply(content=content.strip(), reasoning=reasoning, tool_calls=server_calls)
    else:
        reply = parse_message(content, reasoning)
    reply.errors = [*errors, *reply.errors]
    if reply.reasoning is None and reasoning is not None:
        reply.reasoning = reasoning
    reply.content = reply.content.strip()
    if finish_reason == "length" and reply.tool_calls:
        # a cut call cannot be told from a whole one: SGLang's streaming parser completes the
        # cut JSON ({"text": "hel" -> {"text": "hel"}, {"x": 12 -> {"x": 12}) and sends it,
        # its non-streaming one drops only the last, undecodable call; hermes text is repaired
        names = ", ".join(call.name for call in reply.tool_calls)
        reply.errors.append(
            "the reply was cut at the token limit (finish_reason 'length') in or after its "
            f"tool call ({names}); its arguments may be cut short, so it is not used"
        )
        reply.tool_calls = []
    elif finish_reason == "length":
        reply.errors.append(
            "the reply was cut at the token limit (finish_reason 'length')"
            + ("; it ended inside the reasoning" if not content.strip() else "")
        )
    elif finish_reason == "tool_calls" and not reply.tool_calls:
        # SGLang's parser drops a call to a tool that is not in the request (unless
        # SGLANG_FORWARD_UNKNOWN_TOOLS is set), and hermes_detector.py one whose JSON it
        # cannot decode (with any after it), and still reports finish_reason tool_calls
        reply.errors.append(
            "the server reported a tool call (finish_reason 'tool_calls') but returned none; "
            "it drops calls to tools that are not in the request's tools and calls whose "
            "JSON it cannot decode"
        )
    elif finish_reason in ("abort", "error", "content_filter"):
        reply.errors.append(f"the server ended the reply early (finish_reason {finish_reason!r})")
    return reply


class _StreamState:
    def __init__(
        self,
        on_event: Callable[[StreamEvent], None] | None,
        max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS,
    ) -> None:
        self.on_event = on_event
        self.max_tool_calls = max_tool_calls
        self.reasoning: list[str] = []
        self.content: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.request_id: str | None = None
        self.model: str | None = None
        self.chunks = 0
        self.done = False

    def emit(self, event: StreamEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def feed(self, obj: dict[str, Any]) -> None:
        self.chunks += 1
        self.request_id = self.request_id or obj.get("id")
        self.model = self.model or obj.get("model")
        if obj.get("usage"):
            self.usage = obj["usage"]
            self.emit(StreamEvent(kind="usage", text=json.dumps(obj["usage"])))
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or {}
            reasoning = _reasoning_of(delta)
            if reasoning:
                self.reasoning.append(reasoning)
                self.emit(StreamEvent(kind="reasoning", text=reasoning))
            text = _text(delta.get("content"))
            if text:
                self.content.append(text)
                self.emit(StreamEvent(kind="content", text=text))
            for pos, tc in enumerate(delta.get("tool_calls") or []):
                self._tool_delta(pos, tc)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
                self.emit(StreamEvent(kind="finish", text=self.finish_reason or ""))

    def _tool_delta(self, pos: int, tc: dict[str, Any]) -> None:
        index = tc.get("index")
        if not isinstance(index, int):
            index = pos
        if index not in self.calls and len(self.calls) >= self.max_tool_calls:
            raise ModelProtocolError(
                f"the stream carried more than {self.max_tool_calls} tool calls (max_tool_calls)"
            )
        entry = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
        if tc.get("id"):
            entry["id"] = tc["id"]
        fn = tc.get("function") or {}
        name = fn.get("name")
        if isinstance(name, str) and name:
            # SGLang and vLLM send the name once; some servers repeat it in every fragment
            if entry["name"] and name.startswith(entry["name"]):
                entry["name"] = name
            else:
                entry["name"] += name
            self.emit(StreamEvent(kind="tool_call", index=index, name=entry["name"]))
        args = fn.get("arguments")
        if isinstance(args, dict):  # a server that sends the whole object at once
            args = json.dumps(args, ensure_ascii=False)
        if isinstance(args, str) and args:
            entry["arguments"] += args
            self.emit(
                StreamEvent(kind="tool_arguments", index=index, text=args, name=entry["name"])
            )

    def message(self) -> dict[str, Any]:
        """The assembled message, in the non-streaming shape."""
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(self.content),
            "reasoning_content": "".join(self.reasoning) if self.reasoning else None,
        }
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "index": i,
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for i, c in sorted(self.calls.items())
            ]
        return message
