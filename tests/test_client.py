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

from guiagent.core.actions import ActionSpace
from guiagent.core.geometry import CoordSpace, Size
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

# the tools exactly as the agent sends them
TOOLS = ActionSpace().tools_json(CoordSpace.IMAGE, Size(1280, 720))
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


# --- wire-format audit against SGLang 0.5.x / vLLM (their entrypoints/openai code) -------------------


def test_requests_are_what_sglang_and_vllm_accept(server: FakeModelServer) -> None:
    from jsonschema import Draft202012Validator

    from guiagent.core.actions import ActionSpace as Space
    from guiagent.models.step3vl import Conversation

    for space in CoordSpace:
        for tool in Space().tools_json(space, Size(1280, 720)):
            assert tool["type"] == "function"
            Draft202012Validator.check_schema(tool["function"]["parameters"])
    conv = Conversation("browser", "press OK", CoordSpace.IMAGE, Size(1280, 720))
    conv.add_action("click", {"x": 1, "y": 2}, "clicked")
    conv.add_action("type", {"text": "héllo"}, "typed", call_id="chatcmpl-tool-abc")
    img = io.BytesIO()
    Image.new("RGB", (64, 36), (9, 9, 9)).save(img, format="JPEG")
    messages = conv.messages(img.getvalue(), "image/jpeg", 3)
    _script(server, CLICK)

    async def go() -> Completion:
        async with ModelClient(server.url) as client:
            return await client.complete(
                messages, Space().tools_json(CoordSpace.IMAGE, Size(1280, 720))
            )

    assert _call(asyncio.run(go()))[0] == "click"  # the fake's 400 checks passed
    body = json.loads(server.last_request.raw)
    assistants = [m for m in body["messages"] if m["role"] == "assistant"]
    for message in assistants:
        for call in message["tool_calls"]:
            assert isinstance(json.loads(call["function"]["arguments"]), dict)
    tool_ids = [m["tool_call_id"] for m in body["messages"] if m["role"] == "tool"]
    assert tool_ids == [m["tool_calls"][0]["id"] for m in assistants]
    assert server.last_request.image_urls[0].startswith("data:image/jpeg;base64,")
    assert server.last_request.image_size == Size(64, 36)
    assert body["max_completion_tokens"] <= 32768 and body["top_k"] == -1


@pytest.mark.parametrize(
    ("message", "finish", "content", "reasoning", "calls"),
    [
        ({"role": "assistant", "content": None, "reasoning_content": "r"}, "stop", "", "r", 0),
        ({"role": "assistant", "reasoning": "r2"}, "stop", "", "r2", 0),
        # vLLM between renames sends both keys
        (
            {"content": "ok", "reasoning_content": "same", "reasoning": "same"},
            "stop",
            "ok",
            "same",
            0,
        ),
        ({"content": "ok", "reasoning_content": "", "reasoning": "new"}, "stop", "ok", "new", 0),
        (
            {"content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            "stop",
            "ab",
            None,
            0,
        ),
        ({"content": "", "tool_calls": None}, "stop", "", None, 0),
        (
            {
                "content": None,
                "tool_calls": [{"function": {"name": "click", "arguments": {"x": 1, "y": 2}}}],
            },
            "tool_calls",
            "",
            None,
            1,
        ),
        (
            {"content": "", "tool_calls": [{"function": {"name": "finish", "arguments": ""}}]},
            "tool_calls",
            "",
            None,
            1,
        ),
    ],
)
def test_reply_shapes(
    message: dict[str, Any], finish: str, content: str, reasoning: str | None, calls: int
) -> None:
    from guiagent.models.openai_client import reply_from_message

    reply = reply_from_message(message, finish)
    assert reply.content == content and reply.reasoning == reasoning
    assert len(reply.tool_calls) == calls and reply.errors == []


def test_usage_shapes() -> None:
    from guiagent.models.openai_client import parse_usage

    vllm = parse_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": None,
            "completion_tokens_details": {"reasoning_tokens": 3},
        }
    )
    assert vllm.reasoning_tokens == 3 and vllm.cached_tokens is None
    sglang = parse_usage(
        {
            "prompt_tokens": 10,
            "completion_tokens": None,
            "reasoning_tokens": 0,
            "prompt_tokens_details": {"cached_tokens": 8},
        }
    )
    assert (
        sglang.completion_tokens == 0 and sglang.reasoning_tokens == 0 and sglang.cached_tokens == 8
    )
    assert parse_usage(None).total_tokens == 0
    assert parse_usage({"prompt_tokens_details": []}).cached_tokens is None


