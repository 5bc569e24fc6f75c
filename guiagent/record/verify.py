"""Check a loaded run is complete and consistent without executing anything."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from PIL import Image
from pydantic import ValidationError

from guiagent.core.actions import action_from_dict
from guiagent.core.geometry import FrameTransform, Point, Size, sent_to_frame
from guiagent.record.trajectory import RecordingError, Run, StepRecord

TOLERANCE_PX = 0.5


def _check_file(run: Run, relative: str, what: str, checked: dict[str, str | None]) -> str | None:
    if relative in checked:
        return checked[relative]
    try:
        path = run.file(relative)
    except RecordingError as exc:  # a path leaving the run folder: refused, reported
        checked[relative] = f"{what}: {exc}"
        return checked[relative]
    problem: str | None = None
    if not path.is_file():
        problem = f"{what}: file {relative} is missing"
    else:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if path.stem != digest:
            problem = f"{what}: file {relative} does not match its name (content hash {digest})"
    checked[relative] = problem
    return problem


def _transform(step: StepRecord) -> FrameTransform | None:
    info = step.meta.get("transform")
    if not isinstance(info, Mapping) or not step.frame_size:
        return None
    origin = info.get("origin") or [0.0, 0.0]
    return FrameTransform(
        frame_size=Size(*step.frame_size),
        origin=Point(float(origin[0]), float(origin[1])),
        scale=float(info.get("scale", 1.0)),
    )


def _close(a: Any, b: Any) -> bool:
    return (
        abs(float(a[0]) - float(b[0])) <= TOLERANCE_PX
        and abs(float(a[1]) - float(b[1])) <= TOLERANCE_PX
    )


def _check_trail(step: StepRecord, where: str) -> list[str]:
    problems: list[str] = []
    transform = _transform(step)
    for n, point in enumerate(step.trail):
        frame, screen, sent = point.get("frame"), point.get("screen"), point.get("sent")
        if transform is not None and frame is not None and screen is not None:
            expect = transform.frame_to_screen(Point(float(frame[0]), float(frame[1])))
            if not _close((expect.x, expect.y), screen):
                problems.append(
                    f"{where}: trail point {n}: screen {screen} is not the transform of frame {frame}"
                    f" (expected [{expect.x:.1f}, {expect.y:.1f}])"
                )
        if sent is not None and frame is not None and step.sent_size and step.frame_size:
            expect = sent_to_frame(
                Point(float(sent[0]), float(sent[1])), Size(*step.sent_size), Size(*step.frame_size)
            )
            if not _close((expect.x, expect.y), frame):
                problems.append(
                    f"{where}: trail point {n}: frame {frame} does not follow from sent {sent}"
                )
    if step.screen_action and step.trail:
        try:
            points = action_from_dict(step.screen_action).points()
        except (ValidationError, ValueError):
            points = []
        for n, (p, t) in enumerate(zip(points, step.trail, strict=False)):
            if t.get("screen") is not None and not _close(p, t["screen"]):
                problems.append(
                    f"{where}: screen_action point {n} {list(p)} differs from trail screen {t['screen']}"
                )
    return problems


def _check_step(
    run: Run, step: StepRecord, where: str, checked: dict[str, str | None]
) -> list[str]:
    problems: list[str] = []
    if step.frame:
        problem = _check_file(run, step.frame, where, checked)
        if problem:
            problems.append(problem)
        elif step.frame_size:
            try:
                with Image.open(run.file(step.frame)) as im:
                    size = im.size
            except (OSError, ValueError) as exc:
                problems.append(f"{where}: frame {step.frame} cannot be read: {exc}")
            else:
                if list(size) != list(step.frame_size):
                    problems.append(
                        f"{where}: frame {step.frame} is {size[0]}x{size[1]}, recorded frame_size {step.frame_size}"
                    )
    crop = (step.evidence or {}).get("crop")
    if crop:
        problem = _check_file(run, str(crop), f"{where} evidence", checked)
        if problem:
            problems.append(problem)
    for field in ("action", "screen_action"):
        data = getattr(step, field)
        if data is None:
            continue
        try:
            action_from_dict(data)
        except (ValidationError, ValueError) as exc:
            first = (
                exc.errors(include_url=False)[0]["msg"]
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            problems.append(f"{where}: {field} {data} is not a valid action: {first}")
    if (
        step.action
        and step.screen_action
        and step.action.get("action") != step.screen_action.get("action")
    ):
        problems.append(
            f"{where}: action {step.action.get('action')} and screen_action {step.screen_action.get('action')} differ"
        )
    problems.extend(_check_trail(step, where))
    for n, sub in enumerate(step.sub_steps):
        try:
            sub_step = StepRecord.model_validate(sub)
        except ValidationError as exc:
            problems.append(
                f"{where} sub-step {n}: invalid: {exc.errors(include_url=False)[0]['msg']}"
            )
            continue
        problems.extend(_check_step(run, sub_step, f"{where} sub-step {n}", checked))
    return problems


def verify_run(run: Run) -> list[str]:
    """Every inconsistency found, as one readable line each (empty: the run is sound)."""
    problems = list(run.load_errors)
    header = run.header
    if header.status == "running":
        problems.append(
            "run.json still says status 'running': the recorder never finished (crashed or still live)"
        )
    elif header.step_count != len(run.steps):
        problems.append(
            f"run.json says {header.step_count} steps, steps.jsonl has {len(run.steps)}"
        )
    if header.ended_at is None and header.status not in ("crashed", "interrupted"):
        problems.append("run.json has no ended_at")
    checked: dict[str, str | None] = {}
    previous_time: float | None = None
    # the agent loop numbers steps from 1, scenario runs and hand-made runs from 0
    first = run.steps[0].index if run.steps and run.steps[0].index in (0, 1) else 0
    for position, step in enumerate(run.steps, start=first):
        where = f"step {step.index}"
        if step.index != position:
            problems.append(
                f"{where}: index out of order: expected {position}"
                f" (indices must be contiguous from {first})"
            )
        if previous_time is not None and step.started_at < previous_time:
            problems.append(f"{where}: started_at goes back in time")
        previous_time = step.started_at
        try:
            problems.extend(_check_step(run, step, where, checked))
        except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
            problems.append(f"{run.path}: {where}: malformed record ({type(exc).__name__}: {exc})")
    return problems
