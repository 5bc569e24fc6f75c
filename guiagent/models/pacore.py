"""Parallel sampling on top of the client: PaCoRe synthesis and grounding votes.

PaCoRe (Step3-VL's parallel reasoning mode, as its technical report describes it): send the same request K times
at once, keep each answer's conclusion, then ask once more with those conclusions as
numbered references and the original image attached again; that last answer is the result.

Grounding votes: sample N answers to a grounding request at once, read a point from each,
and take the centre of the densest cluster, with the share of answers that agree.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from loguru import logger
from pydantic import BaseModel, Field

from guiagent.models.reply import Completion, ToolCall


class ChatClient(Protocol):
    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        **kw: Any,
    ) -> Completion: ...


class PacoreError(RuntimeError):
    """Every parallel rollout failed, so there is nothing to synthesise."""


class PacoreResult(BaseModel):
    synthesis: Completion
    rollouts: list[Completion] = Field(default_factory=list)
    conclusions: list[str] = Field(default_factory=list)
    synthesis_prompt: str = ""
    failed: list[str] = Field(default_factory=list)

    @property
    def completion(self) -> Completion:
        return self.synthesis


class VoteResult(BaseModel):
    point: tuple[float, float] | None
    agreement: float
    members: int
    valid: int
    points: list[tuple[float, float] | None] = Field(default_factory=list)
    completions: list[Completion] = Field(default_factory=list)
    chosen: Completion | None = None
    failed: list[str] = Field(default_factory=list)


def render_tool_call(call: ToolCall) -> str:
    payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"


def conclusion(completion: Completion) -> str:
    """What a rollout concluded: its answer text, plus its tool calls written as hermes text."""
    parts = [completion.reply.content.strip()]
    parts += [render_tool_call(call) for call in completion.reply.tool_calls]
    return "\n".join(p for p in parts if p).strip()


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def _images_of(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, list):
        return [
            p for p in content if isinstance(p, dict) and p.get("type") in ("image_url", "image")
        ]
    return []


def synthesis_text(problem: str, conclusions: Sequence[str]) -> str:
    refs = "\n\n".join(f"Reference {i}:\n{text}" for i, text in enumerate(conclusions, 1))
    return (
        "You are given a problem and a list of reference responses. Analyse the references, "
        "check them against the problem and the screenshot, and give your own answer; the "
        "references may be wrong or disagree.\n\n"
        f"Original problem:\n{problem}\n\n"
        f"Reference responses:\n{refs}\n\n"
        "Now, based on the original problem and the reference responses above, give your own "
        "answer. If an action is needed, answer with your own tool call."
    )


def synthesis_messages(
    messages: list[dict[str, Any]], conclusions: Sequence[str]
) -> tuple[list[dict[str, Any]], str]:
    """The messages with the last user message replaced by the synthesis prompt (image kept)."""
    out = copy.deepcopy(messages)
    last = next((i for i in range(len(out) - 1, -1, -1) if out[i].get("role") == "user"), None)
    if last is None:
        raise ValueError("PaCoRe needs a user message to synthesise from")
    original = out[last].get("content")
    prompt = synthesis_text(_text_of(original), conclusions)
    images = _images_of(original)
    out[last] = {
        "role": "user",
        "content": [*images, {"type": "text", "text": prompt}] if images else prompt,
    }
    return out, prompt


async def _gather(
    client: ChatClient,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    n: int,
    kw: dict[str, Any],
) -> tuple[list[Completion | None], list[str]]:
    results = await asyncio.gather(
        *(client.complete(messages, tools, **kw) for _ in range(n)), return_exceptions=True
    )
    done: list[Completion | None] = []
    failed: list[str] = []
    first_error: BaseException | None = None
    for i, res in enumerate(results):
        if isinstance(res, BaseException):
            if not isinstance(res, Exception):
                raise res
            first_error = first_error or res
            failed.append(f"sample {i}: {type(res).__name__}: {res}")
            done.append(None)
        else:
            done.append(res)
    if all(d is None for d in done) and first_error is not None:
        raise first_error
    for msg in failed:
        logger.warning("parallel sample failed, dropped: {}", msg)
    return done, failed


async def pacore(
    client: ChatClient,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    k: int,
    **kw: Any,
) -> PacoreResult:
    """K rollouts at once, then one synthesis request over their conclusions.

    With k == 1 it is a plain request (no synthesis). If every rollout came back without a
    conclusion (e.g. all cut inside their reasoning), the synthesis is sent with the
    original messages.
    """
    if k < 1:
        raise ValueError(f"PaCoRe needs k >= 1, got {k}")
    if k == 1:
        only = await client.complete(messages, tools, **kw)
        return PacoreResult(synthesis=only, rollouts=[only], conclusions=[conclusion(only)])
    rollouts, failed = await _gather(client, messages, tools, k, kw)
    kept = [c for c in (conclusion(r) for r in rollouts if r is not None) if c]
    if kept:
        synth_msgs, prompt = synthesis_messages(messages, kept)
    else:
        logger.warning(
            "all {} PaCoRe rollouts were empty; synthesising from the original request", k
        )
        synth_msgs, prompt = messages, ""
    synthesis = await client.complete(synth_msgs, tools, **kw)
    return PacoreResult(
        synthesis=synthesis,
        rollouts=[r for r in rollouts if r is not None],
        conclusions=kept,
        synthesis_prompt=prompt,
        failed=failed,
    )


def densest_cluster(
    points: Sequence[tuple[float, float]], radius: float
) -> tuple[tuple[float, float], list[int]] | None:
    """Centre and member indices of the densest cluster of points.

    A cluster is the set of points within ``radius`` of one of the points; the one with
    most members wins, ties go to the smaller spread (mean distance to its centre), then
    to the earlier point.
    """
    if not points:
        return None
    best: tuple[int, float, int] | None = None
    best_members: list[int] = []
    best_centre = (0.0, 0.0)
    for i, (px, py) in enumerate(points):
        members = [j for j, (qx, qy) in enumerate(points) if math.hypot(qx - px, qy - py) <= radius]
        cx = sum(points[j][0] for j in members) / len(members)
        cy = sum(points[j][1] for j in members) / len(members)
        spread = sum(math.hypot(points[j][0] - cx, points[j][1] - cy) for j in members) / len(
            members
        )
        key = (-len(members), spread, i)
        if best is None or key < best:
            best, best_members, best_centre = key, members, (cx, cy)
    return best_centre, best_members


async def ground_votes(
    client: ChatClient,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    n: int,
    read_point: Callable[[Completion], tuple[float, float] | None],
    radius: float,
    **kw: Any,
) -> VoteResult:
    """N grounding answers at once; the densest cluster's centre and the share that agrees."""
    if n < 1:
        raise ValueError(f"ground_votes needs n >= 1, got {n}")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    if n == 1:
        samples: list[Completion | None] = [await client.complete(messages, tools, **kw)]
        failed: list[str] = []
    else:
        samples, failed = await _gather(client, messages, tools, n, kw)
    completions = [s for s in samples if s is not None]
    points: list[tuple[float, float] | None] = []
    for comp in completions:
        try:
            points.append(read_point(comp))
        except (ValueError, TypeError, KeyError) as exc:
            logger.debug("no point in a grounding answer: {}", exc)
            points.append(None)
    valid_idx = [i for i, p in enumerate(points) if p is not None]
    valid = [points[i] for i in valid_idx]
    found = densest_cluster([p for p in valid if p is not None], radius)
    if found is None:
        return VoteResult(
            point=None,
            agreement=0.0,
            members=0,
            valid=0,
            points=points,
            completions=completions,
            failed=failed,
        )
    centre, members = found
    member_idx = [valid_idx[m] for m in members]
    chosen = min(
        member_idx,
        key=lambda i: math.hypot(points[i][0] - centre[0], points[i][1] - centre[1]),  # type: ignore[index]
    )
    return VoteResult(
        point=centre,
        agreement=len(members) / len(valid),
        members=len(members),
        valid=len(valid),
        points=points,
        completions=completions,
        chosen=completions[chosen],
        failed=failed,
    )
