"""Client overhead against the fake server: what the HTTP and parsing layers cost per step.

The model's own latency is not measured here (no GPU); these figures bound what the
client adds on top of it.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

from PIL import Image

from guiagent.core.actions import ActionSpace
from guiagent.core.geometry import CoordSpace, Size
from guiagent.models.openai_client import ModelClient, image_content, reply_from_message
from guiagent.models.pacore import ground_votes, pacore
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

# the tools exactly as the agent sends them
_TOOLS = ActionSpace().tools_json(CoordSpace.IMAGE, Size(1280, 720))


def _responder(request: FakeRequest) -> FakeReply:
    return FakeReply(
        reasoning="The button sits in the lower right corner of the dialog. " * 20,
        tool_calls=[("click", {"x": 640, "y": 360})],
    )


async def _median_ms(fn: Callable[[], Awaitable[Any]], repeats: int) -> float:
    await fn()  # warm the connection pool
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run(quick: bool = False) -> list[dict[str, Any]]:
    repeats = 5 if quick else 30
    screenshot = Image.effect_noise((1280, 720), 60).convert("RGB")
    messages = [
        {
            "role": "user",
            "content": [image_content(screenshot), {"type": "text", "text": "Click OK."}],
        }
    ]
    raw = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "thinking " * 400,
        "tool_calls": [
            {
                "id": "call_0",
                "index": 0,
                "type": "function",
                "function": {"name": "click", "arguments": '{"x": 1, "y": 2}'},
            }
        ],
    }
    no_parser = {
        "role": "assistant",
        "content": "thinking " * 400
        + '</think>\n<tool_call>\n{"name": "click", "arguments": {"x": 1, "y": 2}}\n</tool_call>',
    }

    async def main(url: str) -> list[dict[str, Any]]:
        async with ModelClient(url, model="m") as client:
            plain = await _median_ms(lambda: client.complete(messages, _TOOLS), repeats)
            streamed = await _median_ms(
                lambda: client.complete(messages, _TOOLS, stream=True), repeats
            )
            pac = await _median_ms(
                lambda: pacore(client, messages, _TOOLS, 8), max(3, repeats // 5)
            )
            votes = await _median_ms(
                lambda: ground_votes(client, messages, _TOOLS, 8, lambda c: (1.0, 2.0), 5.0),
                max(3, repeats // 5),
            )
        parse_server = await _median_ms(
            _wrap(lambda: reply_from_message(raw, "tool_calls")), repeats
        )
        parse_text = await _median_ms(_wrap(lambda: reply_from_message(no_parser, "stop")), repeats)
        return [
            {"name": "client.complete (1280x720 JPEG, fake server)", "median_ms": plain},
            {
                "name": "client.complete stream=True",
                "median_ms": streamed,
                "baseline_ms": plain,
                "ratio": streamed / plain,
            },
            {
                "name": "pacore k=8 (9 requests)",
                "median_ms": pac,
                "baseline_ms": plain,
                "ratio": pac / plain,
                "note": "ratio well under 9 means the rollouts really overlap",
            },
            {
                "name": "ground_votes n=8",
                "median_ms": votes,
                "baseline_ms": plain,
                "ratio": votes / plain,
            },
            {"name": "reply_from_message (server tool_calls)", "median_ms": parse_server},
            {"name": "reply_from_message (raw hermes, 3.6 kB reasoning)", "median_ms": parse_text},
        ]

    with FakeModelServer(_responder) as server:
        return asyncio.run(main(server.url))


def _wrap(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return fn()

    return call
