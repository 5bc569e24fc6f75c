"""Replay a recorded run: strict re-execution, self-healing re-location, or verification only.

- ``strict``: re-execute each step's recorded ``screen_action``; before a pointed action,
  the region around the recorded point on a fresh observe() must look like the recording
  (grayscale mean absolute difference <= threshold, re-observed until ``settle_timeout``
  to let the page catch up); otherwise stop with a difference report and the two crops.
- ``heal``: as strict, but a step whose region differs is re-located from its evidence:
  DOM node (same id / text / role), OCR text under the recorded point, template match of
  the recorded crop, then neighbours; an optional async model fallback decides last.
- ``verify``: execute nothing; check files, hashes, indices, actions and point trails.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from loguru import logger
from PIL import Image
from pydantic import BaseModel, Field, ValidationError

from guiagent.core.actions import TERMINAL_ACTIONS, BaseAction, Wait, action_from_dict
from guiagent.core.env import DomSource, Environment, Frame
from guiagent.core.geometry import Point
from guiagent.core.redact import REDACTED
from guiagent.record import compare
from guiagent.record.capture import RegionCapture, ScreenBox
from guiagent.record.evidence import DEFAULT_RADIUS, box_xywh, crop_box_around, element_field
from guiagent.record.trajectory import Run, StepRecord
from guiagent.record.verify import verify_run

ReplayMode = Literal["strict", "heal", "verify"]
DEFAULT_THRESHOLD = 0.08
TEMPLATE_MIN_SCORE = 0.8
MIN_COVERAGE = 0.1  # a crop with less left after redaction is not compared
OCR_RADIUS = 120  # frame pixels read around a recorded point to learn its text
SKIPPED_OUTCOMES = ("invalid", "denied", "dry_run")

# (frame of now, description of the target) -> a frame point, or None when it cannot tell
ModelFallback = Callable[[Frame, str], Awaitable[tuple[float, float] | None]]


class ReplayError(Exception):
    """A replay cannot start as asked (unknown mode, missing variable, unexecutable step)."""


class RedactedTextError(ReplayError):
    """A typed text was redacted by the recorder and no value was given for it."""


class StepResult(BaseModel):
    index: int
    action: dict[str, Any] | None = None
    status: Literal["ok", "skipped", "healed", "failed", "ended"] = "ok"
    point: list[float] | None = None  # recorded screen point
    new_point: list[float] | None = None  # healed screen point
    method: str | None = None
    score: float | None = None
    threshold: float | None = None
    message: str = ""
    expected_crop: str | None = None
    actual_crop: str | None = None
    duration_ms: float = 0.0


class ReplayReport(BaseModel):
    run_path: str
    mode: ReplayMode
    ok: bool = True
    steps: list[StepResult] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)
    failure: str | None = None
    out_dir: str | None = None
    duration_s: float = 0.0
    saved_healed: str | None = None

    @property
    def healed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status == "healed"]

    def summary(self) -> str:
        done = sum(1 for s in self.steps if s.status in ("ok", "healed", "ended"))
        lines = [
            f"{self.mode} replay of {self.run_path}: {'PASSED' if self.ok else 'FAILED'} ({done} steps run)"
        ]
        for s in self.healed:
            lines.append(f"  step {s.index} healed by {s.method}: {s.point} -> {s.new_point}")
        if self.failure:
            lines.append(f"  {self.failure}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)


class _Context:
    def __init__(
        self,
        run: Run,
        env: Environment,
        mode: ReplayMode,
        out_dir: Path,
        threshold: float,
        settle_timeout: float,
        grounder: Any,
        model: ModelFallback | None,
    ) -> None:
        self.run, self.env, self.mode, self.out_dir = run, env, mode, out_dir
        self.threshold, self.settle_timeout = threshold, settle_timeout
        self.grounder, self.model = grounder, model
        self.healed_frames: dict[int, Frame] = {}
        self.capture = RegionCapture(env)


def rebase_url(recorded: str, base: str) -> str:
    """The recorded page on another server: scheme and host:port from ``base``, path, query
    and fragment from ``recorded`` (a path in ``base`` is put in front of the recorded one).

    >>> rebase_url("http://127.0.0.1:41234/app/index.html?x=1", "http://localhost:8000")
    'http://localhost:8000/app/index.html?x=1'
    """
    new = urlsplit(base)
    if not new.scheme or not new.netloc:
        raise ReplayError(f"--base-url must look like http://host:port, got {base!r}")
    old = urlsplit(recorded)
    path = new.path.rstrip("/") + (old.path if old.path.startswith("/") else "/" + old.path)
    return urlunsplit((new.scheme, new.netloc, path, old.query, old.fragment))


def _flatten(steps: list[StepRecord]) -> list[StepRecord]:
    """Skill steps replay through their recorded sub-steps."""
    out: list[StepRecord] = []
    for step in steps:
        if step.sub_steps:
            out.extend(_flatten([StepRecord.model_validate(s) for s in step.sub_steps]))
        else:
            out.append(step)
    return out


def _resolve_variables(
    step: StepRecord, action: BaseAction, variables: Mapping[str, str]
) -> BaseAction:
    if action.name != "type":
        return action
    if not step.variables:
        text = str(getattr(action, "text", ""))
        if REDACTED not in text:
            return action
        # the recorder replaced a secret in the typed text: the value must come from the user
        key = f"step{step.index}"
        if key in variables:
            return action.model_copy(update={"text": variables[key]})
        raise RedactedTextError(
            f"step {step.index} types text that was redacted when it was recorded ({text!r}):"
            f" give the value with --var {key}=VALUE"
        )
    name = step.variables.get("name")
    if name in variables:
        return action.model_copy(update={"text": variables[name]})
    if "value" in step.variables:
        return action.model_copy(update={"text": str(step.variables["value"])})
    if "value_hash" not in step.variables:
        return action  # the recorded text is the value
    # only a hash was kept (a secret): the recorded text is not the value
    raise ReplayError(
        f"step {step.index} types the variable {name!r}: give its value with --var {name}=VALUE"
        f" (variables given: {', '.join(sorted(variables)) or 'none'})"
    )


def _check_variables(steps: list[StepRecord], variables: Mapping[str, str]) -> None:
    for step in steps:
        if step.screen_action and step.screen_action.get("action") == "type":
            try:
                _resolve_variables(step, action_from_dict(step.screen_action), variables)
            except RedactedTextError:
                continue  # reported when the replay reaches it: the steps before still run


def _recorded_points(step: StepRecord) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(frame point, screen point) of the step's first point, when the recording has both."""
    fp, sp = step.frame_point(), step.screen_point()
    if fp is None or sp is None:
        return None
    return fp, sp


