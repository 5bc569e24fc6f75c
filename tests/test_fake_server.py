"""The fake model server speaks SGLang's wire format (checked here with a plain HTTP client)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from guiagent.core.actions import ActionSpace
from guiagent.core.geometry import CoordSpace, Size
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

# the tools exactly as the agent sends them
TOOLS = ActionSpace().tools_json(CoordSpace.IMAGE, Size(1280, 720))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


def _script(server: FakeModelServer, reply: FakeReply) -> None:
    server.responder = lambda request: reply


def _body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "stepfun-ai/Step3-VL-10B",
        "messages": [{"role": "user", "content": "click OK"}],
        "tools": TOOLS,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


def _post(server: FakeModelServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=5)


def _sse(server: FakeModelServer, body: dict[str, Any]) -> list[Any]:
    events: list[Any] = []
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=5) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: ") :]
                events.append(data if data == "[DONE]" else json.loads(data))
    return events


CLICK = FakeReply(
    reasoning="The OK button is at the bottom.", tool_calls=[("click", {"x": 12, "y": 34})]
)


def test_sglang_non_streaming_tool_call_shape(server: FakeModelServer) -> None:
    _script(server, CLICK)
    data = _post(server, _body()).json()
    assert re.fullmatch(r"[0-9a-f]{32}", data["id"])
    assert data["object"] == "chat.completion"
    choice = data["choices"][0]
    msg = choice["message"]
    assert msg["role"] == "assistant"
    assert msg["content"] == ""
    assert msg["reasoning_content"] == "The OK button is at the bottom."
    call = msg["tool_calls"][0]
    assert re.fullmatch(r"call_[0-9a-f]{24}", call["id"])
    assert call["index"] == 0 and call["type"] == "function"
    assert call["function"]["name"] == "click"
    assert json.loads(call["function"]["arguments"]) == {"x": 12, "y": 34}
    assert choice["finish_reason"] == "tool_calls"
    assert choice["matched_stop"] is None
    usage = data["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert "reasoning_tokens" in usage and usage["prompt_tokens_details"] is None


def test_sglang_plain_answer_has_no_tool_calls_key(server: FakeModelServer) -> None:
    _script(server, FakeReply(reasoning="easy", content="The title is Hello."))
    data = _post(server, _body()).json()
    msg = data["choices"][0]["message"]
    assert "tool_calls" not in msg
    assert msg["content"] == "The title is Hello."
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["choices"][0]["matched_stop"] == 151645


def test_sglang_old_nulls(server: FakeModelServer) -> None:
    _script(server, FakeReply(reasoning="r", content="", flavour="sglang-old"))
    msg = _post(server, _body()).json()["choices"][0]["message"]
    assert msg["content"] is None
    assert msg["tool_calls"] is None


def test_vllm_shape(server: FakeModelServer) -> None:
    _script(server, CLICK.model_copy(update={"flavour": "vllm"}))
    data = _post(server, _body()).json()
    msg = data["choices"][0]["message"]
    assert "reasoning_content" not in msg
    assert msg["reasoning"] == "The OK button is at the bottom."
    assert msg["content"] is None
    assert msg["tool_calls"][0]["id"].startswith("chatcmpl-tool-")


def test_no_tool_parser_leaves_block_in_content(server: FakeModelServer) -> None:
    _script(server, CLICK.model_copy(update={"flavour": "no-tool-parser"}))
    data = _post(server, _body()).json()
    msg = data["choices"][0]["message"]
    assert "tool_calls" not in msg
    assert msg["reasoning_content"] == "The OK button is at the bottom."
    assert "<tool_call>" in msg["content"] and '"name": "click"' in msg["content"]
    assert data["choices"][0]["finish_reason"] == "stop"


def test_no_parsers_returns_whole_text(server: FakeModelServer) -> None:
    _script(server, CLICK.model_copy(update={"flavour": "no-parsers"}))
    msg = _post(server, _body()).json()["choices"][0]["message"]
    assert msg["reasoning_content"] is None
    assert msg["content"].startswith("The OK button is at the bottom.</think>")
    assert "<tool_call>" in msg["content"]


def test_streaming_chunks_follow_sglang(server: FakeModelServer) -> None:
    _script(server, CLICK.model_copy(update={"content": ""}))
    events = _sse(server, _body(stream=True))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    first = chunks[0]["choices"][0]["delta"]
    assert first["role"] == "assistant" and first["content"] == ""
    reasoning = "".join(
        c["choices"][0]["delta"].get("reasoning_content") or "" for c in chunks if c["choices"]
    )
    assert reasoning == "The OK button is at the bottom."
    calls = [
        d
        for c in chunks
        if c["choices"]
        for d in (c["choices"][0]["delta"].get("tool_calls") or [])
    ]
    head, *frags = calls
    assert head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "click", "arguments": ""}
    assert all(f["id"] is None and f["function"]["name"] is None and f["index"] == 0 for f in frags)
    assert json.loads("".join(f["function"]["arguments"] for f in frags)) == {"x": 12, "y": 34}
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "tool_calls"
    assert finish["choices"][0]["delta"]["tool_calls"] is None
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] > 0


def test_streaming_without_include_usage_has_no_usage_chunk(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="hello there"))
    body = _body()
    body["stream"] = True
    events = _sse(server, body)
    assert all(e == "[DONE]" or e["choices"] for e in events)
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "hello there"


def test_vllm_stream_fragments_have_no_id_or_type(server: FakeModelServer) -> None:
    _script(server, CLICK.model_copy(update={"flavour": "vllm"}))
    events = _sse(server, _body(stream=True))
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    assert any("reasoning" in d for d in deltas)
    assert not any("reasoning_content" in d for d in deltas)
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0]["id"].startswith("chatcmpl-tool-")
    assert all(set(tc) == {"index", "function"} for tc in calls[1:])


def test_errors_in_sglang_and_vllm_shape(server: FakeModelServer) -> None:
    _script(server, FakeReply(status=400, error="bad thing"))
    resp = _post(server, _body())
    assert resp.status_code == 400
    assert resp.json() == {
        "object": "error",
        "message": "bad thing",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
    _script(server, FakeReply(status=500, error="oops", flavour="vllm"))
    resp = _post(server, _body())
    assert resp.status_code == 500
    assert resp.json()["error"]["message"] == "oops"


def test_bad_requests_are_400_like_sglang(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="never"))
    resp = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", timeout=5)
    assert resp.status_code == 400 and resp.json()["object"] == "error"
    bad_tool = [{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}]
    resp = _post(server, _body(tools=bad_tool))
    assert resp.status_code == 400 and "invalid parameters" in resp.json()["message"]
    history = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "click", "arguments": {"x": 1}},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
    ]
    resp = _post(server, _body(messages=history))
    assert resp.status_code == 400 and "JSON string" in resp.json()["message"]


def test_error_in_stream_and_garbage(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="abcdefghijklmnop", fault="error_in_stream", error="OOM"))
    events = _sse(server, _body(stream=True))
    assert events[-1] == "[DONE]"
    assert events[-2] == {
        "error": {
            "object": "error",
            "message": "OOM",
            "type": "InternalServerError",
            "param": None,
            "code": 500,
        }
    }
    _script(server, FakeReply(fault="garbage"))
    resp = _post(server, _body())
    assert resp.status_code == 200
    with pytest.raises(ValueError):
        json.loads(resp.content)


def test_drop_mid_stream_breaks_the_connection(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="x" * 100, fault="drop_mid_stream", fault_after_chunks=3))
    with pytest.raises(httpx.RemoteProtocolError):
        _sse(server, _body(stream=True))


def test_models_and_request_recording_and_image(server: FakeModelServer) -> None:
    models = httpx.get(f"{server.url}/v1/models", timeout=5).json()
    assert models["data"][0]["id"] == "stepfun-ai/Step3-VL-10B"
    assert models["data"][0]["max_model_len"] == 32768

    seen: list[FakeRequest] = []

    def responder(request: FakeRequest) -> FakeReply:
        seen.append(request)
        assert request.image_size is not None
        return FakeReply(content=f"{request.image_size} {request.last_user_text}")

    server.responder = responder
    img = Image.new("RGB", (64, 48), (200, 10, 10))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    before = server.request_count
    body = _body(
        messages=[
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": url}},
                    {"type": "text", "text": "what is red?"},
                ],
            },
        ]
    )
    data = _post(server, body).json()
    assert data["choices"][0]["message"]["content"] == "64x48 what is red?"
    assert server.request_count == before + 1
    req = server.last_request
    assert req is seen[0]
    assert req.image is not None and req.image.getpixel((5, 5)) == (200, 10, 10)
    assert b"what is red?" in req.raw
    assert req.tool_names == [t["function"]["name"] for t in TOOLS]


def test_concurrency_tracking() -> None:
    async def responder(request: FakeRequest) -> FakeReply:
        deadline = time.monotonic() + 10
        while srv.max_concurrency < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        return FakeReply(content=f"{srv.max_concurrency} in flight")

    with FakeModelServer(responder) as srv:
        results: list[str] = []

        def go() -> None:
            results.append(_post(srv, _body()).json()["choices"][0]["message"]["content"])

        threads = [threading.Thread(target=go) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == ["3 in flight"] * 3
        assert srv.max_concurrency == 3
        assert srv.in_flight == 0
        srv.reset_stats()
        assert srv.max_concurrency == 0 and srv.request_count == 0


def test_scripted_replies_in_order() -> None:
    replies = [FakeReply(content=str(i)) for i in range(3)]
    with FakeModelServer.scripted(replies) as srv:
        got = [_post(srv, _body()).json()["choices"][0]["message"]["content"] for _ in range(3)]
        assert got == ["0", "1", "2"]
        resp = _post(srv, _body())
        assert resp.status_code == 500 and "exhausted" in resp.json()["message"]
        assert srv.request_count == 4


def test_warmup_health_503_then_200() -> None:
    with FakeModelServer(warmup_s=0.3) as srv:
        first = httpx.get(f"{srv.url}/health", timeout=5)
        elapsed = time.monotonic() - srv._started_at
        if elapsed < 0.3:  # a loaded machine may take longer than the warm-up to get here
            assert first.status_code == 503
        time.sleep(max(0.0, 0.35 - elapsed))
        assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 200
        assert srv.health_checks == 2
    with FakeModelServer(warmup_s=60) as srv:
        assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 503
        srv.end_warmup()
        assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 200


def test_async_context_manager() -> None:
    async def go() -> int:
        async with FakeModelServer(lambda request: FakeReply(content="hi")) as srv:
            async with httpx.AsyncClient() as http:
                resp = await http.post(f"{srv.url}/v1/chat/completions", json=_body(), timeout=5)
            assert resp.json()["choices"][0]["message"]["content"] == "hi"
            return srv.port

    port = asyncio.run(go())
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_more_requests_sglang_rejects(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="never"))

    def history(arguments: Any) -> list[dict[str, Any]]:
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "click", "arguments": arguments},
        }
        return [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ]

    for arguments in ("not json", "[1, 2]", None):
        resp = _post(server, _body(messages=history(arguments)))
        assert resp.status_code == 400, arguments
        assert resp.json()["object"] == "error" and "JSON string" in resp.json()["message"]
    assert _post(server, _body(messages=history('{"x": 1, "y": 2}'))).status_code == 200
    named = {"type": "function", "function": {"name": "teleport"}}
    resp = _post(server, _body(tool_choice=named))
    assert resp.status_code == 400 and "'teleport' not found" in resp.json()["message"]
    resp = _post(server, _body(tools=None, tool_choice="required"))
    assert resp.status_code == 400 and "required" in resp.json()["message"]
    resp = _post(server, _body(messages=[{"role": "robot", "content": "hi"}]))
    assert resp.status_code == 400 and "role" in resp.json()["message"]
    resp = _post(server, _body(max_completion_tokens=40000))  # over the 32768 context
    assert resp.status_code == 400
    assert "at most 32768 completion tokens" in resp.json()["message"]


def test_vllm_length_error_names_the_numbers() -> None:
    with FakeModelServer(flavour="vllm", max_model_len=1000) as srv:
        resp = _post(srv, _body(max_completion_tokens=999))
        assert resp.status_code == 400
        message = resp.json()["error"]["message"]
        assert re.search(r"\(999 > 1000 - \d+\)", message)
        assert _post(srv, _body(max_completion_tokens=100)).status_code == 200


def test_sglang_drops_calls_to_unknown_tools_when_told() -> None:
    reply = FakeReply(reasoning="r", content="", tool_calls=[("teleport", {"x": 1})])
    with FakeModelServer(lambda request: reply, forward_unknown_tools=False) as srv:
        choice = _post(srv, _body()).json()["choices"][0]
        assert choice["message"]["tool_calls"] == []
        assert choice["finish_reason"] == "tool_calls"
        events = _sse(srv, _body(stream=True))
        assert not any(
            e["choices"] and e["choices"][0]["delta"].get("tool_calls") for e in events[:-1]
        )
        assert [e["choices"][0]["finish_reason"] for e in events[:-1] if e["choices"]][-1] == "stop"


def test_bare_frontend_has_no_health() -> None:
    # sglang-router in front of workers runs for real in tests/test_router.py
    with FakeModelServer(frontend="bare") as srv:
        assert httpx.get(f"{srv.url}/health", timeout=5).status_code == 404
        assert httpx.get(f"{srv.url}/v1/models", timeout=5).status_code == 200


def test_keepalive_comments_and_missing_done(server: FakeModelServer) -> None:
    _script(server, FakeReply(content="hello", keepalive=True, fault="no_done"))
    with httpx.stream(
        "POST", f"{server.url}/v1/chat/completions", json=_body(stream=True), timeout=5
    ) as resp:
        lines = list(resp.iter_lines())
    assert ": keep-alive" in lines and "" in lines
    assert "data: [DONE]" not in lines
    assert any('"finish_reason": "stop"' in line for line in lines)


# --- what sglang-router asks of a worker; a GPU's limits; a killed worker -------------------


def test_sglang_native_endpoints_name_the_served_model() -> None:
    with FakeModelServer(served_model="step3", model_path="/models/step3-vl") as srv:
        for path in ("/server_info", "/get_server_info"):
            info = httpx.get(f"{srv.url}{path}", timeout=5).json()
            assert info["served_model_name"] == "step3"
            assert info["model_path"] == "/models/step3-vl"
            assert info["dp_size"] == 1 and info["port"] == srv.port and info["version"]
            assert info["tool_call_parser"] == "hermes"
        for path in ("/model_info", "/get_model_info"):
            model = httpx.get(f"{srv.url}{path}", timeout=5).json()
            assert model["model_path"] == "/models/step3-vl" and model["is_generation"] is True
    with FakeModelServer(flavour="vllm") as srv:  # vLLM has no SGLang native API
        assert httpx.get(f"{srv.url}/server_info", timeout=5).status_code == 404


def test_max_running_makes_requests_wait_their_turn() -> None:
    release = threading.Event()

    async def slow(request: FakeRequest) -> FakeReply:
        await asyncio.to_thread(release.wait, 10)
        return FakeReply(content="done")

    with FakeModelServer(slow, max_running=1) as srv:
        threads = [threading.Thread(target=_post, args=(srv, _body())) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        load = httpx.get(f"{srv.url}/get_load", timeout=5).json()[0]
        while load["num_reqs"] + load["num_waiting_reqs"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
            load = httpx.get(f"{srv.url}/get_load", timeout=5).json()[0]
        assert (load["num_reqs"], load["num_waiting_reqs"]) == (1, 2)
        release.set()
        for t in threads:
            t.join(10)
        assert srv.request_count == 3 and srv.waiting == 0


def test_kill_drops_requests_in_flight_and_a_restart_comes_back_on_the_same_port() -> None:
    started = threading.Event()

    async def stuck(request: FakeRequest) -> FakeReply:
        started.set()
        return FakeReply(content="late", delay_s=30)

    srv = FakeModelServer(stuck).start()
    port = srv.port
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(_post(srv, _body()))
        except httpx.HTTPError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(10)
    srv.kill()
    caller.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError), outcome
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
    srv.responder = lambda request: FakeReply(content="back")
    srv.start()
    try:
        assert srv.port == port
        assert _post(srv, _body()).json()["choices"][0]["message"]["content"] == "back"
    finally:
        srv.stop()
