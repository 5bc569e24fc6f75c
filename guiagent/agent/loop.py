"""The perception-act loop, as named phases over one run state.

One readable sampling loop (in the spirit of the Anthropic computer-use demo). Each turn:

    observe        Environment.observe() -> Frame -> redact (+ untrusted text, zoom)
    build_request  ImagePlan + encode -> the conversation's messages and tools
    decide         ModelClient.complete (or PaCoRe / grounding votes) -> Completion
    parse          ActionSpace.validate -> geometry.resolve_point (model -> sent -> frame -> screen)
    gate           the screen-space action -> StepExecutor.gate (policy + approval)
    act            StepExecutor.execute (kill switch, input, outcome) -> tell the model
    watch          the loop detector (warn, zoom, stop when stuck)
    record         StepExecutor.write (built and redacted there, flushed)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from loguru import logger

from guiagent.agent.budget import Budget, BudgetTracker
from guiagent.agent.config import AgentConfig, RunResult
from guiagent.agent.control import RunControl
from guiagent.agent.decide import decide, reply_record, stream_forwarder
from guiagent.agent.frames import observe_with_dom
from guiagent.agent.policy import Approver, AutoApprover, Policy, TerminalApprover
from guiagent.agent.sensing import (
    SecretSource,
    SkillSource,
    desktop_ocr,
    open_recorder,
    register_secrets,
    text_near_reader,
    window_list,
)
from guiagent.agent.state import RunState, Turn, zoom_frame
from guiagent.agent.step import StepExecutor, action_dict
from guiagent.agent.support import AgentSupport
from guiagent.agent.target import is_password_at
from guiagent.agent.untrusted import (
    LazyLocalReader,
    find_injections,
    read_screen_lines,
    screen_texts,
    untrusted_note,
)
from guiagent.core.actions import (
    TERMINAL_ACTIONS,
    ActionSpace,
    InvalidToolCall,
    SkillCall,
    Type,
)
from guiagent.core.change import Ladder, zoom_region
from guiagent.core.env import (
    Environment,
    SurfaceGoneError,
)
from guiagent.core.geometry import CoordSpace, OutOfImageError, Point, Rect, Size, resolve_point
from guiagent.core.killswitch import DeadlineExceeded, Killed, KillSwitch
from guiagent.core.redact import (
    DEFAULT_SECRET_PATTERNS,
    ChangedTextScan,
    Redactor,
    redact_messages,
    scrub_logs_with,
)
from guiagent.models.budget import encode_image, plan_image
from guiagent.models.openai_client import ModelClient, ModelError
from guiagent.models.profiles import ModelProfile, get_profile
from guiagent.models.step3vl import Conversation, prefix_reuse, text_of
from guiagent.record.trajectory import StepRecord

T = TypeVar("T")
EventSink = Callable[[str, dict[str, Any]], Awaitable[None] | None]
_STATUS_ON_DISK = {
    "finished": "finished",
    "failed": "failed",
    "stopped": "stopped",
    "error": "failed",
}


class Agent(AgentSupport):
    """Runs natural-language tasks on one environment with one model server."""

    def __init__(
        self,
        env: Environment,
        config: AgentConfig,
        *,
        client: ModelClient | None = None,
        action_space: ActionSpace | None = None,
        skills: SkillSource | None = None,
        secrets: SecretSource | None = None,
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
        self.secrets = secrets
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
            ocr=desktop_ocr(env, config),
        )
        register_secrets(self.redactor, self.policy, secrets, config.secrets)
        scrub_logs_with(self.redactor)
        # OCR of what changed: the desktop's text for redaction and the untrusted-text note;
        # in a browser, the final pass over the image sent once secrets are known
        reader = LazyLocalReader()  # reads whole crops (no diffing of its own)
        self._scan = ChangedTextScan(reader)
        if env.surface == "browser" and self.redactor.final_ocr is None:
            self.redactor.final_ocr = reader
        self.killswitch = killswitch or KillSwitch()
        self.control = control or RunControl()
        self.on_event = on_event
        # the one step executor: every input event of a run (the model's and its skills')
        self.executor = StepExecutor(
            env,
            policy=self.policy,
            approver=self.approver,
            killswitch=self.killswitch,
            redactor=self.redactor,
            dry_run=config.dry_run,
        )
        self._client = client
        self._owns_client = client is None
        self._steps_done = 0
        self._pointed_at_password = False  # the last click landed on a password field

    def _add_secret(self, value: str, model_may_type: bool = False) -> None:
        """A value that must never be sent or written; unless ``model_may_type``, the policy's
        secret rule also stops the model from typing it (a value the model was never shown)."""
        self.redactor.add_secret(value, look_for_pixels=not model_may_type)
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
                max_reply_bytes=self.config.max_reply_bytes,
                max_tool_calls=self.config.max_tool_calls,
            )
        return self._client

    async def close(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()

    def _emit_now(self, kind: str, data: dict[str, Any]) -> Any:
        """Call the event sink from synchronous code (streamed deltas); may return a coroutine."""
        return None if self.on_event is None else self.on_event(kind, data)

    async def _emit(self, kind: str, **data: Any) -> None:
        if self.on_event is None:
            return
        data = {k: self.redactor.redact_data(v) for k, v in data.items()}  # what leaves the agent
        result = self.on_event(kind, data)
        if asyncio.iscoroutine(result):
            await result

    # --- the loop ---------------------------------------------------------------------

    async def run(self, task: str) -> RunResult:
        """Run ``task`` to its end: finished, failed, stopped (budget, user, kill switch) or error."""
        await self.client.health()
        state = self._start(task)
        try:
            while state.result is None and not self._should_stop(state):
                await self.control.wait_if_paused()
                if self._should_stop(state):
                    break
                self.killswitch.check()
                turn = await self.observe(state)
                await self.build_request(state, turn)
                await self.decide(state, turn)
                if await self.parse(state, turn) and not self._ends_run(state, turn):
                    await self.gate(state, turn)
                    await self.act(state, turn)
                    await self.watch(state, turn)
                await self.record(state, turn)
        except DeadlineExceeded as exc:  # --max-seconds ran out while waiting or acting
            state.result = RunResult(
                status="stopped", stop_reason=f"{exc} (during step {state.index})"
            )
        except Killed as exc:
            state.result = RunResult(status="stopped", stop_reason=f"kill switch: {exc}")
        except (ModelError, SurfaceGoneError) as exc:
            where = "model" if isinstance(exc, ModelError) else "environment"
            logger.error("{} error: {}", where, exc)
            state.result = RunResult(
                status="error", stop_reason=f"{where} error ({type(exc).__name__}): {exc}"
            )
        except BaseException as exc:
            self.killswitch.set_deadline(None)
            # the message only: a traceback with loguru's variable dump would print the task and
            # secrets held in locals (the exception goes on up with its own traceback)
            logger.error(
                "run crashed at step {}: {}",
                state.index,
                self.redactor.redact_text(f"{type(exc).__name__}: {exc}"),
            )
            # keep the recording consistent: the crash is its last word
            self.executor.finish("crashed", f"unexpected error: {type(exc).__name__}: {exc}")
            raise
        return await self._end(state)

    def _start(self, task: str) -> RunState:
        self._steps_done = 0
        self.executor.recorder = open_recorder(
            self.env, self.config, self.profile, self.redactor, task
        )
        config = self.config
        tracker = BudgetTracker(
            Budget(
                max_steps=config.max_steps,
                max_seconds=config.max_seconds,
                max_tokens=config.max_tokens,
            )
        )
        tracker.start()
        if config.max_seconds is not None:  # checked while waiting and between input events
            self.killswitch.set_deadline(
                time.monotonic() + config.max_seconds,
                f"wall-time budget of {config.max_seconds:g} s used up",
            )
        return RunState(task=task, tracker=tracker)

    def _should_stop(self, state: RunState) -> bool:
        """A budget ran out or the user asked to stop: the result says which."""
        stop = state.tracker.exceeded()
        if stop:
            state.result = RunResult(status="stopped", stop_reason=stop)
        elif self.control.stop_requested:
            reason = self.control.stop_reason or "stopped by the user"
            state.result = RunResult(status="stopped", stop_reason=reason)
        return state.result is not None

    async def _end(self, state: RunState) -> RunResult:
        self.killswitch.set_deadline(None)
        result = state.result
        assert result is not None
        result.steps = self._steps_done
        result.invalid_replies = state.invalid_total
        result.stop_reason = self.redactor.redact_text(result.stop_reason or "") or None
        recorder = self.executor.recorder
        if recorder is not None:
            # a password recognised during the run may stand in the task as it was given
            self.executor.finish(_STATUS_ON_DISK[result.status], result.stop_reason, result.answer)
            result.run_dir = recorder.run_dir
        await self._emit("end", result=result)
        return result

    async def _watched(self, work: Awaitable[T]) -> T:
        """Await ``work`` (a model request) while checking the kill switch and the run's
        deadline every 50 ms; either cancels the request and raises."""
        task = asyncio.ensure_future(work)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.05)
                if done:
                    return task.result()
                self.killswitch.check()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # --- the phases of a turn ------------------------------------------------------------

    async def observe(self, state: RunState) -> Turn:
        """A settled, redacted frame; untrusted text on it and a pending zoom become notes."""
        state.index += 1
        state.tracker.add_step()
        turn = Turn(step=StepRecord(index=state.index, started_at=time.time()))
        t = time.perf_counter()
        frame, turn.dom = await observe_with_dom(
            self.env, self.config, self.redactor, self._sent_size, state.zoom_next is not None
        )
        # the desktop's text, OCR of the changed regions: redaction and the note use it;
        # read while the redactor scans the pixels for password dots
        reading = None
        if turn.dom is None:
            reading = asyncio.ensure_future(read_screen_lines(frame, self._scan))
        try:
            windows = await window_list(self.env, self.redactor)
            frame, notes = await self.redactor.redact(frame, turn.dom, windows, text_boxes=reading)
        finally:
            if reading is not None and not reading.done():
                reading.cancel()
        lines = None if reading is None else reading.result()
        turn.redactions = [n.model_dump() for n in notes]
        injections = find_injections(screen_texts(turn.dom, lines))
        if injections:
            state.notes.append(untrusted_note(injections, self.redactor.redact_text(state.task)))
            turn.step.untrusted = self.redactor.redact_data([i.model_dump() for i in injections])
        if state.zoom_next is not None:
            frame = zoom_frame(frame, state.zoom_next)
            state.notes.append(
                "This screenshot is an enlarged part of the screen around your last target."
            )
            state.zoom_next = None
        turn.frame = frame
        turn.timed("capture", t)
        return turn

    def _sent_size(self, frame_size: Size) -> Size:
        """The size a frame of ``frame_size`` is sent to the model at."""
        return plan_image(frame_size, self.max_image_tokens, self.profile.image_rule).sent

    async def build_request(self, state: RunState, turn: Turn) -> None:
        """Resize and encode the frame for the model; the messages and the tools it is offered."""
        config, frame = self.config, turn.frame
        assert frame is not None
        t = time.perf_counter()
        plan = plan_image(frame.size, self.max_image_tokens, self.profile.image_rule)
        # the JPEG the browser captured at the sent size, when nothing touched its pixels
        captured = frame.encoded_as(config.image_format, config.jpeg_quality)
        turn.image_bytes = (
            captured
            if captured is not None and plan.sent == frame.size
            else await asyncio.to_thread(
                encode_image, frame.image, plan, config.image_format.upper(), config.jpeg_quality
            )
        )
        mime = "image/jpeg" if config.image_format == "jpeg" else "image/png"
        if state.conversation is None:
            task = self.redactor.redact_text(state.task)
            state.conversation = Conversation(frame.surface, task, self.space, plan.sent)
        state.conversation.sent = plan.sent
        turn.plan = plan
        turn.space = self._action_space(frame)
        turn.tools = turn.space.tools_json(self.space, plan.sent)
        turn.messages = redact_messages(
            self.redactor,
            state.conversation.messages(turn.image_bytes, mime, state.index, state.notes),
        )
        state.notes = []
        turn.timed("encode", t)

    async def decide(self, state: RunState, turn: Turn) -> None:
        """Ask the model; what the request was is kept for the step record."""
        assert turn.plan is not None and turn.space is not None and turn.frame is not None
        t = time.perf_counter()
        await self._emit("step", index=state.index, frame=turn.frame, plan=turn.plan)
        forward = stream_forwarder(self._emit_now, self.redactor)
        completion, extra = await self._watched(
            decide(
                self.client,
                self.config,
                self.space,
                turn.space,
                turn.messages,
                turn.tools,
                turn.plan,
                forward,
            )
        )
        forward.flush()  # the held-back tail of each streamed part, redacted
        state.tracker.add_usage(completion.usage)
        turn.completion = completion
        turn.timed("request", t)
        request_text = text_of(turn.messages)
        turn.step.request = {
            "messages": len(turn.messages),
            "prompt_chars": len(request_text),
            "image_tokens": turn.plan.tokens,
            "image_bytes": len(turn.image_bytes),
            "tools": [tool["function"]["name"] for tool in turn.tools],
            "prefix_reuse": round(prefix_reuse(state.previous_text, request_text), 4),
            **extra,
        }
        state.previous_text = request_text

    async def parse(self, state: RunState, turn: Turn) -> bool:
        """Validate the reply's tool call and map its points to the screen; False: invalid
        (the model is told why; too many in a row fail the run)."""
        assert turn.completion is not None
        t = time.perf_counter()
        problem = self._parse(turn)
        turn.timed("parse", t)
        if isinstance(turn.action, Type) and await self._typing_into_password():
            # the model wrote this password itself: hide it from now on (before any event
            # shows the action), let it type it
            self._add_secret(turn.action.text, model_may_type=True)
        if problem is not None:
            problem = self.redactor.redact_text(problem)  # it may quote the bad argument
        await self._emit(
            "reply",
            index=state.index,
            reasoning=turn.completion.reply.reasoning,
            action=turn.action,
            problem=problem,
        )
        if problem is None:
            state.invalid_in_row = 0
            return True
        state.invalid_in_row += 1
        state.invalid_total += 1
        turn.step.invalid = self.redactor.redact_text(problem)
        turn.step.outcome = "invalid"
        assert state.conversation is not None and turn.completion is not None
        assert turn.space is not None
        state.conversation.add_correction(
            self.redactor.redact_text(turn.completion.reply.content or ""),
            f"Your reply could not be executed: {problem} Call exactly one of the tools: "
            f"{', '.join(turn.space.names)}.",
        )
        logger.warning(
            "step {}: invalid reply ({} in a row): {}", state.index, state.invalid_in_row, problem
        )
        if state.invalid_in_row >= self.config.max_invalid:
            state.result = RunResult(
                status="failed",
                stop_reason=f"{state.invalid_in_row} invalid model replies in a row; last: {problem}",
            )
        return False

    def _parse(self, turn: Turn) -> str | None:
        completion, plan, frame = turn.completion, turn.plan, turn.frame
        assert completion is not None and plan is not None and frame is not None
        reply = completion.reply
        if not reply.tool_calls:
            why = "the reply had no tool call."
            if completion.finish_reason == "length":
                why = "the reply was cut off (length limit)."
            if reply.errors:
                why += " " + "; ".join(reply.errors)
            return why
        call = reply.tool_calls[0]
        assert turn.space is not None
        try:
            action = turn.space.validate(call.name, call.arguments)
            trails = [
                resolve_point(Point(x, y), self.space, plan.sent, frame.transform)
                for x, y in action.points()
            ]
        except InvalidToolCall as exc:
            return exc.message
        except OutOfImageError as exc:
            return str(exc)
        turn.action, turn.trails = action, trails
        return None

    def _ends_run(self, state: RunState, turn: Turn) -> bool:
        """``finish`` / ``fail``: the model ended the run (nothing to act on)."""
        action = turn.action
        assert action is not None
        if action.name not in TERMINAL_ACTIONS:
            return False
        turn.step.action = {"action": action.name, **self._redacted_args(action)}
        turn.step.trail = [tr.to_dict() for tr in turn.trails]
        turn.step.outcome = "ok"
        text = self.redactor.redact_text(
            getattr(action, "answer", None) or getattr(action, "reason", "")
        )
        state.result = RunResult(
            status="finished" if action.name == "finish" else "failed",
            answer=text,
            stop_reason=f"model called {action.name}",
        )
        return True

    async def gate(self, state: RunState, turn: Turn) -> None:
        """The action in screen coordinates, judged by the policy (an ``ask`` goes to the approver)."""
        action, frame = turn.action, turn.frame
        assert action is not None and frame is not None
        trails = turn.trails
        if trails and turn.dom is not None and action.name in ("click", "double_click"):
            # a dry run clicks nothing, so focus cannot tell what the next "type" goes into
            point = trails[0].screen
            self._pointed_at_password = is_password_at(turn.dom, point.x, point.y)
        turn.screen_action = (
            action.with_points([(tr.screen.x, tr.screen.y) for tr in trails]) if trails else action
        )
        turn.step.action = {"action": action.name, **self._redacted_args(action)}
        turn.step.trail = [tr.to_dict() for tr in trails]
        turn.step.screen_action = action_dict(turn.screen_action)
        turn.verdict, turn.policy = await self.executor.gate(
            turn.screen_action, self._step_context(state, turn)
        )
        turn.step.policy = turn.policy

    async def act(self, state: RunState, turn: Turn) -> None:
        """Through the executor (kill switch, input, outcome, event record); the model hears how it went."""
        action, screen_action = turn.action, turn.screen_action
        assert action is not None and screen_action is not None and state.conversation is not None
        context = self._step_context(state, turn)
        context.gated = (turn.verdict, turn.policy)
        if isinstance(action, SkillCall):
            context.perform = lambda: self._run_skill(action, turn.step)
        t = time.perf_counter()
        try:
            outcome = await self.executor.execute(screen_action, context)
        except InvalidToolCall as exc:  # e.g. a key this surface does not have
            state.invalid_total += 1
            turn.step.invalid = self.redactor.redact_text(exc.message)
            turn.step.outcome, turn.step.error = "invalid", turn.step.invalid
            said = f"error: {turn.step.error}"
        else:
            turn.event = outcome.record
            turn.step.outcome = outcome.status
            turn.step.error = (
                self.redactor.redact_text(outcome.detail) if outcome.status == "error" else None
            )
            said = self._said(action, outcome.status, outcome.detail, turn.verdict)
        turn.timed("act", t)
        turn.acted = True
        args = self._redacted_args(action)
        if isinstance(action, SkillCall):  # the model called the skill by its own name
            state.conversation.add_action(action.skill, args.get("params", {}), said)
        else:
            state.conversation.add_action(action.name, args, said)

    def _said(self, action: Any, status: str, detail: str, verdict: Any) -> str:
        """What the model is told about its action."""
        if status == "denied":
            return f"denied by policy ({verdict.rule}): {verdict.reason}. Do something else."
        if status == "dry_run":
            return "ok (dry run: not executed)"
        if status == "error":
            return f"error: {self.redactor.redact_text(detail)}"
        # a skill's own report tells the model what it did; a click is just "ok"
        return self.redactor.redact_text(detail) if isinstance(action, SkillCall) else "ok"

    async def watch(self, state: RunState, turn: Turn) -> None:
        """The same action on an unchanged screen: warn, then zoom in, then stop as stuck.

        Off the event loop: when the pixels near the last target say "no change", the text
        read there (DOM or OCR) is compared too, and OCR blocks."""
        t = time.perf_counter()
        digest = hashlib.sha1(turn.image_bytes).hexdigest()  # what the model saw, 50x fewer bytes
        reader = None
        if turn.frame is not None:
            reader = text_near_reader(turn.frame, turn.dom, self.redactor.ocr)
        ladder = await asyncio.to_thread(
            state.detector.observe, digest, turn.screen_action, turn.frame, reader
        )
        turn.timed("watch", t)
        if ladder in (Ladder.WARN, Ladder.ZOOM):
            state.notes.append(state.detector.warning_text())
        if ladder is Ladder.ZOOM and turn.trails and turn.frame is not None:
            # the next screenshot is an enlarged crop around the repeated target
            state.zoom_next = zoom_region(turn.frame.size, turn.trails[0].frame, factor=2)
        elif ladder is Ladder.STUCK:
            state.result = RunResult(
                status="stopped",
                stop_reason="stuck: the same action on an unchanged screen kept repeating",
            )

    async def record(self, state: RunState, turn: Turn) -> None:
        """The step record: the executor's record of the input plus the model's side, written
        (and redacted) by the executor."""
        self._steps_done += 1
        state.steps_done = self._steps_done
        executor, step, frame = self.executor, turn.step, turn.frame
        assert frame is not None and turn.completion is not None and turn.plan is not None
        if executor.recorder is not None:
            t = time.perf_counter()
            sent = [turn.plan.sent.width, turn.plan.sent.height]
            base = turn.event or await executor.frame_record(
                frame, index=state.index, shown=frame, redactions=turn.redactions, sent_size=sent
            )
            turn.timed("record", t)
            data = {**step.model_dump(), **{k: v for k, v in base.items() if k != "timings"}}
            data.update(
                index=state.index,
                reply=reply_record(turn.completion),
                outcome=step.outcome,
                error=step.error,
                invalid=step.invalid,
                policy=step.policy,
                sub_steps=step.sub_steps,
                timings={k: round(v, 2) for k, v in turn.timings.items()},
            )
            data["timings"]["total"] = round(sum(turn.timings.values()), 2)
            await executor.write(data)
        if turn.acted:
            await self._emit(
                "done",
                index=state.index,
                outcome=step.outcome,
                timings=turn.timings,
                action=step.action,
                trail=step.trail,
                frame=frame,
                policy=step.policy,
            )
