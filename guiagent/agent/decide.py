"""The decide phase: one model decision, plain, streamed, by PaCoRe or by grounding votes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from guiagent.agent.config import AgentConfig
from guiagent.core.actions import ACTIONS_BY_NAME, POINT_KEYS, ActionSpace, InvalidToolCall
from guiagent.core.geometry import CoordSpace
from guiagent.core.redact import Redactor, StreamRedactor
from guiagent.models.budget import ImagePlan
from guiagent.models.openai_client import ModelClient
from guiagent.models.pacore import ground_votes, pacore
from guiagent.models.reply import Completion, Usage

# a streamed delta (kind, text) to pass on to the event sink
DeltaSink = Callable[[Any], None]


async def decide(
    client: ModelClient,
    config: AgentConfig,
    space: CoordSpace,
    action_space: ActionSpace,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    plan: ImagePlan,
    on_delta: DeltaSink | None = None,
) -> tuple[Completion, dict[str, Any]]:
    """One decision; returns the completion and what to record about how it was made."""
    if config.pacore > 0:
        result = await pacore(client, messages, tools, config.pacore)
        extra = {
            "pacore": {
                "k": config.pacore,
                "conclusions": result.conclusions,
                "failed": result.failed,
                "synthesis_prompt_chars": len(result.synthesis_prompt),
            }
        }
        spent = total_usage([*result.rollouts, result.synthesis])
        return result.synthesis.model_copy(update={"usage": spent}), extra
    if config.ground_votes > 1:
        return await _votes(client, config, space, action_space, messages, tools, plan)
    if config.stream and on_delta is not None:
        return await client.complete(messages, tools, stream=True, on_event=on_delta), {}
    return await client.complete(messages, tools), {}


async def _votes(
    client: ModelClient,
    config: AgentConfig,
    space: CoordSpace,
    action_space: ActionSpace,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    plan: ImagePlan,
) -> tuple[Completion, dict[str, Any]]:
    # the votes are points in model space: the radius is a share of that space's extent
    extent = {
        CoordSpace.IMAGE: plan.sent.long_side,
        CoordSpace.NORM1000: 1000.0,
        CoordSpace.NORM1: 1.0,
    }
    radius = config.vote_radius * extent[space]

    def read_point(completion: Completion) -> tuple[float, float] | None:
        return first_point(action_space, completion)

    result = await ground_votes(client, messages, tools, config.ground_votes, read_point, radius)
    extra = {
        "votes": {
            "n": config.ground_votes,
            "points": [list(p) if p else None for p in result.points],
            "centre": list(result.point) if result.point else None,
            "agreement": result.agreement,
            "members": result.members,
        }
    }
    chosen = result.chosen or result.completions[0]
    chosen = chosen.model_copy(update={"usage": total_usage(result.completions)})
    return with_point(chosen, result.point), extra


def first_point(action_space: ActionSpace, completion: Completion) -> tuple[float, float] | None:
    """The first point of the first valid tool call of a completion."""
    for call in completion.reply.tool_calls:
        try:
            action = action_space.validate(call.name, call.arguments)
        except InvalidToolCall:
            continue
        points = action.points()
        if points:
            return points[0]
    return None


def total_usage(completions: list[Completion]) -> Usage:
    """What several requests (PaCoRe rollouts, votes) cost together, for the token budget."""
    total = Usage()
    for completion in completions:
        u = completion.usage
        total.prompt_tokens += u.prompt_tokens
        total.completion_tokens += u.completion_tokens
        total.total_tokens += u.total_tokens
    return total


def with_point(completion: Completion, point: tuple[float, float] | None) -> Completion:
    """The completion with its first tool call moved to ``point`` (the votes' cluster centre)."""
    if point is None or not completion.reply.tool_calls:
        return completion
    call = completion.reply.tool_calls[0]
    kind = ACTIONS_BY_NAME.get(call.name)
    if kind is None or len(kind.point_fields) != 1:  # drags and non-pointing actions keep their own
        return completion
    arguments = {k: v for k, v in call.arguments.items() if k not in POINT_KEYS}
    arguments.update(x=point[0], y=point[1])
    calls = [call.model_copy(update={"arguments": arguments}), *completion.reply.tool_calls[1:]]
    return completion.model_copy(
        update={"reply": completion.reply.model_copy(update={"tool_calls": calls})}
    )


def reply_record(completion: Completion) -> dict[str, Any]:
    """What a step record keeps of a model reply (redacted by the executor when written)."""
    reply = completion.reply
    return {
        "content": reply.content,
        "reasoning": reply.reasoning,
        "tool_calls": [
            {"name": c.name, "arguments": c.arguments, "source": c.source} for c in reply.tool_calls
        ],
        "errors": reply.errors,
        "finish_reason": completion.finish_reason,
        "usage": completion.usage.model_dump(),
        "latency_ms": round(completion.latency_s * 1000, 1),
    }


class stream_forwarder:
    """A streamed-delta callback passing redacted prose to an event sink (async sinks are
    awaited). One :class:`StreamRedactor` per part holds back what may be the start of a
    secret split across chunks; :meth:`flush` releases the rest when the reply is complete.
    Tool-call argument deltas are not passed on: they may be a password being typed."""

    def __init__(self, emit: Callable[[str, dict[str, Any]], Any], redactor: Redactor) -> None:
        self.emit = emit
        self.redactor = redactor
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._streams: dict[str, StreamRedactor] = {}

    def _send(self, kind: str, text: str) -> None:
        if not text:
            return
        outcome = self.emit("delta", {"kind": kind, "text": text})
        if asyncio.iscoroutine(outcome):  # an async sink: run it, do not drop it
            task = self._loop.create_task(outcome)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def __call__(self, event: Any) -> None:
        text = getattr(event, "text", None)
        kind = getattr(event, "kind", "content")
        if not text or kind not in ("reasoning", "content"):
            return
        stream = self._streams.setdefault(kind, StreamRedactor(self.redactor))
        self._send(kind, stream.feed(text))

    def flush(self) -> None:
        for kind, stream in self._streams.items():
            self._send(kind, stream.flush())
        self._streams = {}
