"""A misbehaving model server: wrong shapes, trickles, keep-alives, huge replies (issue #18).

Each case must end in a named ModelError (never a TypeError/ValueError from deep inside),
and a whole `guiagent run` against it must end with a recorded reason and exit code 1.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from guiagent.cli import main
from guiagent.models.openai_client import (
    ModelClient,
    ModelProtocolError,
    ModelTimeout,
)
from guiagent.record import load
from guiagent.testing.misbehaving import (
    MisbehavingServer,
    huge_body,
    json_reply,
    keepalive_stream,
    sse_reply,
    trickle,
)

PAGE = "guiagent/demo/webapp/index.html"
GUARD_S = 120  # a guard against a hang, not a timing assertion


def _ok_message() -> dict[str, Any]:
    return {"role": "assistant", "content": "done", "reasoning_content": None}


def _response(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "0123456789abcdef0123456789abcdef",
        "object": "chat.completion",
        "model": "broken",
        "choices": [{"index": 0, "message": _ok_message(), "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
    }
    body.update(changes)
    return body


def _with_choice(**changes: Any) -> dict[str, Any]:
    choice = {"index": 0, "message": _ok_message(), "finish_reason": "stop", **changes}
    return _response(choices=[choice])


def _tool_call(function: Any) -> dict[str, Any]:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c", "function": function}],
    }
    return _with_choice(message=message, finish_reason="tool_calls")


WRONG_SHAPES = {
    "choices a number": (_response(choices=3), "choices"),
    "message a string": (_with_choice(message="click the button"), "choices.0.message"),
    "message a list": (_with_choice(message=[{"content": "x"}]), "choices.0.message"),
    "function a string": (_tool_call("click(3, 4)"), "function"),
    "prompt_tokens a list": (_response(usage={"prompt_tokens": [1]}), "usage.prompt_tokens"),
    "prompt_tokens a string": (_response(usage={"prompt_tokens": "12"}), "usage.prompt_tokens"),
    "prompt_tokens NaN": (_response(usage={"prompt_tokens": math.nan}), "usage.prompt_tokens"),
    "finish_reason a number": (_with_choice(finish_reason=1), "finish_reason"),
    "tool_calls an object": (
        _with_choice(message={"content": "", "tool_calls": {"name": "click"}}),
        "tool_calls",
    ),
}


def _complete(url: str, stream: bool = False, **client_args: Any) -> Any:
    async def go() -> Any:
        async with ModelClient(url, retries=0, **client_args) as client:
            return await client.complete([{"role": "user", "content": "hi"}], stream=stream)

    return asyncio.run(asyncio.wait_for(go(), GUARD_S))


@pytest.mark.parametrize("case", list(WRONG_SHAPES), ids=list(WRONG_SHAPES))
def test_wrong_shapes_are_named_protocol_errors(case: str) -> None:
    payload, field = WRONG_SHAPES[case]
    with (
        MisbehavingServer(json_reply(payload)) as server,
        pytest.raises(ModelProtocolError, match="wrong shape") as caught,
    ):
        _complete(server.url)
    assert field in str(caught.value) and server.url in str(caught.value)


STREAM_SHAPES = {
    "choices a number": ({"id": "x", "choices": 3}, "choices"),
    "delta a string": ({"id": "x", "choices": [{"index": 0, "delta": "hi"}]}, "delta"),
    "finish_reason a number": (
        {"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": 7}]},
        "finish_reason",
    ),
    "function a string": (
        {
            "id": "x",
            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": "f"}]}}],
        },
        "function",
    ),
    "usage a list": ({"id": "x", "choices": [], "usage": {"total_tokens": [3]}}, "usage"),
}


@pytest.mark.parametrize("case", list(STREAM_SHAPES), ids=list(STREAM_SHAPES))
def test_wrong_stream_chunks_are_named_protocol_errors(case: str) -> None:
    chunk, field = STREAM_SHAPES[case]
    first = {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    with (
        MisbehavingServer(sse_reply([first, chunk])) as server,
        pytest.raises(ModelProtocolError, match="wrong shape") as caught,
    ):
        _complete(server.url, stream=True)
    assert field in str(caught.value)


def test_lenient_where_servers_differ() -> None:
    """vLLM's shapes: content null beside a call, `reasoning`, chatcmpl ids, details as []."""
    message = {
        "role": "assistant",
        "content": None,
        "reasoning": "the button is at the top",
        "tool_calls": [
            {
                "id": "chatcmpl-tool-abc",
                "type": "function",
                "function": {"name": "click", "arguments": '{"x": 3, "y": 4}'},
            }
        ],
    }
    payload = _with_choice(message=message, finish_reason="tool_calls")
    payload["usage"] = {"prompt_tokens": 5, "total_tokens": 7, "prompt_tokens_details": []}
    payload["id"] = "chatcmpl-123"
    with MisbehavingServer(json_reply(payload)) as server:
        completion = _complete(server.url)
    assert completion.reply.tool_calls[0].arguments == {"x": 3, "y": 4}
    assert completion.reply.reasoning == "the button is at the top"
    assert completion.usage.prompt_tokens == 5 and completion.request_id == "chatcmpl-123"


