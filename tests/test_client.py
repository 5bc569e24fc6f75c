"""ModelClient against the fake SGLang server over real loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from guiagent.actions import ActionSpace, Click
from guiagent.geometry import CoordSpace, Size
from guiagent.models.openai_client import (
    ModelClient,
    ModelHTTPError,
    ModelProtocolError,
    ModelServerNotReady,
    ModelServerUnreachable,
    ModelTimeout,
    StreamEvent,
    image_content,
    normalise_base_url,
)
from guiagent.models.reply import Completion
from guiagent.testing.fake_server import FakeModelServer, FakeReply

# the click tool exactly as the agent sends it
TOOLS = ActionSpace([Click]).tools_json(CoordSpace.IMAGE, Size(1280, 720))
MESSAGES = [{"role": "user", "content": "Click the OK button."}]
REASONING = "The OK button is at the bottom right."


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


def _script(server: FakeModelServer, reply: FakeReply) -> None:
    server.responder = lambda request: reply


def _complete(server: FakeModelServer, stream: bool = False, **client_kw: Any) -> Completion:
    async def go() -> Completion:
        kw = {"backoff_s": 0.01, **client_kw}
        async with ModelClient(server.url, **kw) as client:
            return await client.complete(MESSAGES, TOOLS, stream=stream)

    return asyncio.run(go())


def _both(server: FakeModelServer, reply: FakeReply) -> tuple[Completion, Completion]:
    _script(server, reply)
    return _complete(server), _complete(server, stream=True)


def _call(c: Completion) -> tuple[str, dict[str, Any], str]:
    (call,) = c.reply.tool_calls
    return call.name, call.arguments, call.source


CLICK = FakeReply(reasoning=REASONING, tool_calls=[("click", {"x": 640, "y": 360})])


def test_server_parsed_tool_calls(server: FakeModelServer) -> None:
    plain, streamed = _both(server, CLICK)
    for c in (plain, streamed):
        assert _call(c) == ("click", {"x": 640, "y": 360}, "server")
        assert c.reply.tool_calls[0].id.startswith("call_")
        assert c.reply.reasoning == REASONING
        assert c.reply.content == ""
        assert c.finish_reason == "tool_calls"
        assert c.reply.errors == []
        assert c.model == "stepfun-ai/Step3-VL-10B"
        assert c.usage.completion_tokens > 0 and c.usage.reasoning_tokens is not None
    body = json.loads(server.last_request.raw)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["model"] == "stepfun-ai/Step3-VL-10B"  # learnt from /v1/models
    assert body["tool_choice"] == "auto"
    assert body["temperature"] == 1.0 and body["top_p"] == 1.0 and body["top_k"] == -1
    assert "max_completion_tokens" in body and "max_tokens" not in body


@pytest.mark.parametrize("flavour", ["no-tool-parser", "no-parsers", "vllm", "sglang-old"])
def test_flavours_give_the_same_reply(server: FakeModelServer, flavour: str) -> None:
    plain, streamed = _both(server, CLICK.model_copy(update={"flavour": flavour}))
    expected_source = "server" if flavour in ("vllm", "sglang-old") else "content"
    for c in (plain, streamed):
        assert _call(c) == ("click", {"x": 640, "y": 360}, expected_source)
        assert c.reply.reasoning == REASONING
        assert c.reply.content == ""
        assert c.reply.errors == []


def test_tool_call_inside_reasoning(server: FakeModelServer) -> None:
    reasoning = 'I will click OK.\n<tool_call>\n{"name": "click", "arguments": {"x": 5, "y": 6}}\n</tool_call>'
    plain, streamed = _both(server, FakeReply(reasoning=reasoning, content=""))
    for c in (plain, streamed):
        assert _call(c) == ("click", {"x": 5, "y": 6}, "reasoning")
        assert "I will click OK." in (c.reply.reasoning or "")


def test_empty_content_and_cut_reply(server: FakeModelServer) -> None:
    plain, streamed = _both(
        server, FakeReply(reasoning="still thinking about", finish_reason="length")
    )
    for c in (plain, streamed):
        assert c.reply.content == ""
        assert c.reply.tool_calls == []
        assert c.reply.reasoning == "still thinking about"
        assert c.finish_reason == "length"
        assert any("token limit" in e for e in c.reply.errors)


def test_non_ascii_answer_and_usage_details(server: FakeModelServer) -> None:
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 40,
        "prompt_tokens_details": {"cached_tokens": 512, "image_tokens": 836},
    }
    plain, streamed = _both(
        server, FakeReply(reasoning="r", content="Le titre est « Été » ✓", usage=usage)
    )
    for c in (plain, streamed):
        assert c.reply.content == "Le titre est « Été » ✓"
        assert c.usage.cached_tokens == 512 and c.usage.image_tokens == 836
        assert c.usage.total_tokens == 940


def test_streaming_equals_non_streaming_with_two_calls(server: FakeModelServer) -> None:
    reply = FakeReply(
        reasoning="two steps " * 20,
        content="Doing it.",
        tool_calls=[("click", {"x": 1.5, "y": 2}), ("type", {"text": 'héllo "quoted" {braces}'})],
        chunk_chars=3,
    )
    events: list[StreamEvent] = []

    async def go() -> tuple[Completion, Completion]:
        async with ModelClient(server.url) as client:
            a = await client.complete(MESSAGES, TOOLS)
            b = await client.complete(MESSAGES, TOOLS, stream=True, on_event=events.append)
            return a, b

    _script(server, reply)
    plain, streamed = asyncio.run(go())
    strip = {"id"}
    assert [c.model_dump(exclude=strip) for c in plain.reply.tool_calls] == [
        c.model_dump(exclude=strip) for c in streamed.reply.tool_calls
    ]
    assert plain.reply.content == streamed.reply.content == "Doing it."
    assert plain.reply.reasoning == streamed.reply.reasoning
    assert plain.usage == streamed.usage
    kinds = {e.kind for e in events}
    assert {"reasoning", "content", "tool_call", "tool_arguments", "finish", "usage"} <= kinds
    assert "".join(e.text for e in events if e.kind == "reasoning") == reply.reasoning
    args_1 = "".join(e.text for e in events if e.kind == "tool_arguments" and e.index == 1)
    assert json.loads(args_1) == {"text": 'héllo "quoted" {braces}'}


def test_unparsable_server_arguments_are_an_error_entry(server: FakeModelServer) -> None:
    # vLLM passes what the model wrote; broken JSON must become an error entry, not a crash
    reply = FakeReply(
        content="", tool_calls=[("click", "{x: oops"), ("click", {"x": 1, "y": 2})], flavour="vllm"
    )
    plain, streamed = _both(server, reply)
    for c in (plain, streamed):
        assert [(t.name, t.arguments) for t in c.reply.tool_calls] == [("click", {"x": 1, "y": 2})]
        assert len(c.reply.errors) == 1 and "not valid JSON" in c.reply.errors[0]


def test_500_is_retried_then_raised(server: FakeModelServer) -> None:
    _script(server, FakeReply(status=500, error="engine crashed"))
    before = server.request_count
    with pytest.raises(ModelHTTPError) as info:
        _complete(server, retries=2)
    assert info.value.status == 500
    assert "engine crashed" in str(info.value) and server.url in str(info.value)
    assert server.request_count - before == 3


def test_500_then_success_recovers(server: FakeModelServer) -> None:
    script = [FakeReply(status=503, error="busy"), CLICK]
    server.responder = lambda request: script.pop(0)
    assert _call(_complete(server))[0] == "click"


def test_400_is_not_retried(server: FakeModelServer) -> None:
    _script(server, FakeReply(status=400, error="context too long"))
    before = server.request_count
    with pytest.raises(ModelHTTPError) as info:
        _complete(server, retries=3)
    assert info.value.status == 400 and info.value.server_message == "context too long"
    assert server.request_count - before == 1
    _script(server, FakeReply(status=400, error="nested", flavour="vllm"))
    with pytest.raises(ModelHTTPError, match="nested"):
        _complete(server, stream=True)


def test_timeout(server: FakeModelServer) -> None:
    _script(server, FakeReply(fault="hang"))
    for stream in (False, True):
        with pytest.raises(ModelTimeout, match=re.escape(server.url)):
            _complete(server, stream=stream, timeout_s=0.3)


def test_connection_refused_names_the_url() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}"

    async def go() -> None:
        async with ModelClient(url, model="m", retries=1, backoff_s=0.01) as client:
            await client.complete(MESSAGES)

    with pytest.raises(ModelServerUnreachable) as info:
        asyncio.run(go())
    assert url in str(info.value) and "guiagent serve" in str(info.value)

    async def health() -> None:
        async with ModelClient(url) as client:
            await client.health()

    with pytest.raises(ModelServerUnreachable, match=r"sglang\.launch_server"):
        asyncio.run(health())


def test_garbage_is_a_protocol_error(server: FakeModelServer) -> None:
    _script(server, FakeReply(fault="garbage"))
    for stream in (False, True):
        with pytest.raises(ModelProtocolError, match=r"not JSON|not SSE"):
            _complete(server, stream=stream)


def test_drop_mid_stream(server: FakeModelServer) -> None:
    _script(server, FakeReply(reasoning="x" * 200, fault="drop_mid_stream", fault_after_chunks=4))
    with pytest.raises(ModelProtocolError, match="dropped"):
        _complete(server, stream=True)
    with pytest.raises(ModelProtocolError, match="broke"):
        _complete(server)


def test_error_in_stream(server: FakeModelServer) -> None:
    _script(server, FakeReply(reasoning="x" * 50, fault="error_in_stream", error="out of memory"))
    with pytest.raises(ModelProtocolError, match="out of memory"):
        _complete(server, stream=True)


def test_health_during_warmup() -> None:
    with FakeModelServer(warmup_s=60, served_model="step3-vl") as srv:

        async def go() -> None:
            async with ModelClient(srv.url + "/v1/") as client:
                with pytest.raises(ModelServerNotReady):
                    await client.health()
                asyncio.get_running_loop().call_later(0.2, srv.end_warmup)
                info = await client.wait_ready(timeout_s=10, poll_s=0.05)
                assert info.model == "step3-vl" and info.max_model_len == 32768
                assert client.model == "step3-vl"

        asyncio.run(go())
        assert srv.health_checks >= 3


def test_image_content_round_trip(server: FakeModelServer) -> None:
    img = Image.new("RGB", (120, 80), (0, 128, 255))
    for fmt in ("JPEG", "PNG"):
        part = image_content(img, fmt=fmt)  # type: ignore[arg-type]
        url = part["image_url"]["url"]
        assert url.startswith(f"data:image/{fmt.lower()};base64,")
        decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert decoded.size == (120, 80)
    server.responder = lambda request: FakeReply(content=str(request.image_size))
    messages = [
        {"role": "user", "content": [image_content(img, "PNG"), {"type": "text", "text": "size?"}]}
    ]

    async def go() -> Completion:
        async with ModelClient(server.url) as client:
            return await client.complete(messages, TOOLS)

    assert asyncio.run(go()).reply.content == "120x80"
    assert server.last_request.image.getpixel((3, 3)) == (0, 128, 255)


def test_base_url_and_overrides() -> None:
    assert normalise_base_url("http://h:30000/v1/") == "http://h:30000"
    assert normalise_base_url("localhost:30000") == "http://localhost:30000"
    client = ModelClient("http://h:30000", sampling={"temperature": 0.2, "max_tokens": 100})
    body = client.build_body(MESSAGES, None, "m", top_k=None, repetition_penalty=1.05)
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 100
    assert "top_k" not in body and body["repetition_penalty"] == 1.05
    assert "tools" not in body and "tool_choice" not in body
    with pytest.raises(ValueError):
        ModelClient("http://h", retries=-1)


def test_one_client_across_event_loops(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="again"))
    client = ModelClient(server.url, model="m")
    # a sync wrapper may run each step in its own asyncio.run
    assert asyncio.run(client.complete(MESSAGES)).reply.content == "again"
    assert asyncio.run(client.complete(MESSAGES)).reply.content == "again"
    asyncio.run(client.aclose())