def test_stream_tool_name_sent_once_or_repeated() -> None:
    from guiagent.models.openai_client import _StreamState

    state = _StreamState(None)
    for delta in (
        {
            "id": "c1",
            "index": 0,
            "type": "function",
            "function": {"name": "scrol", "arguments": ""},
        },
        {
            "id": None,
            "index": 0,
            "type": "function",
            "function": {"name": "l", "arguments": '{"x": 1'},
        },
        {"index": 0, "function": {"name": "scroll", "arguments": ', "y": 2}'}},  # repeated name
        {"index": 1, "function": {"name": "wait", "arguments": {"seconds": 1}}},
    ):
        state.feed({"choices": [{"index": 0, "delta": {"tool_calls": [delta]}}]})
    calls = state.message()["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["scroll", "wait"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"x": 1, "y": 2}
    assert calls[0]["id"] == "c1"
    assert json.loads(calls[1]["function"]["arguments"]) == {"seconds": 1}


def test_finish_reasons_that_mean_trouble(server: FakeModelServer) -> None:
    for finish in ("abort", "content_filter"):
        plain, streamed = _both(server, FakeReply(content="partial", finish_reason=finish))
        for c in (plain, streamed):
            assert c.finish_reason == finish and c.reply.content == "partial"
            assert any("ended the reply early" in e for e in c.reply.errors)


def test_sglang_dropping_an_unknown_tool_is_reported() -> None:
    reply = FakeReply(reasoning="r", content="", tool_calls=[("teleport", {"x": 1})])
    with FakeModelServer(lambda request: reply, forward_unknown_tools=False) as srv:
        plain, streamed = _complete(srv), _complete(srv, stream=True)
    assert plain.reply.tool_calls == [] and plain.finish_reason == "tool_calls"
    assert any("returned none" in e for e in plain.reply.errors)
    assert streamed.reply.tool_calls == [] and streamed.finish_reason == "stop"


def test_sse_comments_blank_lines_and_missing_done(server: FakeModelServer) -> None:
    _script(server, CLICK.model_copy(update={"keepalive": True}))
    assert _call(_complete(server, stream=True))[0] == "click"
    _script(server, CLICK.model_copy(update={"fault": "no_done"}))
    c = _complete(server, stream=True)
    assert _call(c)[0] == "click" and c.finish_reason == "tool_calls"


@pytest.mark.parametrize("flavour", ["sglang", "vllm"])
def test_error_object_mid_stream_both_shapes(server: FakeModelServer, flavour: str) -> None:
    _script(
        server,
        FakeReply(reasoning="x" * 40, fault="error_in_stream", error="aborted", flavour=flavour),
    )
    with pytest.raises(ModelProtocolError, match="aborted"):
        _complete(server, stream=True)
    _script(server, FakeReply(status=400, error="bad thing", flavour=flavour))
    with pytest.raises(ModelHTTPError) as info:
        _complete(server)
    assert info.value.server_message == "bad thing"


def test_429_from_a_router_queue_is_retried(server: FakeModelServer) -> None:
    script = [FakeReply(status=429, error="Too Many Requests"), CLICK]
    server.responder = lambda request: script.pop(0)
    assert _call(_complete(server))[0] == "click"


def test_output_limit_is_capped_or_shrunk_after_400() -> None:
    async def go(srv: FakeModelServer, **kw: Any) -> Completion:
        async with ModelClient(srv.url, backoff_s=0.01, **kw) as client:
            return await client.complete(MESSAGES, TOOLS)

    with FakeModelServer(lambda r: CLICK, max_model_len=4096) as srv:
        # name given, so /v1/models is never read: SGLang's 400 names the limit ("at most
        # 4096 completion tokens"); 4096 plus the prompt is still over the context, and that
        # 400 names the prompt's tokens, so the third request fits
        assert _call(asyncio.run(go(srv, model="stepfun-ai/Step3-VL-10B")))[0] == "click"
        sent = [json.loads(r.raw)["max_completion_tokens"] for r in srv.requests]
        prompt = 4096 - sent[-1]
        assert sent == [8192, 4096, 4096 - prompt] and prompt > 0
        srv.reset_stats()
        asyncio.run(go(srv))  # learnt from /v1/models: capped before sending
        assert [json.loads(r.raw)["max_completion_tokens"] for r in srv.requests] == [
            4096,
            4096 - prompt,
        ]
    with FakeModelServer(lambda r: CLICK, flavour="vllm", max_model_len=3000) as srv:
        c = asyncio.run(go(srv, model="stepfun-ai/Step3-VL-10B"))
        assert _call(c)[0] == "click"
        first, second = (json.loads(r.raw)["max_completion_tokens"] for r in srv.requests)
        assert first == 8192 and 0 < second < 3000


def test_health_against_bare_and_vllm() -> None:
    async def health(url: str, **kw: Any) -> Any:
        async with ModelClient(url, **kw) as client:
            info = await client.health()
            return info, client.model

    # the real sglang-router in front of a warming worker: tests/test_router.py
    with FakeModelServer(frontend="bare", served_model="proxy-model") as srv:
        info, model = asyncio.run(health(srv.url))
        assert model == "proxy-model" and info.health_endpoint is False
    with FakeModelServer(
        lambda r: CLICK, flavour="vllm", served_model="step3-vllm", max_model_len=16384
    ) as srv:
        info, model = asyncio.run(health(srv.url + "/v1"))
        assert (model, info.max_model_len, info.models) == ("step3-vllm", 16384, ["step3-vllm"])
        c = _complete(srv)
        assert json.loads(srv.last_request.raw)["model"] == "step3-vllm"
        assert c.reply.tool_calls[0].id.startswith("chatcmpl-tool-")