def test_a_trickled_body_ends_at_the_request_deadline() -> None:
    with (
        MisbehavingServer(trickle(0.5)) as server,
        pytest.raises(ModelTimeout, match="did not finish its answer within 2 s"),
    ):
        _complete(server.url, timeout_s=2)
        assert server.last_byte_at is not None


def test_a_keepalive_stream_ends_at_the_request_deadline() -> None:
    with (
        MisbehavingServer(keepalive_stream(0.2)) as server,
        pytest.raises(ModelTimeout, match="within 2 s"),
    ):
        _complete(server.url, stream=True, timeout_s=2)


def test_a_huge_reply_is_refused_at_the_size_bound() -> None:
    with (
        MisbehavingServer(huge_body(50 * 1024 * 1024)) as server,
        pytest.raises(ModelProtocolError, match="larger than 1048576 bytes"),
    ):
        _complete(server.url, max_reply_bytes=1024 * 1024)


def test_a_huge_stream_is_refused_at_the_size_bound() -> None:
    delta = {"id": "x", "choices": [{"index": 0, "delta": {"content": "a" * 10_000}}]}
    with (
        MisbehavingServer(sse_reply([delta] * 200)) as server,
        pytest.raises(ModelProtocolError, match="max_reply_bytes"),
    ):
        _complete(server.url, stream=True, max_reply_bytes=100_000)


def test_too_many_tool_calls_are_refused() -> None:
    call = {"type": "function", "function": {"name": "wait", "arguments": "{}"}}
    message = {"role": "assistant", "content": "", "tool_calls": [call] * 40}
    with (
        MisbehavingServer(json_reply(_with_choice(message=message))) as server,
        pytest.raises(ModelProtocolError, match="40 tool calls"),
    ):
        _complete(server.url)
    chunks = [
        {
            "id": "x",
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": n, "function": {"name": "wait"}}]}}
            ],
        }
        for n in range(40)
    ]
    with (
        MisbehavingServer(sse_reply(chunks)) as server,
        pytest.raises(ModelProtocolError, match="more than 16 tool calls"),
    ):
        _complete(server.url, stream=True)


@pytest.mark.parametrize(
    "behaviour,flags",
    [
        (json_reply(_response(choices=3)), []),
        (json_reply(_with_choice(message="click")), []),
        (trickle(1.0), ["--timeout", "3"]),
        (keepalive_stream(0.3), ["--timeout", "3", "--stream"]),
        (huge_body(30 * 1024 * 1024), []),
    ],
    ids=["choices-number", "message-string", "trickle", "keepalive", "huge"],
)
def test_a_run_against_a_broken_server_ends_with_its_reason(
    behaviour: Any, flags: list[str], static_server: Any, tmp_path: Any, capfd: Any
) -> None:
    """Exit code 1 (the run started, the model failed), the reason recorded, no traceback."""
    run_dir = tmp_path / "run"
    with MisbehavingServer(behaviour) as server:
        code = main(
            [
                "run",
                "look",
                "--start-url",
                static_server.url_for(PAGE),
                "--model-url",
                server.url,
                "--record",
                str(run_dir),
                "--max-steps",
                "3",
                *flags,
            ]
        )
    out, err = capfd.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in out + err
    header = load(run_dir).header
    assert header.status == "failed"
    assert header.stop_reason and "model error (Model" in header.stop_reason