def _save_crop(ctx: _Context, image: Image.Image, name: str) -> str:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.out_dir / name
    image.save(path)
    return str(path)


@dataclass
class _Target:
    """What a pointed step's check compares: the recorded crop and where it sits now."""

    fp: tuple[float, float]  # recorded frame point
    sp: tuple[float, float]  # recorded screen point
    box: list[int]  # the crop's box in the recorded frame's pixels
    expected: Image.Image
    screen_box: ScreenBox
    scale: float  # recorded frame pixels per screen point
    mask: Any = None  # pixels of ``expected`` to compare (None: all); redacted ones are left out
    coverage: float = 1.0  # the share of ``expected`` compared


def _evidence_crop(ctx: _Context, step: StepRecord) -> tuple[Image.Image, list[int]] | None:
    """The recorded crop (lossless PNG, no need to decode the whole frame), when it is usable."""
    evidence = step.evidence or {}
    crop_path, crop_box = evidence.get("crop"), evidence.get("crop_box")
    if not crop_path or not isinstance(crop_box, list) or len(crop_box) != 4:
        return None
    box = [round(float(v)) for v in crop_box]
    try:
        with Image.open(ctx.run.file(str(crop_path))) as im:
            image = im.convert("RGB")
    except (OSError, ValueError):
        return None
    if image.size != (box[2] - box[0], box[3] - box[1]):
        return None
    return image, box


