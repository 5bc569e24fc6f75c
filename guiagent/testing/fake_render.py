"""Rendering a scripted reply as each server flavour reports it (non-streaming body,
usage, errors). Mirrors SGLang's ``serving_chat.py``; see the wire facts in
:mod:`guiagent.testing.fake_server`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from guiagent.testing.fake_protocol import (
    DEFAULT_SERVED_MODEL,
    IM_END_TOKEN_ID,
    FakeReply,
    FakeRequest,
    Flavour,
    complete_cut_json,
    hermes_text,
    json_arguments,
    message_text,
)


def random_hex(n: int) -> str:
    return uuid.uuid4().hex[:n]


@dataclass
class RenderedReply:
    """A reply laid out the way one server flavour reports it."""

    content: str | None
    reasoning: str | None
    reasoning_key: str | None
    calls: list[dict[str, Any]]
    finish_reason: str
    matched_stop: int | str | None
    usage: dict[str, Any]
    # calls SGLang's parser found but dropped (tool not in the request)
    dropped: int = 0


def error_body(flavour: Flavour, status: int, message: str) -> dict[str, Any]:
    err_type = "BadRequestError" if status < 500 else "InternalServerError"
    inner = {"object": "error", "message": message, "type": err_type, "param": None, "code": status}
    if flavour == "vllm":
        return {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return inner


def _calls_text(reply: FakeReply) -> str:
    """The hermes blocks the model wrote; cut at the token limit, the last is left open."""
    cut = reply.finish_reason == "length"
    last = len(reply.tool_calls) - 1
    return "".join(
        "\n\n" + hermes_text(name, args, cut=cut and i == last)
        for i, (name, args) in enumerate(reply.tool_calls)
    )


def _raw_text(reply: FakeReply) -> str:
    """The whole generated text, as the model wrote it after the opening <think>."""
    return (reply.reasoning or "") + "</think>" + (reply.content or "") + _calls_text(reply)


def _tool_content(reply: FakeReply) -> str:
    return (reply.content or "") + _calls_text(reply)


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def prompt_tokens(request: FakeRequest) -> int:
    prompt_text = "".join(message_text(m) for m in request.messages if isinstance(m, dict))
    return _estimate_tokens(prompt_text) + 171 * len(request.image_urls) + 8 * len(request.tools)


def _usage(reply: FakeReply, flavour: Flavour, request: FakeRequest) -> dict[str, Any]:
    prompt = prompt_tokens(request)
    completion = _estimate_tokens(_raw_text(reply))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }
    if flavour != "vllm":
        usage["reasoning_tokens"] = _estimate_tokens(reply.reasoning or "")
    if reply.usage:
        usage.update(reply.usage)
        usage["total_tokens"] = reply.usage.get(
            "total_tokens", usage["prompt_tokens"] + usage["completion_tokens"]
        )
    return usage


def render_reply(
    reply: FakeReply, flavour: Flavour, request: FakeRequest, forward_unknown_tools: bool = True
) -> RenderedReply:
    tools_on = bool(request.tools) and request.body.get("tool_choice") != "none"
    calls: list[dict[str, Any]] = []
    dropped = 0
    reasoning: str | None = reply.reasoning or None
    reasoning_key: str | None = "reasoning_content"
    if flavour == "no-parsers":
        content: str | None = _raw_text(reply)
        reasoning, reasoning_key = None, None
    elif flavour == "no-tool-parser" or not tools_on:
        content = _tool_content(reply)
    else:
        content = reply.content or ""
        known = set(request.tool_names)
        # finish_reason "length": the last call was cut (its block left open, see _calls_text)
        cut = reply.finish_reason == "length" and flavour != "vllm"
        for n, (name, args) in enumerate(reply.tool_calls):
            if cut and n == len(reply.tool_calls) - 1:
                if not request.stream:
                    # hermes_detector.py detect_and_parse: raw_decode fails on the open
                    # block, so the call is lost (tool_calls may be [])
                    dropped += 1
                    break
                # base_format_detector.py streams what partial_json_parser makes of it
                args = complete_cut_json(json_arguments(args))
            if not forward_unknown_tools and flavour != "vllm" and name not in known:
                dropped += 1
                continue
            i = len(calls)
            call_id = (
                f"chatcmpl-tool-{random_hex(32)}" if flavour == "vllm" else f"call_{random_hex(24)}"
            )
            calls.append(
                {
                    "id": call_id,
                    "index": i,
                    "type": "function",
                    "function": {"name": name, "arguments": json_arguments(args)},
                }
            )
    if flavour == "vllm":
        reasoning_key = "reasoning"
    if flavour == "no-reasoning-parser":
        # --tool-call-parser without --reasoning-parser: hermes_detector.py keeps the text
        # before the first <tool_call> as content, the reasoning and its </think> included
        content = (reply.reasoning or "") + "</think>" + (content or "")
        reasoning, reasoning_key = None, None
    # non-streaming SGLang says tool_calls once it saw a <tool_call>, even if it dropped it
    finish = "tool_calls" if calls or (dropped and not request.stream) else "stop"
    if reply.finish_reason:
        finish = reply.finish_reason
    matched: int | str | None = IM_END_TOKEN_ID if finish == "stop" else None
    if flavour == "vllm":
        matched = None
    if flavour in ("sglang-old", "vllm") and not content:
        content = None
    if flavour == "vllm" and calls:
        content = None
    return RenderedReply(
        content=content,
        reasoning=reasoning,
        reasoning_key=reasoning_key,
        calls=calls,
        finish_reason=finish,
        matched_stop=matched,
        usage=_usage(reply, flavour, request),
        dropped=dropped,
    )


def completion_id(flavour: Flavour) -> str:
    return f"chatcmpl-{random_hex(32)}" if flavour == "vllm" else uuid.uuid4().hex


def completion_body(r: RenderedReply, flavour: Flavour, request: FakeRequest) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.content}
    if flavour == "vllm":
        message.update({"refusal": None, "annotations": None, "audio": None, "function_call": None})
        message["tool_calls"] = r.calls  # vLLM always sends the list, empty when no call
        message["reasoning"] = r.reasoning
    else:
        message["reasoning_content"] = r.reasoning
        if r.calls or r.dropped:
            message["tool_calls"] = r.calls
        elif flavour == "sglang-old":
            message["tool_calls"] = None
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": r.finish_reason,
    }
    if flavour != "vllm":
        choice["matched_stop"] = r.matched_stop
    else:
        choice["stop_reason"] = None
    body: dict[str, Any] = {
        "id": completion_id(flavour),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body.get("model") or DEFAULT_SERVED_MODEL,
        "choices": [choice],
        "usage": r.usage,
    }
    if flavour != "vllm":
        body["metadata"] = {"weight_version": "default"}
    return body
