"""The client against what SGLang really sends, checked case by case with its source.

Each case names the SGLang file whose behaviour the fake copies (python/sglang/srt/...):
the 400s of a prompt or an output limit past the context (managers/tokenizer_manager.py
``_validate_one_request``), a tool call cut at the token limit (function_call/
hermes_detector.py, base_format_detector.py, entrypoints/openai/serving_chat.py
``_check_for_unstreamed_tool_args``), an error object inside a begun stream
(serving_chat.py ``_generate_chat_stream``), FastAPI's 404 and the text between two calls
that hermes_detector.py streams unfiltered.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from guiagent.core.actions import ActionSpace
from guiagent.core.geometry import CoordSpace, Size
from guiagent.models.errors import allowed_output_tokens
from guiagent.models.message import _StreamState
from guiagent.models.openai_client import (
    ModelClient,
    ModelHTTPError,
    ModelProtocolError,
    ModelStreamError,
    reply_from_message,
)
from guiagent.models.reply import Completion
from guiagent.testing.fake_render import prompt_tokens
from guiagent.testing.fake_server import FakeModelServer, FakeReply

TOOLS = ActionSpace().tools_json(CoordSpace.IMAGE, Size(1280, 720))
MESSAGES = [{"role": "user", "content": "Type hello."}]
CLICK = FakeReply(reasoning="r", tool_calls=[("click", {"x": 1, "y": 2})])
# SGLang's words (tokenizer_manager.py), numbers captured
TOTAL = re.compile(
    r"^Requested token count exceeds the model's maximum context length of (\d+) tokens\. "
    r"You requested a total of (\d+) tokens: (\d+) tokens from the input messages and "
    r"(\d+) tokens for the completion\. Please reduce the number of tokens in the input "
    r"messages or the completion to fit within the limit\.$"
)
INPUT = re.compile(
    r"^The input \((\d+) tokens\) is longer than the model's context length \((\d+) tokens\)\.$"
)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


def _complete(
    url: str, messages: list[dict[str, Any]] = MESSAGES, stream: bool = False, **kw: Any
) -> Completion:
    async def go() -> Completion:
        async with ModelClient(url, backoff_s=0.01, **kw) as client:
            return await client.complete(messages, TOOLS, stream=stream)

    return asyncio.run(go())


def _post(url: str, **body: Any) -> httpx.Response:
    payload = {"model": "m", "messages": MESSAGES, "tools": TOOLS, **body}
    return httpx.post(f"{url}/v1/chat/completions", json=payload, timeout=10)


def _sse_chunks(resp: httpx.Response) -> list[dict[str, Any]]:
    lines = [ln[len("data: ") :] for ln in resp.text.splitlines() if ln.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(ln) for ln in lines[:-1]]


# --- (e) a prompt or an output limit past the context --------------------------------------


def test_the_fake_refuses_a_prompt_past_the_context_in_sglangs_words() -> None:
    long_user = [{"role": "user", "content": "word " * 1000}]  # about 1250 tokens to the fake
    with FakeModelServer(lambda r: CLICK, max_model_len=2000) as srv:
        for stream in (False, True):  # serving_chat.py validates before the stream begins
            resp = _post(srv.url, messages=long_user, max_completion_tokens=1000, stream=stream)
            assert resp.status_code == 400
            error = resp.json()
            assert error["object"] == "error" and error["code"] == 400
            m = TOTAL.match(error["message"])
            assert m, error["message"]
            context, total, prompt, asked = map(int, m.groups())
            assert (context, asked, total) == (2000, 1000, prompt + 1000) and prompt > 1000
        resp = _post(srv.url, messages=[{"role": "user", "content": "word " * 2000}])
        m = INPUT.match(resp.json()["message"])
        assert resp.status_code == 400 and m and int(m.group(2)) == 2000
        assert _post(srv.url, messages=long_user, max_completion_tokens=500).status_code == 200


@pytest.mark.parametrize("stream", [False, True])
def test_the_client_asks_for_what_still_fits_when_the_prompt_grew(stream: bool) -> None:
    long_user = [{"role": "user", "content": "word " * 1000}]
    with FakeModelServer(lambda r: CLICK, max_model_len=9000) as srv:
        c = _complete(srv.url, long_user, stream=stream, model="stepfun-ai/Step3-VL-10B")
        assert [call.name for call in c.reply.tool_calls] == ["click"]
        sent = [json.loads(r.raw)["max_completion_tokens"] for r in srv.requests]
        assert sent[0] == 8192 and len(sent) == 2
        # the second asks for exactly the room SGLang named: the context minus the prompt
        prompt = prompt_tokens(srv.requests[0])
        assert 8192 + prompt > 9000 and sent[1] == 9000 - prompt


def test_a_prompt_alone_past_the_context_is_a_clear_400_not_retried() -> None:
    too_long = [{"role": "user", "content": "word " * 8000}]  # about 10000 tokens
    with FakeModelServer(lambda r: CLICK, max_model_len=9000) as srv:
        with pytest.raises(ModelHTTPError) as info:
            _complete(srv.url, too_long, model="m")
        assert info.value.status == 400 and INPUT.match(info.value.server_message)
        assert srv.request_count == 1


def test_the_output_room_read_from_each_servers_400() -> None:
    sglang = (
        "Requested token count exceeds the model's maximum context length of 32768 tokens. "
        "You requested a total of 38000 tokens: 29808 tokens from the input messages and "
        "8192 tokens for the completion. Please reduce the number of tokens in the input "
        "messages or the completion to fit within the limit."
    )
    assert allowed_output_tokens(sglang) == 32768 - 29808
    over = "max_completion_tokens is too large: 8192.This model supports at most 4096 completion tokens."
    assert allowed_output_tokens(over) == 4096
    prompt_only = (
        "The input (40000 tokens) is longer than the model's context length (32768 tokens)."
    )
    assert allowed_output_tokens(prompt_only) is None


# --- (f) a tool call cut at the token limit -------------------------------------------------


def test_the_fake_renders_a_cut_call_as_sglang_does(server: FakeModelServer) -> None:
    cut = FakeReply(
        reasoning="r",
        content="I will type.",
        tool_calls=[("type", '{"text": "hel')],
        finish_reason="length",
    )
    server.responder = lambda request: cut
    # non-streaming: hermes_detector.py cannot decode the open block, so the call is lost
    body = _post(server.url).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "length" and choice["matched_stop"] is None
    assert choice["message"]["tool_calls"] == []
    assert choice["message"]["content"] == "I will type."
    # streaming: the arguments as partial_json_parser completes them, finish_reason "length"
    chunks = _sse_chunks(_post(server.url, stream=True, stream_options={"include_usage": True}))
    deltas = [d for ch in chunks for chc in ch["choices"] for d in chc["delta"]["tool_calls"] or []]
    assert deltas[0]["function"] == {"name": "type", "arguments": ""}
    assert json.loads("".join(d["function"]["arguments"] for d in deltas)) == {"text": "hel"}
    finishes = [chc["finish_reason"] for ch in chunks for chc in ch["choices"]]
    assert [f for f in finishes if f] == ["length"]


@pytest.mark.parametrize(
    "calls",
    [
        [("type", '{"text": "hel')],  # cut inside a string: streamed as "hel"
        [("click", '{"x": 12')],  # cut inside a number: streamed as 12
        [("click", {"x": 1, "y": 2})],  # cut before the outer brace: whole arguments
        [("click", {"x": 1, "y": 2}), ("type", '{"text": "hel')],  # the first one whole
    ],
)
@pytest.mark.parametrize(
    "flavour", ["sglang", "sglang-old", "no-tool-parser", "no-reasoning-parser", "no-parsers"]
)
def test_nothing_of_a_cut_reply_is_used(
    server: FakeModelServer, calls: list[Any], flavour: str
) -> None:
    reply = FakeReply(reasoning="r", tool_calls=calls, finish_reason="length", flavour=flavour)
    server.responder = lambda request: reply
    for stream in (False, True):
        c = _complete(server.url, stream=stream)
        assert c.finish_reason == "length"
        assert c.reply.tool_calls == [], (flavour, stream, c.reply.tool_calls)
        assert any("token limit" in e for e in c.reply.errors), c.reply.errors


def test_a_whole_call_before_a_cut_is_still_reported_by_name() -> None:
    message = {
        "content": "",
        "tool_calls": [{"id": "call_1", "function": {"name": "click", "arguments": '{"x": 1}'}}],
    }
    reply = reply_from_message(message, "length")
    assert reply.tool_calls == []
    assert any("click" in e and "not used" in e for e in reply.errors)


# --- (c) a tool parser without a reasoning parser ---------------------------------------------


def test_reasoning_left_in_content_beside_server_parsed_calls(server: FakeModelServer) -> None:
    reply = FakeReply(
        reasoning="The OK button is at the bottom.",
        content="Clicking it.",
        tool_calls=[("click", {"x": 1, "y": 2})],
        flavour="no-reasoning-parser",
    )
    server.responder = lambda request: reply
    message = _post(server.url).json()["choices"][0]["message"]
    assert message["content"] == "The OK button is at the bottom.</think>Clicking it."
    assert message["reasoning_content"] is None and len(message["tool_calls"]) == 1
    for stream in (False, True):
        c = _complete(server.url, stream=stream)
        assert [(t.name, t.source) for t in c.reply.tool_calls] == [("click", "server")]
        assert c.reply.reasoning == "The OK button is at the bottom."
        assert c.reply.content == "Clicking it." and c.reply.errors == []


# --- (e) an error object inside a begun stream -----------------------------------------------


def test_an_abort_inside_the_stream_is_retried_like_its_status(server: FakeModelServer) -> None:
    script = [FakeReply(reasoning="x" * 40, fault="error_in_stream", error="aborted"), CLICK]
    server.responder = lambda request: script.pop(0)
    server.reset_stats()
    c = _complete(server.url, stream=True)
    assert [call.name for call in c.reply.tool_calls] == ["click"]
    assert server.request_count == 2


def test_error_chunks_of_each_shape() -> None:
    url = "http://sglang"

    def raised(obj: dict[str, Any]) -> ModelProtocolError:
        with pytest.raises(ModelProtocolError) as info:
            ModelClient._stream_line(url, "data: " + json.dumps(obj), _StreamState(None))
        return info.value

    # serving_chat.py, an abort with a status: type is the status' name
    abort = {"object": "error", "message": "overloaded", "type": "SERVICE_UNAVAILABLE"}
    exc = raised({"error": {**abort, "param": None, "code": 503}})
    assert isinstance(exc, ModelStreamError) and isinstance(exc, ModelHTTPError)
    assert exc.status == 503 and exc.server_message == "overloaded" and "overloaded" in str(exc)
    # older serving_chat.py validated after the stream began: a 400 inside it
    total = "Requested token count exceeds the model's maximum context length of 100 tokens. You requested a total of 120 tokens: 90 tokens from the input messages and 30 tokens for the completion."
    exc = raised({"error": {"object": "error", "message": total, "code": 400}})
    assert isinstance(exc, ModelStreamError) and exc.status == 400
    assert allowed_output_tokens(exc.server_message) == 10
    # without a status it stays a protocol error only
    for inner in ({"message": "boom"}, {"message": "boom", "code": "content_blocked"}):
        exc = raised({"error": inner})
        assert not isinstance(exc, ModelHTTPError) and "boom" in str(exc)


# --- FastAPI's 404, and the text between two streamed calls ----------------------------------


def test_a_wrong_path_is_fastapis_404_named(server: FakeModelServer) -> None:
    resp = httpx.post(f"{server.url}/api/v1/chat/completions", json={}, timeout=5)
    assert resp.status_code == 404 and resp.json() == {"detail": "Not Found"}
    with pytest.raises(ModelHTTPError) as info:
        _complete(f"{server.url}/api", model="m")
    assert info.value.status == 404 and info.value.server_message == "Not Found"


def test_the_close_tag_streamed_between_two_calls_is_dropped() -> None:
    # hermes_detector.py returns the text before the next <tool_call> as is when a chunk
    # holds several tokens: the content between two calls can be "\n</tool_call>\n"
    state = _StreamState(None)
    head = {"role": None, "content": None, "reasoning_content": None, "tool_calls": None}
    deltas: list[dict[str, Any]] = [
        {**head, "role": "assistant", "content": ""},
        {**head, "tool_calls": [{"id": "call_a", "index": 0, "type": "function",
                                 "function": {"name": "click", "arguments": ""}}]},
        {**head, "tool_calls": [{"id": None, "index": 0, "type": "function",
                                 "function": {"name": None, "arguments": '{"x": 1, "y"'}}]},
        {**head, "tool_calls": [{"id": None, "index": 0, "type": "function",
                                 "function": {"name": None, "arguments": ": 2}"}}]},
        {**head, "content": "\n</tool_call>\n"},
        {**head, "tool_calls": [{"id": "call_b", "index": 1, "type": "function",
                                 "function": {"name": "wait", "arguments": ""}}]},
        {**head, "tool_calls": [{"id": None, "index": 1, "type": "function",
                                 "function": {"name": None, "arguments": '{"seconds": 1}'}}]},
        {},  # sse_utils.py omits None fields: the finish chunk's delta is empty
    ]  # fmt: skip
    for n, delta in enumerate(deltas):
        finish = "tool_calls" if n == len(deltas) - 1 else None
        state.feed({"id": "x", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    reply = reply_from_message(state.message(), state.finish_reason)
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [
        ("click", {"x": 1, "y": 2}),
        ("wait", {"seconds": 1}),
    ]
    assert reply.content == "" and reply.errors == []


def test_streamed_arguments_are_ascii_escaped_and_read_back(server: FakeModelServer) -> None:
    # base_format_detector.py streams json.dumps(arguments): non-ASCII arrives escaped
    server.responder = lambda request: FakeReply(tool_calls=[("type", {"text": "héllo 日本"})])
    chunks = _sse_chunks(_post(server.url, stream=True))
    deltas = [d for ch in chunks for chc in ch["choices"] for d in chc["delta"]["tool_calls"] or []]
    streamed = "".join(d["function"]["arguments"] for d in deltas)
    assert "\\u00e9" in streamed and "é" not in streamed
    c = _complete(server.url, stream=True)
    assert [(t.name, t.arguments) for t in c.reply.tool_calls] == [("type", {"text": "héllo 日本"})]