def _target(ctx: _Context, step: StepRecord) -> _Target | None:
    points = _recorded_points(step)
    if points is None:
        return None
    fp, sp = points
    scale = _recorded_scale(step)
    found = _evidence_crop(ctx, step)
    if (
        found is not None
        and found[1][0] <= fp[0] <= found[1][2]
        and found[1][1] <= fp[1] <= found[1][3]
    ):
        expected, box = found
    else:
        recorded = ctx.run.frame_image(step)
        if recorded is None:
            return None
        box = crop_box_around(recorded, fp[0], fp[1], DEFAULT_RADIUS)
        expected = compare.crop(recorded, box)
    screen_box = (
        sp[0] + (box[0] - fp[0]) / scale,
        sp[1] + (box[1] - fp[1]) / scale,
        sp[0] + (box[2] - fp[0]) / scale,
        sp[1] + (box[3] - fp[1]) / scale,
    )
    redacted = [
        [round(float(v)) for v in r["box"]]
        for r in step.redactions
        if isinstance(r, Mapping) and isinstance(r.get("box"), list) and len(r["box"]) == 4
    ]
    target = _Target(fp, sp, box, expected, screen_box, scale)
    if redacted:
        # the recorder blacked these out: the live screen shows them, so leave them out
        target.mask = compare.unmasked(expected.size, (box[0], box[1]), redacted)
        target.coverage = float(target.mask.mean())
    return target


async def _compare(ctx: _Context, target: _Target) -> tuple[float, Image.Image]:
    """Grab the target's region until it matches or settle_timeout passes; return the last score.

    Only the region is captured (see guiagent.record.capture); a region that already
    matches returns at once, otherwise it is re-grabbed with a short back-off.
    """
    deadline = time.monotonic() + ctx.settle_timeout
    pause = 0.01
    while True:
        actual = await ctx.capture.grab(target.screen_box)
        score = compare.difference(target.expected, actual, target.mask)
        if score <= ctx.threshold or time.monotonic() >= deadline:
            return score, actual
        await asyncio.sleep(pause)
        pause = min(0.05, pause * 2)


def _recorded_scale(step: StepRecord) -> float:
    transform = step.meta.get("transform") or {}
    if isinstance(transform, Mapping) and transform.get("scale"):
        return float(transform["scale"])
    if step.meta.get("scale"):
        return float(step.meta["scale"])
    return 1.0


async def _read_text(grounder: Any, frame: Frame) -> list[Any]:
    if hasattr(grounder, "aread_text"):
        return list(await grounder.aread_text(frame))
    return list(await asyncio.to_thread(grounder.read_text, frame))


def _text_box_centre(box: Any) -> tuple[float, float] | None:
    xywh = box_xywh(box)
    if xywh is None:
        return None
    return (xywh[0] + xywh[2] / 2, xywh[1] + xywh[3] / 2)


async def _heal_dom(
    ctx: _Context, step: StepRecord, sp: tuple[float, float]
) -> tuple[str, tuple[float, float]] | None:
    """Same element by id, else text + role/tag; returns a screen point."""
    wanted = (step.evidence or {}).get("dom")
    if not wanted or not isinstance(ctx.env, DomSource):
        return None
    elements = await ctx.env.dom_elements()  # type: ignore[attr-defined]

    def centre(element: Any) -> tuple[float, float] | None:
        box = box_xywh(element_field(element, "box"))
        return None if box is None else (box[0] + box[2] / 2, box[1] + box[3] / 2)

    if wanted.get("id"):
        same_id = [e for e in elements if element_field(e, "id") == wanted["id"]]
        if len(same_id) == 1 and (point := centre(same_id[0])) is not None:
            return ("dom:id", point)
    text = compare.normalise_text(str(wanted.get("text") or ""))
    if text:
        candidates = [
            e
            for e in elements
            if compare.normalise_text(str(element_field(e, "text") or "")) == text
            and (not wanted.get("role") or element_field(e, "role") in (None, wanted["role"]))
            and (not wanted.get("tag") or element_field(e, "tag") in (None, wanted["tag"]))
        ]
        points = [p for e in candidates if (p := centre(e)) is not None]
        if len(points) == 1:
            return ("dom:text", points[0])
        if len(points) > 1:
            best = min(points, key=lambda p: Point(*p).distance(Point(*sp)))
            return (f"dom:text(nearest of {len(points)})", best)
    return None


