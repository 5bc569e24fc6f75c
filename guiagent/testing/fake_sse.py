"""Streaming bodies of the fake model server: SSE chunks in SGLang's order, and faults."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from guiagent.testing.fake_protocol import DEFAULT_SERVED_MODEL, FakeReply, FakeRequest, Flavour
from guiagent.testing.fake_render import RenderedReply, completion_id, error_body


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _ascii_json(arguments: str) -> str:
    """Streamed arguments as SGLang's base_format_detector.py builds them: ``json.dumps`` of
    the parsed object, non-ASCII escaped (``"h\\u00e9"``), not the model's own spelling."""
    try:
        return json.dumps(json.loads(arguments))
    except ValueError:
        return arguments


def stream_chunks(
    reply: FakeReply, flavour: Flavour, request: FakeRequest, r: RenderedReply
) -> list[dict[str, Any]]:
    """The chat.completion.chunk objects of one streamed reply, in SGLang's order."""
    chunk_id = completion_id(flavour)
    created = int(time.time())
    model = request.body.get("model") or DEFAULT_SERVED_MODEL
    vllm = flavour == "vllm"

    def delta(**fields: Any) -> dict[str, Any]:
        if vllm:  # vLLM leaves unset fields out
            return {k: v for k, v in fields.items() if v is not None}
        base: dict[str, Any] = {"role": None, "content": None, "reasoning_content": None}
        base["tool_calls"] = None
        base.update(fields)
        return base

    def chunk(d: dict[str, Any], finish: str | None = None, matched: Any = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}
        if not vllm:
            choice["matched_stop"] = matched
        out: dict[str, Any] = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        if not vllm:
            out["usage"] = None
        return out

    size = reply.chunk_chars
    chunks = [chunk(delta(role="assistant", content=""))]
    if r.reasoning:
        key = r.reasoning_key or "reasoning_content"
        chunks += [chunk(delta(**{key: piece})) for piece in _pieces(r.reasoning, size)]
    content = r.content or ""
    if r.calls and not vllm and not content:
        # SGLang streams the whitespace the model wrote before the <tool_call>
        content = "\n\n"
    chunks += [chunk(delta(content=piece)) for piece in _pieces(content, size)]
    for call in r.calls:
        name = call["function"]["name"]
        args = call["function"]["arguments"]
        if not vllm:
            args = _ascii_json(args)
        head = {"id": call["id"], "index": call["index"], "type": "function"}
        head["function"] = {"name": name} if vllm else {"name": name, "arguments": ""}
        chunks.append(chunk(delta(tool_calls=[head])))
        for piece in _pieces(args, size):
            if vllm:
                frag: dict[str, Any] = {"index": call["index"], "function": {"arguments": piece}}
            else:
                frag = {
                    "id": None,
                    "index": call["index"],
                    "type": "function",
                    "function": {"name": None, "arguments": piece},
                }
            chunks.append(chunk(delta(tool_calls=[frag])))
    chunks.append(chunk(delta() if not vllm else {}, r.finish_reason, r.matched_stop))
    options = request.body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = r.usage
        chunks.append(usage_chunk)
    return chunks


async def sse_body(
    reply: FakeReply, flavour: Flavour, request: FakeRequest, rendered: RenderedReply
) -> AsyncIterator[bytes]:
    for n, chunk in enumerate(stream_chunks(reply, flavour, request, rendered)):
        if reply.fault in ("drop_mid_stream", "error_in_stream") and n == reply.fault_after_chunks:
            if reply.fault == "drop_mid_stream":
                # an exception here makes uvicorn cut the connection mid-body
                raise ConnectionAbortedError("fake server dropped the stream on purpose")
            error = error_body(flavour, 500, reply.error or "generation aborted")
            inner = error.get("error", error)
            yield f"data: {json.dumps({'error': inner})}\n\n".encode()
            break
        if reply.keepalive:
            yield b": keep-alive\n\n\n"
        yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
        await asyncio.sleep(0)
    if reply.fault != "no_done":
        yield b"data: [DONE]\n\n"


async def dropped_body(head: bytes) -> AsyncIterator[bytes]:
    yield head
    raise ConnectionAbortedError("fake server dropped the response on purpose")
