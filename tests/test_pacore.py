"""PaCoRe and grounding votes against the fake SGLang server (real concurrent HTTP)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from PIL import Image

from guiagent.core.actions import ActionSpace
from guiagent.core.geometry import CoordSpace, Size
from guiagent.models.openai_client import ModelClient, ModelHTTPError, image_content
from guiagent.models.pacore import (
    PacoreResult,
    VoteResult,
    densest_cluster,
    ground_votes,
    pacore,
    synthesis_messages,
)
from guiagent.models.reply import Completion
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

# the tools exactly as the agent sends them
TOOLS = ActionSpace().tools_json(CoordSpace.IMAGE, Size(1280, 720))
PROBLEM = "Click the Save button."
IMAGE = Image.new("RGB", (96, 64), (10, 200, 30))


def _messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You operate a computer."},
        {
            "role": "user",
            "content": [image_content(IMAGE, "PNG"), {"type": "text", "text": PROBLEM}],
        },
    ]


@pytest.fixture()
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as srv:
        yield srv


async def _all_in_flight(server: FakeModelServer, n: int, timeout_s: float = 10) -> None:
    """Hold a request until n have been in flight together: proves they were sent at once."""
    deadline = time.monotonic() + timeout_s
    while server.max_concurrency < n and time.monotonic() < deadline:
        await asyncio.sleep(0.005)


def _is_synthesis(request: FakeRequest) -> bool:
    return "Reference responses" in request.last_user_text


ROLLOUTS = [
    FakeReply(reasoning="Save is top left.", tool_calls=[("click", {"x": 10, "y": 12})]),
    FakeReply(reasoning="I think it is the disk icon.", content="The disk icon saves."),
    FakeReply(reasoning="hmm, still unsure about", content="", finish_reason="length"),
    FakeReply(
        reasoning="Top left corner.",
        content="Clicking it.",
        tool_calls=[("click", {"x": 11, "y": 13})],
    ),
]


def _run_pacore(server: FakeModelServer, k: int) -> PacoreResult:
    async def go() -> PacoreResult:
        async with ModelClient(server.url, model="m") as client:
            return await pacore(client, _messages(), TOOLS, k)

    return asyncio.run(go())


def test_pacore_fans_out_then_synthesises(server: FakeModelServer) -> None:
    async def responder(request: FakeRequest) -> FakeReply:
        if _is_synthesis(request):
            return FakeReply(
                reasoning="References agree.", tool_calls=[("click", {"x": 10.5, "y": 12.5})]
            )
        await _all_in_flight(server, 4)
        return ROLLOUTS[request.index]

    server.responder = responder
    result = _run_pacore(server, k=4)

    assert server.request_count == 5
    assert server.max_concurrency == 4
    assert len(result.rollouts) == 4
    # the empty rollout (cut inside its reasoning) is dropped; the others keep their order
    assert len(result.conclusions) == 3
    rollout_requests = server.requests[:4]
    order = [r.index for r in rollout_requests]
    assert order == [0, 1, 2, 3]
    synthesis_request = server.requests[4]
    assert _is_synthesis(synthesis_request)
    text = synthesis_request.last_user_text
    assert text == result.synthesis_prompt
    assert PROBLEM in text
    assert '"name": "click", "arguments": {"x": 10, "y": 12}' in text
    assert "The disk icon saves." in text
    assert "Clicking it." in text and '{"x": 11, "y": 13}' in text
    assert "Reference 3:" in text and "Reference 4:" not in text
    assert "still unsure" not in text  # reasoning never leaks into the references
    # the image is attached again, and the system prompt is kept
    assert synthesis_request.image is not None
    assert synthesis_request.image.size == (96, 64)
    assert synthesis_request.image.getpixel((1, 1)) == (10, 200, 30)
    assert synthesis_request.messages[0] == {"role": "system", "content": "You operate a computer."}
    assert len(synthesis_request.messages) == 2
    # the returned action is the synthesis's
    (call,) = result.synthesis.reply.tool_calls
    assert (call.name, call.arguments) == ("click", {"x": 10.5, "y": 12.5})
    assert result.completion is result.synthesis


def test_pacore_tolerates_failed_rollouts_and_k1(server: FakeModelServer) -> None:
    def responder(request: FakeRequest) -> FakeReply:
        if _is_synthesis(request):
            return FakeReply(content="final")
        if request.index == 0:
            return FakeReply(status=400, error="bad luck")
        return FakeReply(content=f"answer {request.index}")

    server.responder = responder
    result = _run_pacore(server, k=3)
    assert result.synthesis.reply.content == "final"
    assert len(result.rollouts) == 2 and len(result.failed) == 1 and "bad luck" in result.failed[0]
    assert len(result.conclusions) == 2

    server.reset_stats()
    server.responder = lambda request: FakeReply(content="only")
    single = _run_pacore(server, k=1)
    assert server.request_count == 1
    assert single.synthesis.reply.content == "only" and single.synthesis_prompt == ""

    server.reset_stats()
    server.responder = lambda request: FakeReply(status=400, error="always bad")
    with pytest.raises(ModelHTTPError, match="always bad"):
        _run_pacore(server, k=2)
    with pytest.raises(ValueError):
        _run_pacore(server, k=0)


def test_synthesis_messages_with_text_only_prompt() -> None:
    msgs = [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]
    with_user_last = [*msgs, {"role": "user", "content": "And 3+3?"}]
    out, prompt = synthesis_messages(with_user_last, ["6", "six"])
    assert out[:2] == msgs and out[2]["content"] == prompt
    assert "And 3+3?" in prompt and "Reference 1:\n6" in prompt and "Reference 2:\nsix" in prompt
    assert with_user_last[2]["content"] == "And 3+3?"  # input left untouched
    with pytest.raises(ValueError):
        synthesis_messages([{"role": "system", "content": "x"}], ["a"])


def _read_click(c: Completion) -> tuple[float, float] | None:
    for call in c.reply.tool_calls:
        if call.name == "click":
            return (float(call.arguments["x"]), float(call.arguments["y"]))
    return None


def _run_votes(server: FakeModelServer, n: int, radius: float = 10) -> VoteResult:
    async def go() -> VoteResult:
        async with ModelClient(server.url, model="m") as client:
            return await ground_votes(client, _messages(), TOOLS, n, _read_click, radius)

    return asyncio.run(go())


def test_ground_votes_cluster_centre_and_agreement(server: FakeModelServer) -> None:
    points: list[tuple[int, int] | None] = [(100, 100), (400, 400), (102, 100), None, (101, 103)]

    async def responder(request: FakeRequest) -> FakeReply:
        await _all_in_flight(server, 5)
        p = points[request.index]
        if p is None:
            return FakeReply(content="I cannot see it.")
        return FakeReply(tool_calls=[("click", {"x": p[0], "y": p[1]})])

    server.responder = responder
    result = _run_votes(server, n=5)
    assert server.max_concurrency == 5
    assert server.request_count == 5
    assert result.point == (101.0, 101.0)
    assert result.members == 3 and result.valid == 4
    assert result.agreement == 0.75
    assert sorted(p for p in result.points if p) == [(100, 100), (101, 103), (102, 100), (400, 400)]
    assert result.chosen is not None and _read_click(result.chosen) in {
        (100, 100),
        (102, 100),
        (101, 103),
    }


def test_ground_votes_single_and_none(server: FakeModelServer) -> None:
    server.responder = lambda request: FakeReply(tool_calls=[("click", {"x": 7, "y": 9})])
    one = _run_votes(server, n=1)
    assert server.request_count == 1 and server.max_concurrency == 1
    assert one.point == (7.0, 9.0) and one.agreement == 1.0 and one.members == 1

    server.responder = lambda request: FakeReply(content="nothing there")
    none = _run_votes(server, n=3)
    assert (
        none.point is None
        and none.agreement == 0.0
        and none.valid == 0
        and len(none.completions) == 3
    )


def test_densest_cluster_ties_go_to_the_tighter_cluster() -> None:
    loose = [(0.0, 0.0), (8.0, 0.0)]
    tight = [(100.0, 100.0), (101.0, 100.0)]
    centre, members = densest_cluster(loose + tight, radius=10)  # type: ignore[misc]
    assert centre == (100.5, 100.0) and members == [2, 3]
    assert densest_cluster([], radius=5) is None
    centre, members = densest_cluster([(5.0, 5.0)], radius=0)  # type: ignore[misc]
    assert centre == (5.0, 5.0) and members == [0]