async def _heal_ocr(
    ctx: _Context, step: StepRecord, recorded: Image.Image, fp: tuple[float, float], frame: Frame
) -> tuple[str, tuple[float, float]] | None:
    """The text under the recorded point, found again on the new frame; returns a frame point."""
    if ctx.grounder is None:
        return None
    evidence = step.evidence or {}
    text = evidence.get("text")
    if not text:
        # read only around the point: OCR of a whole frame costs seconds, of a crop far less
        box = crop_box_around(recorded, fp[0], fp[1], OCR_RADIUS)
        x, y = fp[0] - box[0], fp[1] - box[1]
        for tb in await _read_text(ctx.grounder, Frame.from_image(recorded.crop(box))):
            xywh = box_xywh(element_field(tb, "box"))
            if xywh and xywh[0] <= x <= xywh[0] + xywh[2] and xywh[1] <= y <= xywh[1] + xywh[3]:
                text = element_field(tb, "text")
                break
    if not text:
        return None
    wanted = compare.normalise_text(str(text))
    found = await _read_text(ctx.grounder, frame)
    points = [
        c
        for tb in found
        if compare.normalise_text(str(element_field(tb, "text") or "")) == wanted
        and (c := _text_box_centre(element_field(tb, "box"))) is not None
    ]
    if len(points) == 1:
        return ("ocr_text", points[0])
    if len(points) > 1:
        return (
            f"ocr_text(nearest of {len(points)})",
            min(points, key=lambda p: Point(*p).distance(Point(*fp))),
        )
    return None


def _heal_template(target: _Target, frame: Frame) -> tuple[str, tuple[float, float]] | None:
    """Find the recorded crop on the new frame; returns a frame point."""
    scale = frame.transform.scale / target.scale
    match = compare.template_match(frame.image, target.expected, scale)
    if match is None or match[0] < TEMPLATE_MIN_SCORE:
        return None
    (mx, my) = match[1]
    return (
        f"template({match[0]:.2f})",
        (mx + (target.fp[0] - target.box[0]) * scale, my + (target.fp[1] - target.box[1]) * scale),
    )


async def _heal_neighbours(
    ctx: _Context, step: StepRecord, fp: tuple[float, float], frame: Frame
) -> tuple[str, tuple[float, float]] | None:
    """Keep the offset from a recorded neighbouring text that is still on screen (unique)."""
    neighbours = (step.evidence or {}).get("neighbours") or []
    if ctx.grounder is None or not neighbours:
        return None
    found = await _read_text(ctx.grounder, frame)
    for neighbour in neighbours:
        old = _text_box_centre(neighbour.get("box"))
        wanted = compare.normalise_text(str(neighbour.get("text") or ""))
        if old is None or not wanted:
            continue
        hits = [
            c
            for tb in found
            if compare.normalise_text(str(element_field(tb, "text") or "")) == wanted
            and (c := _text_box_centre(element_field(tb, "box"))) is not None
        ]
        if len(hits) == 1:
            return (
                f"neighbour:{neighbour.get('text')}",
                (hits[0][0] + fp[0] - old[0], hits[0][1] + fp[1] - old[1]),
            )
    return None


def _describe_target(step: StepRecord) -> str:
    evidence = step.evidence or {}
    dom = evidence.get("dom") or {}
    parts = [str(p) for p in (dom.get("text"), evidence.get("text"), dom.get("role")) if p]
    return " ".join(parts) or f"the target of a {step.action_name} at {step.screen_point()}"