def _run(static_server: Any, model_url: str, run_dir: Any, *flags: str) -> int:
    return main(
        [
            "run",
            "look",
            "--start-url",
            static_server.url_for(PAGE),
            "--model-url",
            model_url,
            "--record",
            str(run_dir),
            *flags,
        ]
    )


@pytest.mark.parametrize(
    "reply,flags,reason",
    [
        (
            _with_choice(message={"role": "assistant", "content": "a" * 200_000}),
            ["--max-reply-bytes", "100000"],
            "larger than 100000 bytes (max_reply_bytes)",
        ),
        (
            _with_choice(
                message={
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [
                        {"type": "function", "function": {"name": "wait", "arguments": "{}"}}
                    ]
                    * 3,
                },
                finish_reason="tool_calls",
            ),
            ["--max-tool-calls", "2"],
            "more than 2 (max_tool_calls)",
        ),
    ],
    ids=["max-reply-bytes", "max-tool-calls"],
)
def test_the_reply_bounds_set_on_the_command_line_end_the_run_named(
    reply: dict[str, Any],
    flags: list[str],
    reason: str,
    static_server: Any,
    tmp_path: Any,
    capfd: Any,
) -> None:
    """A reply within the default bounds but past the lowered one: exit 1, the bound named."""
    with MisbehavingServer(json_reply(reply)) as server:
        code = _run(static_server, server.url, tmp_path / "run", "--max-steps", "3", *flags)
    out, err = capfd.readouterr()
    assert code == 1, out + err
    assert "Traceback" not in out + err
    header = load(tmp_path / "run").header
    assert header.status == "failed"
    assert header.stop_reason and reason in header.stop_reason, header.stop_reason


def test_the_cli_reply_bounds_default_to_the_agent_config() -> None:
    from guiagent.agent.config import AgentConfig
    from guiagent.cli import build_parser

    args = build_parser("run").parse_args(["run", "x"])
    assert args.max_reply_bytes == AgentConfig().max_reply_bytes
    assert args.max_tool_calls == AgentConfig().max_tool_calls


def test_max_seconds_bounds_the_wait_for_a_slow_model(
    static_server: Any, tmp_path: Any, capfd: Any
) -> None:
    with MisbehavingServer(trickle(1.0)) as server:
        code = _run(
            static_server, server.url, tmp_path / "run", "--timeout", "600", "--max-seconds", "3"
        )
    out, err = capfd.readouterr()
    assert code == 1 and "Traceback" not in out + err
    header = load(tmp_path / "run").header
    assert header.status == "stopped"
    assert header.stop_reason == "wall-time budget of 3 s used up (during step 1)"


def test_max_seconds_stops_a_long_type_between_keys(
    static_server: Any, tmp_path: Any, capfd: Any
) -> None:
    from guiagent.testing.fake_server import FakeModelServer, FakeReply

    # long enough that typing it, even with no round trip per key, outlasts the budget
    reply = FakeReply(tool_calls=[("type", {"text": "x" * 200_000})])
    with FakeModelServer(lambda request: reply) as server:
        code = _run(static_server, server.url, tmp_path / "run", "--max-seconds", "2")
    out, err = capfd.readouterr()
    assert code == 1 and "Traceback" not in out + err
    header = load(tmp_path / "run").header
    assert header.status == "stopped"
    assert header.stop_reason == "wall-time budget of 2 s used up (during step 1)"
