"""The perception-act loop: observe, ask the model, validate, map, judge, act, record.

One readable sampling loop (in the spirit of the Anthropic computer-use demo). Each turn:

    Environment.observe() -> Frame -> redact -> ImagePlan + encode
    -> ModelClient.complete (or PaCoRe / grounding votes) -> Reply
    -> ActionSpace.validate -> geometry.resolve_point (model -> sent -> frame -> screen)
    -> Policy.judge (+ approval) -> Environment.act -> Recorder.append (flushed)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from loguru import logger
from PIL import Image

from guiagent.agent.budget import Budget, BudgetTracker
from guiagent.agent.config import AgentConfig, RunResult
from guiagent.agent.control import RunControl
from guiagent.agent.policy import (
    ActionContext,
    Approver,
    AutoApprover,
    Policy,
    TerminalApprover,
    Verdict,
)
from guiagent.agent.untrusted import find_injections, untrusted_note
from guiagent.core.actions import (
    ACTIONS_BY_NAME,
    POINT_KEYS,
    TERMINAL_ACTIONS,
    ActionSpace,
    BaseAction,
    InvalidToolCall,
    SkillCall,
    Type,
)
from guiagent.core.change import Ladder, LoopDetector, settle, zoom_region
from guiagent.core.env import Environment, Frame, SurfaceGoneError
from guiagent.core.geometry import (
    CoordSpace,
    FrameTransform,
    OutOfImageError,
    Point,
    PointTrail,
    Rect,
    Size,
    resolve_point,
)
from guiagent.core.killswitch import Killed, KillSwitch
from guiagent.core.redact import DEFAULT_SECRET_PATTERNS, Redactor
from guiagent.models.budget import ImagePlan, encode_image, plan_image
from guiagent.models.openai_client import ModelClient, ModelError
from guiagent.models.pacore import ground_votes, pacore
from guiagent.models.profiles import ModelProfile, get_profile
from guiagent.models.reply import Completion, Usage
from guiagent.models.step3vl import Conversation, image_part, prefix_reuse, text_of
from guiagent.record.evidence import (
    collect_evidence,
    crop_box_around,
    dom_at_point,
    dom_evidence,
)
from guiagent.record.trajectory import Recorder, RunHeader, StepRecord
from guiagent.skills.model import SecretStore
from guiagent.skills.registry import SkillRegistry

EventSink = Callable[[str, dict[str, Any]], Awaitable[None] | None]


class Agent:
    """Runs natural-language tasks on one environment with one model server."""

    def __init__(
        self,
        env: Environment,
        config: AgentConfig,
        *,
        client: ModelClient | None = None,
        action_space: ActionSpace | None = None,
        skills: SkillRegistry | None = None,
        secrets: SecretStore | None = None,
        policy: Policy | None = None,
        approver: Approver | None = None,
        redactor: Redactor | None = None,
        killswitch: KillSwitch | None = None,
        control: RunControl | None = None,
        on_event: EventSink | None = None,
    ) -> None:
        self.env = env
        self.config = config
        self.profile: ModelProfile = get_profile(config.profile)
        self.space: CoordSpace = config.coord_space or self.profile.coord_space
        self.max_image_tokens = config.max_image_tokens or self.profile.max_image_tokens
        self.action_space = action_space or ActionSpace()
        self.skills = skills
        self.secrets = secrets or SecretStore()
        self.policy = policy or Policy.load(config.policy_path)
        self.approver: Approver = approver or (
            AutoApprover(True) if config.dry_run else TerminalApprover()
        )
        self.redactor = redactor or Redactor(
            regions=[Rect(*r) for r in config.redact_regions],
            window_titles=config.redact_windows,
            # the built-in credential patterns always apply; the user's add to them
            secret_patterns=[*DEFAULT_SECRET_PATTERNS, *config.secret_patterns],
            secrets=config.secrets,
            ocr=self._desktop_ocr(env, config),
        )
        for value in self.secrets.known_values():
            self._add_secret(value)
        self.killswitch = killswitch or KillSwitch()
        if hasattr(env, "killswitch"):  # checked by the environment between any two input events
            env.killswitch = self.killswitch
        self.control = control or RunControl()
        self.on_event = on_event
        # action kinds whose rules read the text under the point ("*": every kind)
        self._kinds_reading_target_text = {
            kind
            for rule in self.policy.rules
            if rule.when.target_words or rule.when.target_regex
            for kind in (rule.when.action or ["*"])
        }
        self._client = client
        self._grounder: Any = None  # a LocalGrounder, made on first use (desktop target text)
        self._owns_client = client is None
        self._event_tasks: set[asyncio.Task[Any]] = set()  # async event-sink calls in flight
        self._steps_done = 0

    @staticmethod
    def _desktop_ocr(env: Environment, config: AgentConfig) -> Any:
        """On the desktop, secrets the user named are found on screen by OCR (about 0.1-1.5 s a
        step, so only when asked); the built-in patterns then redact text, not pixels."""
        if env.surface != "desktop":
            return None
        if not (config.secrets or config.secret_patterns):
            logger.info(
                "desktop: password dots are masked; pass --secret/--secret-pattern to OCR the screen for secrets"
            )
            return None
        from guiagent.grounding.local import LocalGrounder

        return LocalGrounder()

    def _add_secret(self, value: str, model_may_type: bool = False) -> None:
        """A value that must never be sent or written; unless ``model_may_type``, the policy's
        secret rule also stops the model from typing it (a value the model was never shown)."""
        self.redactor.add_secret(value)
        if not model_may_type:
            self.policy.add_secret(value)

    # --- model access ---------------------------------------------------------------

    @property
    def client(self) -> ModelClient:
        if self._client is None:
            if not self.config.model_url:
                raise ValueError("no model server: pass --model-url (e.g. http://127.0.0.1:30000)")
            sampling = {**self.profile.sampling, **self.config.sampling}
            self._client = ModelClient(
                self.config.model_url,
                model=self.config.model_name or None,
                api_key=self.config.api_key,
                timeout_s=self.config.request_timeout_s,
                sampling=sampling,
            )
        return self._client

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    async def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is None:
            return
        result = self.on_event(kind, data)
        if asyncio.iscoroutine(result):
            await result

    async def _decide(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], plan: ImagePlan
    ) -> tuple[Completion, dict[str, Any]]:
        """One decision: plain, streamed, PaCoRe or grounding votes. Returns the completion and what to record."""
        extra: dict[str, Any] = {}
        if self.config.pacore > 0:
            result = await pacore(self.client, messages, tools, self.config.pacore)
            extra["pacore"] = {
                "k": self.config.pacore,
                "conclusions": result.conclusions,
                "failed": result.failed,
                "synthesis_prompt_chars": len(result.synthesis_prompt),
            }
            spent = _total_usage([*result.rollouts, result.synthesis])
            return result.synthesis.model_copy(update={"usage": spent}), extra
        if self.config.ground_votes > 1:
            # the votes are points in model space: the radius is a share of that space's extent
            extent = {
                CoordSpace.IMAGE: plan.sent.long_side,
                CoordSpace.NORM1000: 1000.0,
                CoordSpace.NORM1: 1.0,
            }
            radius = self.config.vote_radius * extent[self.space]
            result = await ground_votes(
                self.client, messages, tools, self.config.ground_votes, self._read_point, radius
            )
            extra["votes"] = {
                "n": self.config.ground_votes,
                "points": [list(p) if p else None for p in result.points],
                "centre": list(result.point) if result.point else None,
                "agreement": result.agreement,
                "members": result.members,
            }
            chosen = result.chosen or result.completions[0]
            chosen = chosen.model_copy(update={"usage": _total_usage(result.completions)})
            return _with_point(chosen, result.point), extra
        if self.config.stream:
            loop = asyncio.get_running_loop()

            def forward(event: Any) -> None:
                text = getattr(event, "text", None)
                if text and self.on_event is not None:
                    data = {
                        "kind": getattr(event, "kind", "content"),
                        "text": self.redactor.redact_text(text),
                    }
                    outcome = self.on_event("delta", data)
                    if asyncio.iscoroutine(outcome):  # an async sink: run it, do not drop it
                        task = loop.create_task(outcome)
                        self._event_tasks.add(task)
                        task.add_done_callback(self._event_tasks.discard)

            return await self.client.complete(messages, tools, stream=True, on_event=forward), extra
        return await self.client.complete(messages, tools), extra

    def _read_point(self, completion: Completion) -> tuple[float, float] | None:
        for call in completion.reply.tool_calls:
            try:
                action = self.action_space.validate(call.name, call.arguments)
            except InvalidToolCall:
                continue
            points = action.points()
            if points:
                return points[0]
        return None

    # --- the loop ---------------------------------------------------------------------

    async def run(self, task: str) -> RunResult:
        config = self.config
        await self.client.health()
        self._steps_done = 0
        recorder = self._open_recorder(task)
        tracker = BudgetTracker(
            Budget(
                max_steps=config.max_steps,
                max_seconds=config.max_seconds,
                max_tokens=config.max_tokens,
            )
        )
        tracker.start()
        detector = LoopDetector()
        conversation: Conversation | None = None
        previous_text: str | None = None
        invalid_in_row = invalid_total = 0
        notes: list[str] = []
        zoom_next: Rect | None = None
        index = 0
        result: RunResult | None = None
        try:
            while result is None:
                stop = tracker.exceeded()
                if stop:
                    result = RunResult(status="stopped", stop_reason=stop)
                    break
                await self.control.wait_if_paused()
                if self.control.stop_requested:
                    result = RunResult(
                        status="stopped",
                        stop_reason=self.control.stop_reason or "stopped by the user",
                    )
                    break
                self.killswitch.check()
                index += 1
                tracker.add_step()
                step = StepRecord(index=index, started_at=time.time())
                timings: dict[str, float] = {}
                t = time.perf_counter()

                frame = await self._observe()
                dom = await self._dom()
                frame, redactions = await self.redactor.redact(frame, dom, await self._windows())
                injections = find_injections([str(e.get("text") or "") for e in dom or []])
                if injections:
                    notes.append(untrusted_note(injections, self.redactor.redact_text(task)))
                    step.untrusted = self.redactor.redact_data([i.model_dump() for i in injections])
                if zoom_next is not None:
                    frame = zoom_frame(frame, zoom_next)
                    notes.append(
                        "This screenshot is an enlarged part of the screen around your last target."
                    )
                    zoom_next = None
                timings["capture"] = _ms(t)

                t = time.perf_counter()
                plan = plan_image(frame.size, self.max_image_tokens, self.profile.image_rule)
                image_bytes = await asyncio.to_thread(
                    encode_image,
                    frame.image,
                    plan,
                    config.image_format.upper(),
                    config.jpeg_quality,
                )
                mime = "image/jpeg" if config.image_format == "jpeg" else "image/png"
                if conversation is None or conversation.sent != plan.sent:
                    conversation = conversation or Conversation(
                        frame.surface, self.redactor.redact_text(task), self.space, plan.sent
                    )
                    conversation.sent = plan.sent
                space = self._action_space(frame)
                tools = space.tools_json(self.space, plan.sent)
                messages = conversation.messages(image_bytes, mime, index, notes)
                notes = []
                timings["encode"] = _ms(t)

                t = time.perf_counter()
                await self._emit("step", index=index, frame=frame, plan=plan)
                completion, extra = await self._decide(messages, tools, plan)
                tracker.add_usage(completion.usage)
                timings["request"] = _ms(t)

                request_text = text_of(messages)
                step.request = {
                    "messages": len(messages),
                    "prompt_chars": len(request_text),
                    "image_tokens": plan.tokens,
                    "image_bytes": len(image_bytes),
                    "tools": [tool["function"]["name"] for tool in tools],
                    "prefix_reuse": round(prefix_reuse(previous_text, request_text), 4),
                    **extra,
                }
                previous_text = request_text
                step.frame_size = [frame.size.width, frame.size.height]
                step.sent_size = [plan.sent.width, plan.sent.height]
                step.meta = self.redactor.redact_data(
                    {
                        k: v
                        for k, v in frame.meta.items()
                        if isinstance(v, (str, int, float, list, dict))
                    }
                )
                origin = frame.transform.origin
                step.meta["transform"] = {
                    "origin": [origin.x, origin.y],
                    "scale": frame.transform.scale,
                }
                step.redactions = [n.model_dump() for n in redactions]

                t = time.perf_counter()
                action, trails, problem = self._parse(completion, plan, frame, space)
                timings["parse"] = _ms(t)
                await self._emit(
                    "reply",
                    index=index,
                    reasoning=completion.reply.reasoning,
                    action=action,
                    problem=problem,
                )

                if problem is not None:
                    invalid_in_row += 1
                    invalid_total += 1
                    step.invalid = self.redactor.redact_text(problem)
                    step.outcome = "invalid"
                    conversation.add_correction(
                        self.redactor.redact_text(completion.reply.content or ""),
                        f"Your reply could not be executed: {problem} Call exactly one of the tools: "
                        f"{', '.join(space.names)}.",
                    )
                    logger.warning(
                        "step {}: invalid reply ({} in a row): {}", index, invalid_in_row, problem
                    )
                    if invalid_in_row >= config.max_invalid:
                        result = RunResult(
                            status="failed",
                            stop_reason=f"{invalid_in_row} invalid model replies in a row; last: {problem}",
                        )
                    await self._record(recorder, step, frame, timings, completion)
                    continue
                invalid_in_row = 0
                assert action is not None
                if isinstance(action, Type) and await self._typing_into_password():
                    # the model wrote this password itself: hide it from now on, let it type it
                    self._add_secret(action.text, model_may_type=True)
                step.action = {"action": action.name, **self._redacted_args(action)}
                step.trail = [tr.to_dict() for tr in trails]

                if action.name in TERMINAL_ACTIONS:
                    step.outcome = "ok"
                    await self._record(recorder, step, frame, timings, completion)
                    text = getattr(action, "answer", None) or getattr(action, "reason", "")
                    result = RunResult(
                        status="finished" if action.name == "finish" else "failed",
                        answer=text,
                        stop_reason=f"model called {action.name}",
                    )
                    break

                screen_action = (
                    action.with_points([(tr.screen.x, tr.screen.y) for tr in trails])
                    if trails
                    else action
                )
                step.screen_action = {
                    "action": screen_action.name,
                    **self._redacted_args(screen_action),
                }
                verdict = await self._judge(screen_action, frame, trails, dom)
                step.policy = verdict.model_dump()
                if verdict.decision == "ask":
                    approved = await self.approver(screen_action, verdict, frame)
                    step.policy["approved"] = approved
                    if not approved:
                        verdict = Verdict(
                            decision="deny",
                            rule=verdict.rule,
                            reason=f"not approved: {verdict.reason}",
                        )

                args = self._redacted_args(action)
                if isinstance(action, SkillCall):  # the model called the skill by its own name
                    tool_name, tool_args = action.skill, args.get("params", {})
                else:
                    tool_name, tool_args = action.name, args
                if verdict.decision == "deny":
                    step.outcome = "denied"
                    conversation.add_action(
                        tool_name,
                        tool_args,
                        f"denied by policy ({verdict.rule}): {verdict.reason}. Do something else.",
                    )
                elif config.dry_run:
                    step.outcome = "dry_run"
                    conversation.add_action(tool_name, tool_args, "ok (dry run: not executed)")
                else:
                    t = time.perf_counter()
                    self.killswitch.check()
                    step.evidence = await self._evidence(recorder, frame, trails, dom)
                    try:
                        ok, detail = await self._perform(action, screen_action, step)
                    except InvalidToolCall as exc:  # e.g. a key this surface does not have
                        ok, detail = False, exc.message
                        step.invalid = self.redactor.redact_text(exc.message)
                        invalid_total += 1
                    timings["act"] = _ms(t)
                    step.outcome = "ok" if ok else ("invalid" if step.invalid else "error")
                    step.error = None if ok else self.redactor.redact_text(detail)
                    if ok:  # a skill's own report tells the model what it did; a click is just "ok"
                        said = (
                            self.redactor.redact_text(detail)
                            if isinstance(action, SkillCall)
                            else "ok"
                        )
                    else:
                        said = f"error: {step.error}"
                    conversation.add_action(tool_name, tool_args, said)

                t = time.perf_counter()
                digest = hashlib.sha1(
                    image_bytes
                ).hexdigest()  # what the model saw, 50x fewer bytes
                ladder = detector.observe(digest, screen_action, frame=frame)
                timings["watch"] = _ms(t)
                if ladder is Ladder.WARN:
                    notes.append(detector.warning_text())
                elif ladder is Ladder.ZOOM:
                    notes.append(detector.warning_text())
                    if trails:  # the next screenshot is an enlarged crop around the repeated target
                        zoom_next = zoom_region(frame.size, trails[0].frame, factor=2)
                elif ladder is Ladder.STUCK:
                    result = RunResult(
                        status="stopped",
                        stop_reason="stuck: the same action on an unchanged screen kept repeating",
                    )
                await self._record(recorder, step, frame, timings, completion)
                await self._emit(
                    "done",
                    index=index,
                    outcome=step.outcome,
                    timings=timings,
                    action=step.action,
                    trail=step.trail,
                    frame=frame,
                    policy=step.policy,
                )
        except Killed as exc:
            result = RunResult(status="stopped", stop_reason=f"kill switch: {exc}")
        except ModelError as exc:
            logger.error("model error: {}", exc)
            result = RunResult(
                status="error", stop_reason=f"model error ({type(exc).__name__}): {exc}"
            )
        except SurfaceGoneError as exc:
            logger.error("environment error: {}", exc)
            result = RunResult(
                status="error", stop_reason=f"environment error ({type(exc).__name__}): {exc}"
            )
        except BaseException as exc:
            logger.exception("run crashed at step {}", index)
            if recorder is not None:  # keep the recording consistent: the crash is its last word
                recorder.header.task = self.redactor.redact_text(recorder.header.task)
                recorder.finish(
                    "crashed", stop_reason=f"unexpected error: {type(exc).__name__}: {exc}"
                )
            raise
        result.steps = self._steps_done
        result.invalid_replies = invalid_total
        if recorder is not None:
            # a password recognised during the run may stand in the task as it was given
            recorder.header.task = self.redactor.redact_text(recorder.header.task)
            status = {
                "finished": "finished",
                "failed": "failed",
                "stopped": "stopped",
                "error": "failed",
            }[result.status]
            recorder.finish(status, stop_reason=result.stop_reason, answer=result.answer)
            result.run_dir = recorder.run_dir
        await self._emit("end", result=result)
        return result

    # --- pieces of a turn -------------------------------------------------------------

    async def _observe(self) -> Frame:
        if not self.config.settle:
            return await self.env.observe()
        settled = await settle(
            self.env.observe,
            quiet_ms=self.config.settle_quiet_ms,
            timeout_s=self.config.settle_timeout_s,
        )
        return settled.frame

    async def _dom(self) -> list[dict[str, Any]] | None:
        dom_elements = getattr(self.env, "dom_elements", None)
        if dom_elements is None:
            return None
        try:
            # a full-page frame shows fields below the fold too: they must be masked as well
            return await dom_elements(in_viewport=not getattr(self.env, "full_page", False))
        except Exception as exc:  # the page navigating mid-query is not fatal for the lookup
            logger.debug("dom snapshot failed: {}", exc)
            return None

    async def _windows(self) -> list[dict[str, Any]] | None:
        """Desktop windows (title and box) when the user listed windows to black out."""
        display = getattr(self.env, "display", None)
        if not self.redactor.window_titles or self.env.surface != "desktop" or not display:
            return None
        from guiagent.narrate.a11y import x_windows

        try:
            found = await asyncio.to_thread(x_windows, display)
        except Exception as exc:  # no window list: fall back to nothing rather than a crash
            logger.warning("could not list windows for redaction: {}", exc)
            return []
        return [
            {"title": w.title, "x": w.box[0], "y": w.box[1], "width": w.box[2], "height": w.box[3]}
            for w in found
        ]

    async def _perform(
        self, action: BaseAction, screen_action: BaseAction, step: StepRecord
    ) -> tuple[bool, str]:
        """Carry out one action: a skill through the registry, anything else on the environment."""
        if isinstance(action, SkillCall):
            if self.skills is None:
                raise InvalidToolCall(action.skill, f"no skill named {action.skill!r} is available")
            ran = await self.skills.run(
                action.skill,
                self.env,
                action.params,
                secrets=self.secrets,
                on_secret=self.redactor.add_secret,
            )
            step.sub_steps = self.redactor.redact_data(ran.sub_steps)
            return ran.ok, ran.detail
        outcome = await self.env.act(screen_action)
        return outcome.ok, outcome.detail

    def _action_space(self, frame: Frame) -> ActionSpace:
        """The built-in actions plus the skills that apply to this screen."""
        if self.skills is None:
            return self.action_space
        tools = self.skills.tools(frame.surface, frame.meta.get("url"), _title(frame))
        return ActionSpace(
            list(self.action_space.actions.values()),
            [*self.action_space.extra_tools.values(), *tools],
        )

    def _parse(
        self, completion: Completion, plan: ImagePlan, frame: Frame, space: ActionSpace
    ) -> tuple[BaseAction | None, list[PointTrail], str | None]:
        reply = completion.reply
        if not reply.tool_calls:
            why = "the reply had no tool call."
            if completion.finish_reason == "length":
                why = "the reply was cut off (length limit) before a tool call."
            if reply.errors:
                why += " " + "; ".join(reply.errors)
            return None, [], why
        call = reply.tool_calls[0]
        try:
            action = space.validate(call.name, call.arguments)
        except InvalidToolCall as exc:
            return None, [], exc.message
        trails: list[PointTrail] = []
        try:
            for x, y in action.points():
                trails.append(resolve_point(Point(x, y), self.space, plan.sent, frame.transform))
        except OutOfImageError as exc:
            return None, [], str(exc)
        return action, trails, None

    async def _judge(
        self,
        action: BaseAction,
        frame: Frame,
        trails: list[PointTrail],
        dom: list[dict[str, Any]] | None,
    ) -> Verdict:
        point = trails[0].screen if trails else None
        target_text = None
        kinds = self._kinds_reading_target_text
        if trails and (action.name in kinds or "*" in kinds):
            target_text = await self._target_text(frame, trails[0], dom)
        ctx = ActionContext(
            surface=frame.surface,
            url=frame.meta.get("url"),
            window_title=_title(frame),
            target_text=target_text,
            screen_point=(point.x, point.y) if point else None,
        )
        return self.policy.judge(action, ctx)

    async def _target_text(
        self, frame: Frame, trail: PointTrail, dom: list[dict[str, Any]] | None
    ) -> str | None:
        """The text of what is under the point: the DOM node in a browser, else OCR around it."""
        if dom is not None:
            node = dom_at_point(dom, trail.screen.x, trail.screen.y)
            return (node or {}).get("text") or None
        if self._grounder is None:
            from guiagent.grounding.local import LocalGrounder

            self._grounder = LocalGrounder()
        box = crop_box_around(frame.image, trail.frame.x, trail.frame.y, radius=80)
        lines = await self._grounder.aread_text(Frame.from_image(frame.image.crop(box)))
        point = Point(trail.frame.x - box[0], trail.frame.y - box[1])
        best = min(lines, key=lambda line: line.box.centre.distance(point), default=None)
        return best.text if best is not None else None

    async def _evidence(
        self,
        recorder: Recorder | None,
        frame: Frame,
        trails: list[PointTrail],
        dom: list[dict[str, Any]] | None,
    ) -> dict[str, Any] | None:
        """What a replay needs to find the target again: the crop around it and its DOM node."""
        if recorder is None or not trails:
            return None
        node = await dom_evidence(self.env, trails[0].screen.x, trails[0].screen.y, dom)
        node = self.redactor.redact_data(node)
        return collect_evidence(
            recorder, frame.image, (trails[0].frame.x, trails[0].frame.y), dom=node
        )

    async def _typing_into_password(self) -> bool:
        focused_element = getattr(self.env, "focused_element", None)
        if focused_element is None:
            return False
        try:
            element = await focused_element()
        except Exception as exc:  # e.g. the page navigated mid-query: the act will report it
            logger.warning("could not tell whether the focused field is a password: {}", exc)
            return False
        return bool(element) and element.get("type") == "password"

    def _redacted_args(self, action: BaseAction) -> dict[str, Any]:
        return {
            k: self.redactor.redact_text(v) if isinstance(v, str) else v
            for k, v in action.arguments().items()
        }

    def _reply_record(self, completion: Completion) -> dict[str, Any]:
        reply = completion.reply
        return self.redactor.redact_data(
            {
                "content": reply.content,
                "reasoning": reply.reasoning,
                "tool_calls": [
                    {"name": c.name, "arguments": c.arguments, "source": c.source}
                    for c in reply.tool_calls
                ],
                "errors": reply.errors,
                "finish_reason": completion.finish_reason,
                "usage": completion.usage.model_dump(),
                "latency_ms": round(completion.latency_s * 1000, 1),
            }
        )

    def _open_recorder(self, task: str) -> Recorder | None:
        if self.config.record_dir is None:
            return None
        run_dir = Path(self.config.record_dir)
        header = RunHeader(
            task=self.redactor.redact_text(task),
            surface=self.env.surface,
            model={
                "url": self.config.model_url,
                "name": self.config.model_name,
                "profile": self.profile.name,
            },
            settings=self.config.model_dump(mode="json", exclude={"api_key", "secrets"}),
        )
        return Recorder(run_dir, header)

    async def _record(
        self,
        recorder: Recorder | None,
        step: StepRecord,
        frame: Frame,
        timings: dict[str, float],
        completion: Completion,
    ) -> None:
        self._steps_done += 1
        if recorder is None:
            return
        t = time.perf_counter()
        # redacted now, not when the reply came: this step may have revealed a new secret
        step.reply = self._reply_record(completion)
        step.request = self.redactor.redact_data(step.request)
        step.frame = await asyncio.to_thread(recorder.save_frame, frame.image)
        timings["record"] = _ms(t)
        step.timings = {k: round(v, 2) for k, v in timings.items()}
        step.timings["total"] = round(sum(timings.values()), 2)
        await asyncio.to_thread(recorder.append, step)

    # --- questions about a screen ------------------------------------------------------

    async def ask(self, question: str, frame: Frame | None = None) -> str:
        """Ask the model a question about the current screen (no tools); returns its answer text."""
        frame = frame or await self.env.observe()
        frame, _ = await self.redactor.redact(frame, await self._dom(), None)
        plan = plan_image(frame.size, self.max_image_tokens, self.profile.image_rule)
        data = encode_image(frame.image, plan, fmt="JPEG", quality=self.config.jpeg_quality)
        conversation = Conversation(frame.surface, question, self.space, plan.sent)
        content = [image_part(data, "image/jpeg"), {"type": "text", "text": question}]
        messages = [conversation.head()[0], {"role": "user", "content": content}]
        completion = await self.client.complete(messages, None)
        return completion.reply.content.strip()

    async def ask_yes_no(self, question: str, frame: Frame | None = None) -> tuple[bool, str]:
        answer = await self.ask(
            f"{question}\nAnswer with yes or no first, then one sentence of why.", frame
        )
        first = answer.strip().lower().lstrip("*\"' ")
        return first.startswith("yes"), answer


def _title(frame: Frame) -> str | None:
    """The window or page title, whichever the environment reported."""
    return frame.meta.get("title") or frame.meta.get("window_title")


def _total_usage(completions: list[Completion]) -> Usage:
    """What several requests (PaCoRe rollouts, votes) cost together, for the token budget."""
    total = Usage()
    for completion in completions:
        u = completion.usage
        total.prompt_tokens += u.prompt_tokens
        total.completion_tokens += u.completion_tokens
        total.total_tokens += u.total_tokens
    return total


def _with_point(completion: Completion, point: tuple[float, float] | None) -> Completion:
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


def zoom_frame(frame: Frame, region: Rect, factor: float = 2.0) -> Frame:
    """An enlarged crop of ``frame`` whose transform still maps its pixels to the right screen points."""
    box = (int(region.left), int(region.top), int(region.right), int(region.bottom))
    crop = frame.image.crop(box)
    image = crop.resize((round(crop.width * factor), round(crop.height * factor)), Image.BICUBIC)
    origin = frame.transform.frame_to_screen(Point(box[0], box[1]))
    transform = FrameTransform(
        Size(image.width, image.height), origin=origin, scale=frame.transform.scale * factor
    )
    return Frame(
        image=image,
        transform=transform,
        surface=frame.surface,
        meta={**frame.meta, "zoom": list(box)},
    )


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def run_task(env: Environment, task: str, config: AgentConfig, **kwargs: Any) -> RunResult:
    """Synchronous wrapper for scripts: run one task to the end."""

    async def main() -> RunResult:
        agent = Agent(env, config, **kwargs)
        try:
            return await agent.run(task)
        finally:
            await agent.close()

    return asyncio.run(main())
