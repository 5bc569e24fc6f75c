"""The one step executor: every input event of a run goes through :meth:`StepExecutor.execute`.

    kill-switch check -> policy (+ approval) -> input (Environment.act) -> outcome check -> step record

The agent loop, the scenario runner (and the Python action API under it) and skills all
send their input events here, so a policy rule, the kill switch and the recording see every
event whoever made it. The step record is built by :meth:`StepExecutor.event_record` and
redacted by :meth:`StepExecutor.redact` (the same redaction for ``steps.jsonl`` and
``run.json``, see :meth:`StepExecutor.finish`).

Use::

    executor = StepExecutor(env, policy=policy, approver=approver, killswitch=ks,
                            redactor=redactor, recorder=recorder)
    outcome = await executor.execute(Click(x=10, y=20), StepContext(frame=frame, trail=trail))
    if outcome.status == "denied": ...
    await executor.write(outcome.record)   # or StepContext(write=True) to append at once

``execute`` never raises for a refused or failed action (see ``StepOutcome.status``); it
raises :class:`~guiagent.core.killswitch.Killed` when the kill switch is engaged and lets
the environment's own errors (surface gone, invalid key) through.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger

from guiagent.agent.policy import ActionContext, Approver, AutoApprover, Policy, Verdict
from guiagent.agent.target import needs_ocr, target_fields
from guiagent.core.actions import BaseAction, Type
from guiagent.core.env import Environment, FocusSource, Frame, KillSwitchHolder
from guiagent.core.geometry import Point
from guiagent.core.killswitch import KillSwitch
from guiagent.core.redact import REDACTED, Redactor
from guiagent.record.evidence import (
    collect_evidence,
    crop_box_around,
    dom_at_point,
    dom_evidence,
)
from guiagent.record.trajectory import Recorder, StepRecord

if TYPE_CHECKING:
    from PIL import Image

StepStatus = Literal["ok", "error", "denied", "dry_run"]
# another way to carry out the input than one Environment.act (a skill call): (ok, detail)
Perform = Callable[[], Awaitable[tuple[bool, str]]]
# the outcome check: after the input, a problem to report (the step then failed) or None
OutcomeCheck = Callable[[BaseAction], Awaitable[str | None]]

# Never rewritten by redaction: file names inside the run directory, and ``variables``
# (a secret's name and no value; a short secret may look like its name).
_KEEP_KEYS = {"frame": str, "crop": str, "variables": dict}


@dataclass
class StepContext:
    """Where an action lands and how to record it; only ``frame`` is required.

    ``trail``: one dict per point of the action with at least ``frame`` and ``screen``
    ([x, y]; the agent adds ``model``/``sent``). ``shown``: ``frame`` as it may be written
    (already redacted, with ``redactions``); None: the executor redacts ``frame`` itself.
    """

    frame: Frame
    trail: list[dict[str, Any]] = field(default_factory=list)
    dom: list[Any] | None = None
    shown: Frame | None = None
    redactions: list[dict[str, Any]] | None = None
    model_action: dict[str, Any] | None = None  # the action as the model gave it (its space)
    sent_size: list[int] | None = None
    target_text: str | None = None  # what is under the point, when the caller already knows
    evidence_text: str | None = None  # the OCR text matched at the point, and its box
    evidence_box: tuple[float, float, float, float] | None = None
    variables: dict[str, Any] | None = None  # how a replay gets a typed secret's value
    # the element at the first point (role, name, DOM path...), read before the input
    target: dict[str, Any] | None = None
    gated: tuple[Verdict | None, dict[str, Any] | None] | None = None  # gate() already ran
    perform: Perform | None = None
    check: OutcomeCheck | None = None
    index: int = 0
    write: bool = False  # append the record now (else the caller adds to it and writes it)
    record: bool = True  # build a record at all (a recorder is also needed)


@dataclass
class StepOutcome:
    status: StepStatus
    detail: str = ""
    verdict: Verdict | None = None
    record: dict[str, Any] = field(default_factory=dict)  # redacted; {} without a recorder
    ms: float = 0.0
    policy: dict[str, Any] | None = None  # the policy's verdict as recorded

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class StepExecutor:
    """Runs one input event with every safeguard, on one environment, for one run."""

    def __init__(
        self,
        env: Environment,
        *,
        policy: Policy | None = None,
        approver: Approver | None = None,
        killswitch: KillSwitch | None = None,
        redactor: Redactor | None = None,
        recorder: Recorder | None = None,
        dry_run: bool = False,
        grounder: Any = None,
    ) -> None:
        self.env = env
        self.policy = policy  # None: every action is allowed (a scenario's own steps)
        self.approver: Approver = approver or AutoApprover(False)
        self.killswitch = killswitch or KillSwitch()
        # checked by the environment between any two events it sends; a kill switch given
        # here replaces the environment's, a default one only fills a gap
        if isinstance(env, KillSwitchHolder) and (killswitch is not None or env.killswitch is None):
            env.killswitch = self.killswitch
        self.redactor = redactor or Redactor()
        self.recorder = recorder
        self.dry_run = dry_run
        self._grounder = grounder  # reads the text under a point on a desktop (made on first use)
        self._may_type: dict[str, str | None] = {}  # value -> the stored secret's name
        # the last frame made fit to write, and the file its image went to: the events of a
        # step share the step's frame, which is then redacted and encoded once
        self._last_shown: tuple[Frame, Any, tuple[str, ...], Frame, list[dict[str, Any]]] | None
        self._last_shown = None
        self._last_saved: tuple[Image.Image, str] | None = None

    @contextmanager
    def typing_allowed(self, values: Iterable[str] | Mapping[str, str]) -> Iterator[None]:
        """While inside, typing one of ``values`` (secrets a skill resolved from the secret
        store for this call; a mapping gives their names) is not judged a secret leak; every
        other rule still applies, and a named secret is judged against its scope."""
        named = values.items() if isinstance(values, Mapping) else ((None, v) for v in values)
        added = {v: n for n, v in named if v and v not in self._may_type}
        self._may_type.update(added)
        try:
            yield
        finally:
            for value in added:
                self._may_type.pop(value, None)

    # --- the pipeline -------------------------------------------------------------------

    async def execute(self, action: BaseAction, context: StepContext) -> StepOutcome:
        """Gate, perform, check and record one action given in screen coordinates."""
        self.killswitch.check()
        if context.gated is not None:
            verdict, policy_record = context.gated
        else:
            verdict, policy_record = await self.gate(action, context)
        started = time.perf_counter()
        framed: asyncio.Future[tuple[dict[str, Any], Any]] | None = None
        if verdict is not None and verdict.decision == "deny":
            outcome = StepOutcome("denied", verdict.reason, verdict)
        elif self.dry_run:
            outcome = StepOutcome("dry_run", "not executed (dry run)", verdict)
        else:
            if context.record and self.recorder is not None and context.trail:
                # replay evidence: the element under the point as it was before the input
                # (unless the caller read it already, beside its own checks)
                sx, sy = context.trail[0]["screen"]
                if context.target is None:
                    context.target = await dom_evidence(self.env, sx, sy, context.dom)
            # the record's frame and evidence show the screen before the input: they are
            # redacted, encoded and written while the input happens
            framed = (
                asyncio.ensure_future(self._framed(context))
                if context.record and self.recorder is not None
                else None
            )
            try:
                outcome = await self._perform(action, context, verdict)
            except BaseException:
                if framed is not None:
                    framed.cancel()
                raise
        outcome.ms = (time.perf_counter() - started) * 1000
        outcome.policy = policy_record
        if context.record and self.recorder is not None:
            outcome.record = await self.event_record(action, context, outcome, framed)
            if context.write:
                await self.write(outcome.record)
        return outcome

    async def gate(
        self, action: BaseAction, context: StepContext
    ) -> tuple[Verdict | None, dict[str, Any] | None]:
        """The policy's verdict, an ``ask`` settled by the approver, and what to record of it
        (the rule's own verdict, plus ``approved`` when asked). None, None: no policy."""
        if self.policy is None:
            return None, None
        judged = action
        ctx = await self._action_context(action, context)
        if isinstance(action, Type) and action.text in self._may_type:
            name = self._may_type[action.text]
            if name is not None:  # a stored secret typed by name: its scope decides
                ctx = ctx.model_copy(update={"secret": name})
            else:  # a secret a skill was given to type: judged without its value
                judged = action.model_copy(update={"text": REDACTED})
        verdict = self.policy.judge(judged, ctx)
        record = verdict.model_dump()
        if verdict.decision != "ask":
            return verdict, record
        approved = await self.approver(action, verdict, context.frame)
        record.update(asked=True, approved=approved)  # the approver was consulted
        if approved:
            return verdict, record
        denied = Verdict(
            decision="deny", rule=verdict.rule, reason=f"not approved: {verdict.reason}"
        )
        return denied, record

    async def _perform(
        self, action: BaseAction, context: StepContext, verdict: Verdict | None
    ) -> StepOutcome:
        self.killswitch.check()  # the approval may have taken a while
        if context.perform is not None:
            ok, detail = await context.perform()
        else:
            result = await self.env.act(action)
            ok, detail = result.ok, result.detail
        if ok and context.check is not None:
            problem = await context.check(action)
            if problem:
                ok, detail = False, problem
        return StepOutcome("ok" if ok else "error", detail, verdict)

    # --- questions the policy asks ------------------------------------------------------

    async def _action_context(self, action: BaseAction, context: StepContext) -> ActionContext:
        point = context.trail[0]["screen"] if context.trail else None
        if point is None and action.points():
            point = action.points()[0]
        target: dict[str, str | None] = {}
        if context.target_text is not None:
            target["target_text"] = context.target_text
        if point is not None and self._reads_target_text(action):
            target = {**await self._target(context), **target}
        frame = context.frame
        return ActionContext(
            surface=frame.surface,
            url=frame.meta.get("url"),
            window_title=frame_title(frame),
            screen_point=(float(point[0]), float(point[1])) if point is not None else None,
            **target,
        )

    def _reads_target_text(self, action: BaseAction) -> bool:
        assert self.policy is not None
        kinds = self.policy.kinds_reading_target()
        return action.name in kinds or "*" in kinds

    async def _target(self, context: StepContext) -> dict[str, str | None]:
        """Every name of what is under the point: in a browser the DOM node's text,
        accessible name, role and CSS-drawn text (OCR at the point when it has none: an
        icon, a canvas); on the desktop the OCR text around the point."""
        if not context.trail:
            return {}
        sx, sy = context.trail[0]["screen"]
        if context.dom is not None:
            fields = target_fields(context.dom, sx, sy)
            if needs_ocr(fields):
                fields["target_css_text"] = await self._target_text(context)
            return fields
        return {"target_text": await self._target_text(context)}

    async def _target_text(self, context: StepContext) -> str | None:
        """The OCR text nearest the point."""
        if not context.trail:
            return None
        if self._grounder is None:
            from guiagent.grounding.local import LocalGrounder

            self._grounder = LocalGrounder()
        frame = context.frame
        fx, fy = context.trail[0]["frame"]
        box = crop_box_around(frame.image, fx, fy, radius=80)
        lines = await self._grounder.aread_text(Frame.from_image(frame.image.crop(box)))
        point = Point(fx - box[0], fy - box[1])
        best = min(lines, key=lambda line: line.box.centre.distance(point), default=None)
        return best.text if best is not None else None

    async def typing_into_password(self) -> bool:
        """Whether the focused element is a password field (a desktop cannot say: False)."""
        if not isinstance(self.env, FocusSource):
            return False
        try:
            element = await self.env.focused_element()
        except Exception as exc:  # the page navigated mid-query: the act will report it
            logger.debug("cannot ask for the focused element: {}", exc)
            return False
        return bool(element) and str(element.get("type") or "").lower() == "password"

    # --- the step record: built and redacted here only -----------------------------------

    async def shown_frame(
        self, frame: Frame, dom: list[Any] | None
    ) -> tuple[Frame, list[dict[str, Any]]]:
        """``frame`` as it may be written: password fields and on-screen secrets blacked out."""
        known = tuple(self.redactor.secrets)
        last = self._last_shown
        if last is not None and last[0] is frame and last[1] is dom and last[2] == known:
            return last[3], list(last[4])
        shown, notes = await self.redactor.redact(frame, dom, None)
        dumped = [n.model_dump() for n in notes]
        self._last_shown = (frame, dom, known, shown, dumped)
        return shown, list(dumped)

    async def frame_record(
        self,
        frame: Frame,
        *,
        index: int = 0,
        shown: Frame | None = None,
        redactions: list[dict[str, Any]] | None = None,
        dom: list[Any] | None = None,
        sent_size: list[int] | None = None,
    ) -> dict[str, Any]:
        """The part of a step record about the screen: the frame written (redacted), sizes, meta."""
        assert self.recorder is not None
        if shown is None:
            shown, redactions = await self.shown_frame(frame, dom)
        recorder = self.recorder
        # the bytes sent to the model when it was sent the captured JPEG (redaction touched
        # nothing: else ``shown`` is a new image and has no captured bytes)
        sent = shown.encoded_as("JPEG", recorder.quality) if recorder.jpeg else None
        saved = self._last_saved
        if saved is not None and saved[0] is shown.image:
            path = saved[1]
        else:
            path = await asyncio.to_thread(recorder.save_frame, shown.image, None, sent)
            self._last_saved = (shown.image, path)
        return {
            "index": index,
            "frame": path,
            "frame_size": [frame.size.width, frame.size.height],
            "sent_size": sent_size or [frame.size.width, frame.size.height],
            "meta": frame_meta(frame),
            "redactions": redactions or [],
        }

    async def _framed(self, context: StepContext) -> tuple[dict[str, Any], Any]:
        """The frame part of an event record and its evidence (None without a point)."""
        shown, redactions = context.shown, context.redactions
        if shown is None:
            shown, redactions = await self.shown_frame(context.frame, context.dom)
        data = await self.frame_record(
            context.frame,
            index=context.index,
            shown=shown,
            redactions=redactions,
            sent_size=context.sent_size,
        )
        # the crop around the point (none for a pointless event: no thread hop for it)
        evidence = (
            await asyncio.to_thread(self._evidence, shown, context) if context.trail else None
        )
        return data, evidence

    async def event_record(
        self,
        action: BaseAction,
        context: StepContext,
        outcome: StepOutcome,
        framed: Awaitable[tuple[dict[str, Any], Any]] | None = None,
    ) -> dict[str, Any]:
        """One input event as a (redacted) step record dict, replayable on its own;
        ``framed``: its frame part and evidence, made already (:meth:`_framed`)."""
        data, evidence = await (framed if framed is not None else self._framed(context))
        frame_points = [tuple(t["frame"]) for t in context.trail]
        frame_action = action.with_points(frame_points) if frame_points else action
        acted = outcome.status in ("ok", "error")
        data.update(
            {
                "variables": context.variables or {},
                "action": context.model_action or action_dict(frame_action),
                "screen_action": action_dict(action),
                "trail": context.trail,
                "evidence": evidence if acted else None,
                "policy": outcome.policy,
                "outcome": outcome.status,
                "error": outcome.detail if outcome.status == "error" else None,
                "timings": {"act_ms": round(outcome.ms, 2)},
            }
        )
        return self.redact(data)

    def _evidence(self, shown: Frame, context: StepContext) -> dict[str, Any] | None:
        """What a healing replay needs to find the target again (crop, DOM node, text)."""
        if not context.trail:
            return None
        assert self.recorder is not None
        fx, fy = context.trail[0]["frame"]
        if not (0 <= fx < shown.size.width and 0 <= fy < shown.size.height):
            return None  # a point off the frame (an explicit `at`): no pixels to keep
        sx, sy = context.trail[0]["screen"]
        node = context.target or (dom_at_point(context.dom, sx, sy) if context.dom else None)
        try:
            return collect_evidence(
                self.recorder,
                shown.image,
                (fx, fy),
                dom=self.redactor.redact_data(node),
                text=context.evidence_text,
                text_box=context.evidence_box,
            )
        except (OSError, ValueError) as exc:
            logger.warning("no evidence recorded for the point {}: {}", (fx, fy), exc)
            return None

    def redact(self, value: Any) -> Any:
        """Every known secret in the strings of ``value`` replaced (file names kept)."""
        return redact_record(self.redactor, value)

    async def write(self, data: dict[str, Any] | StepRecord) -> None:
        """Append one step record, redacted now (a later step may have revealed a secret)."""
        if self.recorder is None:
            return
        raw = data.model_dump() if isinstance(data, StepRecord) else data
        record = StepRecord.model_validate(self.redact(raw))
        await asyncio.to_thread(self.recorder.append, record)

    def finish(
        self, status: str, stop_reason: str | None = None, answer: str | None = None
    ) -> None:
        """Close the recording: ``run.json`` gets the same redaction as every step."""
        if self.recorder is not None:
            finish_recording(self.recorder, self.redactor, status, stop_reason, answer)


def redact_record(redactor: Redactor, value: Any) -> Any:
    """Every known secret in the strings of a record replaced; file names and a replay's
    ``variables`` (secret names) kept as they are."""
    if isinstance(value, dict):
        return {
            k: v if isinstance(v, _KEEP_KEYS.get(k, ())) else redact_record(redactor, v)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_record(redactor, v) for v in value)
    return redactor.redact_data(value)


def finish_recording(
    recorder: Recorder,
    redactor: Redactor,
    status: str,
    stop_reason: str | None = None,
    answer: str | None = None,
) -> None:
    """Close a recording with its header redacted as the steps are (task, settings, reasons)."""
    header = recorder.header
    header.task = redactor.redact_text(header.task)
    header.settings = redactor.redact_data(header.settings)
    recorder.finish(
        status,  # type: ignore[arg-type]
        stop_reason=redactor.redact_text(stop_reason) if stop_reason else stop_reason,
        answer=redactor.redact_text(answer) if answer else answer,
    )


def frame_title(frame: Frame) -> str | None:
    """The window or page title, whichever the environment reported."""
    return frame.meta.get("title") or frame.meta.get("window_title")


def frame_meta(frame: Frame) -> dict[str, Any]:
    """A frame's JSON-able meta data and its transform, as a step record keeps them."""
    meta = {
        k: v
        for k, v in frame.meta.items()
        if isinstance(v, (str, int, float, bool, type(None), list, dict))
    }
    origin = frame.transform.origin
    meta["transform"] = {"origin": [origin.x, origin.y], "scale": frame.transform.scale}
    return meta


def action_dict(action: BaseAction) -> dict[str, Any]:
    return {"action": action.name, **action.arguments()}
