"""Replay a recorded run: strict re-execution, self-healing re-location, or verification only.

Every pointed step is located from its evidence before it acts (guiagent.record.locate):

- ``strict``: in a browser with DOM evidence, the element at the recorded point must be the
  recorded one (accessible role and name, id, DOM path: guiagent.record.match; a same-named
  element whose recorded neighbouring texts moved is another one); pixels are
  not compared, so fonts and rendering may differ between machines. Without a DOM (a
  desktop) the region around the point must look like the recorded crop (grayscale mean
  absolute difference <= threshold). Anything else stops the replay with the evidence that
  disagreed and the recorded and live crops side by side.
- ``heal``: a step whose target is not at its point is re-located: by role and name (with
  id, form field name, text, DOM path, named neighbours and rank combined, so a renamed
  label can still be found) in a browser; by OCR text, the crop at several scales, then
  neighbours elsewhere; the model last, when one is given and the evidence does not decide.
- ``verify``: execute nothing; check files, hashes, indices, actions and point trails.

Outcomes are replayed too (guiagent.record.outcomes): a scenario's ``expect``/``wait_for``
steps, the page or window each step led to, and (browser) that typed text landed in the
field the replay focused. Acting goes through ``act`` (the agent's step executor when the
command layer gives it; ``env.act`` otherwise).
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
from pydantic import BaseModel, Field, ValidationError

from guiagent.core.actions import (
    TERMINAL_ACTIONS,
    BaseAction,
    Type,
    Wait,
    action_from_dict,
)
from guiagent.core.env import ActResult, Environment, HoverHint
from guiagent.core.geometry import Point
from guiagent.core.killswitch import Killed
from guiagent.core.redact import REDACTED
from guiagent.record.dom_probe import focused, snapshot, typed_verdict
from guiagent.record.healed import Healed
from guiagent.record.locate import Located, Locator, ModelFallback
from guiagent.record.match import SAME_ELEMENT
from guiagent.record.outcomes import OutcomeChecker, OutcomeUnchecked
from guiagent.record.trajectory import Run, StepRecord
from guiagent.record.variables import (
    RedactedTextError,
    ReplayError,
    check_variables,
    declared_variables,
    resolve_typed,
    substitute_declared,
)
from guiagent.record.verify import verify_run

ReplayMode = Literal["strict", "heal", "verify"]
DEFAULT_THRESHOLD = 0.08
SKIPPED_OUTCOMES = ("invalid", "denied", "dry_run")
HOVER_HINT_S = 0.05  # a page read older than this tells a press nothing about hover styles


@dataclass
class ActRequest:
    """One action a replay performs, with what it found out about the target first."""

    action: BaseAction  # in screen coordinates
    step: StepRecord  # the recorded step it replays
    target: dict[str, Any] | None = None  # the live DOM element at the point (browser)
    page: dict[str, Any] | None = None  # the page's url and title just before (browser)

    @property
    def target_text(self) -> str | None:
        if not self.target:
            return None
        return self.target.get("name") or self.target.get("text") or None


# performs one action (the agent's step executor, given by the command layer; else env.act)
ActFn = Callable[[ActRequest], Awaitable[ActResult]]

__all__ = [
    "DEFAULT_THRESHOLD",
    "ActFn",
    "ActRequest",
    "ModelFallback",
    "ReplayError",
    "ReplayReport",
    "replay",
]


class StepResult(BaseModel):
    index: int
    action: dict[str, Any] | None = None
    status: Literal["ok", "skipped", "healed", "failed", "ended"] = "ok"
    point: list[float] | None = None  # recorded screen point
    new_point: list[float] | None = None  # healed screen point
    method: str | None = None  # dom, dom:id, pixels, template(..), ocr_text, expect, ...
    score: float | None = None  # a difference: 0 the same as recorded .. 1 nothing alike
    threshold: float | None = None  # the largest difference accepted
    rule: str = ""  # the evidence that agreed or disagreed, readable
    message: str = ""
    expected_crop: str | None = None
    actual_crop: str | None = None
    side_by_side: str | None = None
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
            if s.rule:
                lines.append(f"    because {s.rule}")
        if self.failure:
            lines.append(f"  {self.failure}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)


class _Context:
    def __init__(
        self,
        env: Environment,
        locator: Locator,
        outcomes: OutcomeChecker,
        act: ActFn,
        variables: Mapping[str, str],
        declared: Mapping[str, str],
        scenario_dir: Path | None,
    ) -> None:
        self.env, self.locator, self.outcomes, self.act = env, locator, outcomes, act
        self.variables, self.declared, self.scenario_dir = variables, declared, scenario_dir
        self.last_target: dict[str, Any] | None = None  # the live element the last pointed step hit
        # this step's page read in one round trip (dom_probe.snapshot), and when it was made
        self.seen: dict[str, Any] = {}
        self.seen_at = 0.0
        # text typed by the last step, not yet checked in the field: (text, secret, its
        # result, the css_path of the field the replay clicked for it or None)
        self.pending_typed: tuple[str, bool, StepResult, str | None] | None = None
        self.healed: Healed = {}  # see guiagent.record.healed


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


def flatten(steps: list[StepRecord]) -> list[StepRecord]:
    """Skill and scenario steps replay through their recorded sub-steps (depth first)."""
    out: list[StepRecord] = []
    for step in steps:
        if step.sub_steps:
            out.extend(flatten([StepRecord.model_validate(s) for s in step.sub_steps]))
        else:
            out.append(step)
    return out


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


def _result_from(result: StepResult, located: Located) -> None:
    result.method, result.rule = located.method or None, located.rule
    result.score, result.threshold = located.score, located.threshold
    result.expected_crop = located.crops.get("expected")
    result.actual_crop = located.crops.get("actual")
    result.side_by_side = located.crops.get("side_by_side")


async def _pointed(
    ctx: _Context, position: int, step: StepRecord, action: BaseAction, result: StepResult
) -> BaseAction | None:
    """Locate the target of a pointed step; the action to perform there, or None (failed)."""
    sp = step.screen_point()
    result.point = list(sp) if sp else None
    located = await ctx.locator.locate(step, action.name, ctx.seen.get("at"))
    _result_from(result, located)
    if located.method == "dom" and located.score is not None and not located.healed:
        # report the DOM agreement as a difference, like the pixel score: lower is closer
        result.score = round(1.0 - located.score, 3) if located.point else result.score
        result.threshold = round(1.0 - SAME_ELEMENT, 3) if located.point else result.threshold
    if located.point is None:
        result.status, result.message = "failed", located.failure or located.rule
        return None
    ctx.last_target = located.live
    if located.healed and sp is not None:
        result.new_point = [located.point.x, located.point.y]
        result.status = "healed"
        result.message = (
            f"step {step.index} healed by {located.method}: {sp} ->"
            f" ({located.point.x:.1f}, {located.point.y:.1f}); {located.rule}"
        )
        logger.info(result.message)
        ctx.healed[position] = {
            "frame": located.frame,
            "point": (located.point.x, located.point.y),
            "method": located.method,
            "live": located.live,
        }
        return _move_action(action, sp, located.point)
    return action


async def _typing_target_ok(ctx: _Context, step: StepRecord) -> str | None:
    """Before typing in a browser: the field the last pointed step acted on has the focus."""
    wanted = ctx.last_target
    if not ctx.locator.dom or not wanted or not wanted.get("editable"):
        return None
    field = ctx.seen["focused"] if "focused" in ctx.seen else await focused(ctx.env)
    if field is not None and field.get("css_path") == wanted.get("css_path"):
        return None
    got = f"{field.get('role')} {field.get('name')!r}" if field else "nothing"
    return (
        f"step {step.index}: would type into {got}, not the field the replay clicked"
        f" ({wanted.get('role')} {wanted.get('name')!r}): not typed"
    )


def _is_secret(step: StepRecord, action: BaseAction) -> bool:
    recorded = str((step.screen_action or {}).get("text", ""))
    return (
        REDACTED in recorded or bool(step.variables.get("secret")) or "value_hash" in step.variables
    )


async def _run_step(ctx: _Context, position: int, step: StepRecord, speed: float) -> StepResult:
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
        action = resolve_typed(step, action, ctx.variables, ctx.declared)
    except RedactedTextError as exc:
        result.status, result.message = "failed", str(exc)
        return result
    if isinstance(action, Wait):
        if speed > 0:
            await ctx.act(ActRequest(Wait(seconds=min(60.0, action.seconds / speed)), step))
        return result
    if action.points():
        moved = await _pointed(ctx, position, step, action, result)
        if moved is None:
            return result
        action = moved
    elif isinstance(action, Type) and (problem := await _typing_target_ok(ctx, step)):
        result.status, result.message = "failed", problem
        return result
    page = {k: ctx.seen[k] for k in ("url", "title") if k in ctx.seen} or None
    target = ctx.last_target if action.points() else None
    _hint_hover(ctx, action)
    try:
        act = await ctx.act(ActRequest(action, step, target, page))
    except Killed as exc:
        result.status, result.message = "failed", f"step {step.index}: stopped: {exc}"
        return result
    if not act.ok:
        result.status, result.message = (
            "failed",
            f"step {step.index}: {action.name} failed: {act.detail}",
        )
        return result
    if isinstance(action, Type):
        # checked with the next step's page read (one round trip), or at the end
        wanted = ctx.last_target if ctx.last_target and ctx.last_target.get("editable") else None
        meant = str(wanted["css_path"]) if wanted and wanted.get("css_path") else None
        ctx.pending_typed = (action.text, _is_secret(step, action), result, meant)
    return result


def _hint_hover(ctx: _Context, action: BaseAction) -> None:
    """Tell the page whether a press must wait for hover styles, from this step's page read
    when it was just made (the press then spares its own check; see HoverHint)."""
    hover = ctx.seen.get("hover")
    if (
        action.points()
        and isinstance(hover, bool)
        and isinstance(ctx.env, HoverHint)
        and time.monotonic() - ctx.seen_at <= HOVER_HINT_S
    ):
        ctx.env.note_hover_styled(hover)


async def _scenario_check(ctx: _Context, step: StepRecord) -> StepResult | None:
    """Replay an ``expect``/``wait_for`` step of a scenario recording; None for other steps."""
    info = (step.model_extra or {}).get("scenario_step") or {}
    kind = info.get("kind")
    if kind not in ("expect", "wait_for") or step.screen_action is not None:
        return None
    spec = {
        key: substitute_declared(value, ctx.variables, ctx.declared)
        if isinstance(value, str)
        else value
        for key, value in ((info.get("spec") or {}).get(kind) or {}).items()
    }
    result = StepResult(index=step.index, status="ok", method=kind)
    try:
        problem = await ctx.outcomes.scenario_check(kind, spec, ctx.scenario_dir)
    except OutcomeUnchecked as exc:
        problem = f"cannot be checked here: {exc}"
    label = info.get("label") or f"step {step.index} ({kind})"
    if problem:
        result.status, result.message = "failed", f"{label}: {problem}"
    else:
        result.message = f"{label}: checked"
    return result


async def _snapshot(ctx: _Context, step: StepRecord | None) -> dict[str, Any]:
    """A browser step's page (url, title, element at its point, focus) in one round trip;
    it also checks the text the previous step typed (see _typed_landed)."""
    action = (step.screen_action if step is not None else None) or {}
    typed, meant = (
        (ctx.pending_typed[0], ctx.pending_typed[3]) if ctx.pending_typed else (None, None)
    )
    if not ctx.locator.dom or (typed is None and (not action or step.outcome in SKIPPED_OUTCOMES)):  # type: ignore[union-attr]
        return {}
    point = None
    if step is not None and action.get("action") not in (None, "type", "key", "wait"):
        point = step.screen_point()
    return await snapshot(ctx.env, point, action.get("action") == "type", typed, meant) or {}


async def _typed_landed(ctx: _Context) -> bool:
    """The previous step's typed text is in the field the replay clicked for it (else the
    focused one); else that step fails."""
    if ctx.pending_typed is None:
        return True
    text, secret, result, meant = ctx.pending_typed
    ctx.pending_typed = None
    if typed_verdict(ctx.seen.get("focused"), ctx.seen.get("meant")) == "landed" and ctx.seen:
        return True
    # polls until the field has caught up; says where the text went instead
    problem = await ctx.outcomes.typed(text, secret, meant)
    if problem:
        result.status, result.message = "failed", f"step {result.index}: {problem}"
        return False
    return True


async def _run_steps(
    ctx: _Context, steps: list[StepRecord], report: ReplayReport, speed: float
) -> None:
    previous: StepRecord | None = None
    for position, step in enumerate(steps):
        step_started = time.monotonic()
        name = (step.action or {}).get("action")
        if step.screen_action is not None and step.outcome not in SKIPPED_OUTCOMES:
            await _pace(step, previous, step_started, speed)
        ctx.seen = await _snapshot(ctx, step)
        ctx.seen_at = time.monotonic()
        if not await _typed_landed(ctx):
            break
        if previous is not None and (problem := await ctx.outcomes.followed(step, ctx.seen)):
            # the screen after the previous step is not the one the recording saw next
            report.steps.append(
                StepResult(
                    index=step.index,
                    action=step.screen_action,
                    status="failed",
                    message=f"step {step.index}: not on the recorded page after step {previous.index}: {problem}",
                )
            )
            break
        checked = await _scenario_check(ctx, step)
        if checked is not None:
            report.steps.append(checked)
            previous = step
            if checked.status == "failed":
                break
            continue
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
            break
        if step.screen_action is None or step.outcome in SKIPPED_OUTCOMES:
            reason = "no action" if step.screen_action is None else f"outcome {step.outcome}"
            report.steps.append(
                StepResult(
                    index=step.index, action=step.screen_action, status="skipped", message=reason
                )
            )
            continue
        previous = step
        result = await _run_step(ctx, position, step, speed)
        result.duration_ms = round((time.monotonic() - step_started) * 1000, 2)
        report.steps.append(result)
        if result.status in ("failed", "ended"):
            break
    if ctx.pending_typed is not None and ctx.pending_typed[2].status != "failed":
        ctx.seen = await _snapshot(ctx, None)
        await _typed_landed(ctx)
    failed = next((s for s in report.steps if s.status == "failed"), None)
    if failed is not None:
        report.ok, report.failure = False, failed.message
        logger.warning("replay stopped: {}", failed.message)


def _env_act(env: Environment) -> ActFn:
    async def act(request: ActRequest) -> ActResult:
        return await env.act(request.action)

    return act


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
    act: ActFn | None = None,
) -> ReplayReport:
    """Replay ``run`` on ``env`` (``env`` may be None for verify). See the module docstring.

    ``act`` performs each action (default ``env.act``): the command layer passes the agent's
    step executor so a replay goes through the same kill switch and policy as a run.
    """
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
    steps = flatten(run.steps)
    declared = declared_variables(run)
    check_variables(run, steps, variables, declared)
    if env is None:
        raise ReplayError(f"{mode} replay needs an environment to act on")
    out = out_dir or run.path / "replays" / time.strftime("%Y%m%d-%H%M%S")
    report.out_dir = str(out)
    locator = Locator(run, env, mode == "heal", out, threshold, settle_timeout, grounder, model)
    source = run.header.settings.get("scenario")
    ctx = _Context(
        env,
        locator,
        OutcomeChecker(env, grounder, settle_timeout),
        act or _env_act(env),
        variables,
        declared,
        Path(str(source)).parent if source else None,
    )
    try:
        await ctx.outcomes.start(steps)
        await _run_steps(ctx, steps, report, speed)
    finally:
        await locator.close()
    report.duration_s = time.monotonic() - started
    if save_healed is not None and report.ok:
        from guiagent.record.healed import save_healed_run

        report.saved_healed = str(save_healed_run(run, ctx.healed, save_healed))
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(report.model_dump_json(indent=2))
    return report