async def _heal(
    ctx: _Context, step: StepRecord, target: _Target, frame: Frame
) -> tuple[str, Point] | None:
    """Re-locate the step's target on ``frame``; returns (method, new screen point)."""
    fp, sp = target.fp, target.sp
    found = await _heal_dom(ctx, step, sp)
    if found:
        return found[0], Point(*found[1])

    async def ocr() -> tuple[str, tuple[float, float]] | None:
        recorded = ctx.run.frame_image(step)
        if recorded is None:
            return None
        return await _heal_ocr(ctx, step, recorded, fp, frame)

    attempts: tuple[Callable[[], Awaitable[tuple[str, tuple[float, float]] | None]], ...] = (
        ocr,
        lambda: asyncio.to_thread(_heal_template, target, frame),
        lambda: _heal_neighbours(ctx, step, fp, frame),
    )
    for attempt in attempts:
        hit = await attempt()
        if hit:
            return hit[0], frame.transform.frame_to_screen(Point(*hit[1]))
    if ctx.model is not None:
        point = await ctx.model(frame, _describe_target(step))
        if point is not None:
            return "model", frame.transform.frame_to_screen(Point(*point))
    return None


def _move_action(action: BaseAction, old: tuple[float, float], new: Point) -> BaseAction:
    dx, dy = new.x - old[0], new.y - old[1]
    return action.with_points([(px + dx, py + dy) for px, py in action.points()])


async def _pace(
    step: StepRecord, previous: StepRecord | None, step_started: float, speed: float
) -> None:
    if speed <= 0 or previous is None:
        return
    gap = max(0.0, step.started_at - previous.started_at) / speed
    remaining = gap - (time.monotonic() - step_started)
    if remaining > 0:
        await asyncio.sleep(remaining)


async def _run_step(
    ctx: _Context, step: StepRecord, variables: Mapping[str, str], speed: float
) -> StepResult:
    assert step.screen_action is not None
    try:
        action = action_from_dict(step.screen_action)
    except ValidationError as exc:
        raise ReplayError(
            f"step {step.index}: recorded screen_action is not a valid action: {exc}"
        ) from exc
    result = StepResult(index=step.index, action=step.screen_action)
    if action.name in TERMINAL_ACTIONS:
        result.status, result.message = "ended", f"{action.name} ends the run"
        return result
    if action.name == "skill":
        raise ReplayError(
            f"step {step.index}: skill call {step.screen_action} has no recorded sub-steps to replay"
        )
    try:
        action = _resolve_variables(step, action, variables)
    except RedactedTextError as exc:
        result.status, result.message = "failed", str(exc)
        return result
    if isinstance(action, Wait):
        if speed > 0:
            await ctx.env.act(Wait(seconds=min(60.0, action.seconds / speed)))
        return result
    target = _target(ctx, step) if action.points() else None
    if target is not None:
        sp = target.sp
        result.point = list(sp)
        if target.coverage < MIN_COVERAGE:
            # almost all of the crop was redacted when recording: nothing left to compare
            result.message = (
                f"step {step.index}: not checked ({target.coverage:.0%} of the recorded crop"
                " is left after redaction)"
            )
            logger.warning(result.message)
            target = None
    if target is not None:
        score, actual = await _compare(ctx, target)
        result.score, result.threshold = round(score, 4), ctx.threshold
        if score > ctx.threshold:
            result.expected_crop = _save_crop(
                ctx, target.expected, f"step{step.index:04d}-expected.png"
            )
            result.actual_crop = _save_crop(ctx, actual, f"step{step.index:04d}-actual.png")
            diff = (
                f"step {step.index} ({action.name} at screen {sp[0]:.0f},{sp[1]:.0f}): the screen around "
                f"the target differs from the recording: score {score:.3f} > threshold {ctx.threshold:.3f}"
                f" (expected {result.expected_crop}, actual {result.actual_crop})"
            )
            if ctx.mode != "heal":
                result.status, result.message = "failed", diff
                return result
            frame = await ctx.env.observe()
            healed = await _heal(ctx, step, target, frame)
            if healed is None:
                result.status = "failed"
                result.message = (
                    diff + "; healing found no match from DOM, OCR text, crop or neighbours"
                )
                return result
            result.method, result.new_point = healed[0], [healed[1].x, healed[1].y]
            result.status = "healed"
            result.message = f"step {step.index} healed by {healed[0]}: {sp} -> ({healed[1].x:.1f}, {healed[1].y:.1f})"
            action = _move_action(action, sp, healed[1])
            ctx.healed_frames[step.index] = frame
            logger.info(result.message)
    act = await ctx.env.act(action)
    if not act.ok:
        result.status, result.message = (
            "failed",
            f"step {step.index}: {action.name} failed: {act.detail}",
        )
    return result


async def _run_steps(
    ctx: _Context,
    steps: list[StepRecord],
    report: ReplayReport,
    variables: Mapping[str, str],
    speed: float,
) -> None:
    previous: StepRecord | None = None
    for step in steps:
        step_started = time.monotonic()
        name = (step.action or {}).get("action")
        if step.screen_action is None and name in TERMINAL_ACTIONS and step.outcome == "ok":
            # the loop records finish/fail in model space only: nothing to execute
            report.steps.append(
                StepResult(
                    index=step.index,
                    action=step.action,
                    status="ended",
                    message=f"{name} ends the run",
                )
            )
            return
        if step.screen_action is None or step.outcome in SKIPPED_OUTCOMES:
            reason = "no action" if step.screen_action is None else f"outcome {step.outcome}"
            report.steps.append(
                StepResult(
                    index=step.index, action=step.screen_action, status="skipped", message=reason
                )
            )
            continue
        await _pace(step, previous, step_started, speed)
        previous = step
        result = await _run_step(ctx, step, variables, speed)
        result.duration_ms = round((time.monotonic() - step_started) * 1000, 2)
        report.steps.append(result)
        if result.status == "failed":
            report.ok, report.failure = False, result.message
            logger.warning("replay stopped: {}", result.message)
            return
        if result.status == "ended":
            return


async def replay(
    run: Run,
    env: Environment | None,
    mode: ReplayMode = "strict",
    variables: Mapping[str, str] | None = None,
    speed: float = 1.0,
    grounder: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
    model: ModelFallback | None = None,
    out_dir: Path | None = None,
    settle_timeout: float = 2.0,
    save_healed: Path | None = None,
) -> ReplayReport:
    """Replay ``run`` on ``env`` (``env`` may be None for verify). See the module docstring."""
    if mode not in ("strict", "heal", "verify"):
        raise ReplayError(f"unknown replay mode {mode!r}: use strict, heal or verify")
    if speed < 0:
        raise ReplayError(f"speed must be >= 0 (0 = as fast as possible), got {speed}")
    variables = dict(variables or {})
    started = time.monotonic()
    report = ReplayReport(run_path=str(run.path), mode=mode)
    if mode == "verify":
        report.problems = verify_run(run)
        report.ok = not report.problems
        report.duration_s = time.monotonic() - started
        return report
    if env is None:
        raise ReplayError(f"{mode} replay needs an environment to act on")
    steps = _flatten(run.steps)
    _check_variables(steps, variables)
    out = out_dir or run.path / "replays" / time.strftime("%Y%m%d-%H%M%S")
    report.out_dir = str(out)
    ctx = _Context(run, env, mode, out, threshold, settle_timeout, grounder, model)
    try:
        await _run_steps(ctx, steps, report, variables, speed)
    finally:
        await ctx.capture.close()
    report.duration_s = time.monotonic() - started
    if save_healed is not None and report.ok:
        from guiagent.record.healed import save_healed_run

        report.saved_healed = str(save_healed_run(run, report, ctx.healed_frames, save_healed))
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(report.model_dump_json(indent=2))
    return report
