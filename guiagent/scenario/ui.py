"""The Python action API for test authors, and the one engine under YAML scenarios.

    ui = UI(env)                      # a BrowserEnv or DesktopEnv that is started
    await ui.click("Sign in")
    await ui.type("alice", into="Username")
    await ui.press("enter")
    await ui.expect("Welcome")
    await ui.ai("add 'milk' to the list")  # needs agent_factory (a model server)

Each call is one step, exactly as the same step in a YAML scenario: settle (wait until the
screen stops changing: in a browser from the page's own events, else by frame differences;
``expect`` and ``wait_for`` retry instead, like Playwright's assertions), ground the target in the settled frame (OCR,
DOM, templates), convert to screen coordinates, send the input through the run's
:class:`~guiagent.agent.step.StepExecutor` (kill switch, policy, input, record), and record
the step. The YAML runner (:mod:`guiagent.scenario.runner`) calls :meth:`UI.run_step` for
each step of a file; the methods here build the same step and call the same method. A failing
call raises :class:`StepFailure` whose message is the report line.

Secrets: the run's redactor knows every secret value and every text typed into a password
field (browser: the focused element after the click has ``type=password``). Such text is
typed for real but is ``[REDACTED]`` in step records, labels, messages and logs; frames
written to disk have password fields blacked out (their boxes go into the step's
``redactions``), while grounding sees the real frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import TypeAdapter

from guiagent.agent.step import StepContext, StepExecutor, action_dict
from guiagent.core.actions import (
    BaseAction,
    Click,
    InvalidToolCall,
    Key,
    Type,
)
from guiagent.core.env import Environment, FocusProbe, Frame
from guiagent.core.geometry import Point
from guiagent.core.redact import Redactor
from guiagent.record.trajectory import Recorder
from guiagent.scenario.choice import select_option
from guiagent.scenario.ground import (
    Grounded,
    StepFailure,
    step_label,
)
from guiagent.scenario.results import StepResult
from guiagent.scenario.schema import (
    SettleOptions,
    Step,
    TypeSpec,
)
from guiagent.scenario.ui_pointer import PointerSteps, click_step_value
from guiagent.scenario.verify import BrowserTypingCheck, focus_problem
from guiagent.skills.registry import use_steps_runner

AgentFactory = Callable[[Environment], Any]
RecordSink = Callable[[dict[str, Any]], Awaitable[None]]
_STEP = TypeAdapter(Step)
DEFAULT_STEP_TIMEOUT_S = 5.0


class UI(PointerSteps):
    """Steps a person would take, on one environment, for one run (create one per run).

    ``executor``: the run's step executor (shared with an agent when a skill runs steps);
    without one, a plain one is made with ``recorder`` and ``redactor`` (no policy: a test's
    own steps are what its author wrote). ``secrets``: name -> value of secrets the steps
    may type (redacted everywhere). ``agent_factory(env)``: the agent for ``ai`` steps.
    ``sink``: where a step's record goes (default: appended to the recording).
    """

    def __init__(
        self,
        env: Environment,
        grounder: Any = None,
        *,
        executor: StepExecutor | None = None,
        recorder: Recorder | None = None,
        redactor: Redactor | None = None,
        secrets: Mapping[str, str] | None = None,
        agent_factory: AgentFactory | None = None,
        settle: SettleOptions | None = None,
        base_dir: str | Path | None = None,
        out_dir: str | Path | None = None,
        step_timeout: float = DEFAULT_STEP_TIMEOUT_S,
        sink: RecordSink | None = None,
        skills: Any = None,
    ) -> None:
        if executor is None:
            executor = StepExecutor(env, redactor=redactor or Redactor(), recorder=recorder)
        self.secrets = dict(secrets or {})
        for value in self.secrets.values():
            executor.redactor.add_secret(value)
        if grounder is None:
            from guiagent.grounding.local import LocalGrounder

            grounder = LocalGrounder()
        super().__init__(
            env,
            grounder,
            executor,
            settle or SettleOptions(),
            Path(base_dir) if base_dir is not None else Path.cwd(),
        )
        self.recorder = executor.recorder
        self.out_dir = (
            Path(out_dir) if out_dir else (self.recorder.run_dir if self.recorder else None)
        )
        self.agent_factory = agent_factory
        self.step_timeout = step_timeout
        self.sink: RecordSink = sink or executor.write
        self.skills = skills  # a SkillRegistry for `use` (None: the default one)
        self.results: list[StepResult] = []  # the steps the Python API ran
        self._agent: Any = None

    # --- the Python API: one method per step kind ---------------------------------------

    async def click(
        self,
        target: str | Mapping[str, Any],
        *,
        modifiers: Sequence[str] | str = (),
        timeout: float | None = None,
    ) -> str:
        """Click what a person would call ``target`` (a text, or a target mapping as in YAML),
        holding ``modifiers`` (``["ctrl"]``, ``"ctrl+shift"``: ctrl, shift, alt, meta)."""
        return await self.do({"click": click_step_value(target, modifiers)}, timeout)

    async def double_click(
        self,
        target: str | Mapping[str, Any],
        *,
        modifiers: Sequence[str] | str = (),
        timeout: float | None = None,
    ) -> str:
        return await self.do({"double_click": click_step_value(target, modifiers)}, timeout)

    async def right_click(
        self,
        target: str | Mapping[str, Any],
        *,
        modifiers: Sequence[str] | str = (),
        timeout: float | None = None,
    ) -> str:
        return await self.do({"right_click": click_step_value(target, modifiers)}, timeout)

    async def hover(self, target: str | Mapping[str, Any], *, timeout: float | None = None) -> str:
        """Move the pointer onto ``target`` without pressing (menus, tooltips open)."""
        return await self.do({"hover": _target(target)}, timeout)

    async def type(
        self,
        text: str,
        *,
        into: str | Mapping[str, Any] | None = None,
        enter: bool = False,
        timeout: float | None = None,
    ) -> str:
        """Type ``text`` (into the field ``into`` names, clicked first), then Enter if asked."""
        spec: dict[str, Any] = {"text": text, "enter": enter}
        if into is not None:
            spec["into"] = _target(into)
        return await self.do({"type": spec}, timeout)

    async def press(self, *keys: str) -> str:
        """Press a key or a chord: ``press("enter")``, ``press("ctrl", "a")`` or ``press("ctrl+a")``."""
        return await self.do({"press": list(keys) if len(keys) > 1 else keys[0]})

    async def scroll(
        self,
        direction: str = "down",
        amount: int = 3,
        *,
        on: str | Mapping[str, Any] | None = None,
        at: tuple[float, float] | None = None,
        in_: str | Mapping[str, Any] | None = None,
        until: str | Mapping[str, Any] | None = None,
        max: int | None = None,
    ) -> str:
        """Turn the wheel; with ``until``, again and again until that target shows
        (``in_``: the container to scroll, ``max``: the most scrolls)."""
        spec: dict[str, Any] = {"direction": direction, "amount": amount}
        for key, value in (("on", on), ("in", in_), ("until", until)):
            if value is not None:
                spec[key] = _target(value)
        if at is not None:
            spec["at"] = list(at)
        if max is not None:
            spec["max"] = max
        return await self.do({"scroll": spec})

    async def select(
        self, option: str, *, in_: str | Mapping[str, Any], timeout: float | None = None
    ) -> str:
        """Choose ``option`` (its visible label) in the drop-down or list box ``in_`` names."""
        return await self.do({"select": {"option": option, "in": _target(in_)}}, timeout)

    async def drag(self, source: str | Mapping[str, Any], to: str | Mapping[str, Any]) -> str:
        return await self.do({"drag": {"from": _target(source), "to": _target(to)}})

    async def wait_for(self, text: str | None = None, **options: Any) -> str:
        """Wait until ``text`` (or ``image=``) shows, or with ``gone=True`` disappears."""
        return await self.do({"wait_for": _spec(text, options)})

    async def expect(self, text: str | None = None, **options: Any) -> str:
        """Check the screen: ``text``, ``image=``, ``title=``, ``url=``; ``not_=True`` for absence."""
        if "not_" in options:
            options["not"] = options.pop("not_")
        return await self.do({"expect": _spec(text, options)})

    async def ai(self, task: str) -> str:
        """Let the model do ``task`` (needs ``agent_factory``); returns its answer."""
        return await self.do({"ai": task})

    async def ai_assert(self, question: str) -> str:
        """Ask the model a yes/no question about the screen; a no fails."""
        return await self.do({"ai_assert": question})

    async def screenshot(self, name: str) -> str:
        return await self.do({"screenshot": name})

    async def use(self, skill: str, **params: Any) -> str:
        """Run a skill by name with its parameters."""
        return await self.do({"use": {"skill": skill, "with": params}})

    async def do(self, step: Mapping[str, Any] | Any, timeout: float | None = None) -> str:
        """Run any step given as in YAML (``{"click": "OK"}``); raise StepFailure when it fails."""
        data = dict(step) if isinstance(step, Mapping) else step
        if timeout is not None and isinstance(data, dict):
            data["timeout"] = timeout
        parsed = _STEP.validate_python(data)
        result = await self.run_step(parsed, len(self.results))
        self.results.append(result)
        if result.status == "failed":
            raise StepFailure(result.error or result.label)
        return result.detail

    async def close(self) -> None:
        """Close the agent an ``ai`` step made, if any."""
        if self._agent is not None and hasattr(self._agent, "close"):
            await self._agent.close()
        self._agent = None

    # --- one step: what YAML and the methods above both run ------------------------------

    async def run_step(self, step: Any, index: int, label: str | None = None) -> StepResult:
        """Settle, carry out ``step`` and record it; never raises for a failing step."""
        label = self.redactor.redact_text(label or step_label(index, step.kind, step.value))
        t0 = time.perf_counter()
        rec: dict[str, Any] = {"index": index}
        if step.kind in ("expect", "wait_for"):  # retrying checks: no settle first
            frame, settle_ms = await self.for_check(step.value)
        else:
            frame, settle_ms = await self.settled()
        # the DOM of the settled frame, to black out its password fields on disk
        frame_dom = await self.dom() if self.out_dir is not None else None
        t1 = time.perf_counter()
        error: str | None = None
        detail = ""
        try:
            detail = await self._dispatch(step, frame, rec)
        except (StepFailure, InvalidToolCall) as exc:
            error = f"{label}: {exc}"
        except Exception as exc:  # surface gone, grounder error...: report, do not crash the run
            logger.debug(
                "{} raised {}: {}", label, type(exc).__name__, self.redactor.redact_text(str(exc))
            )
            error = f"{label}: {type(exc).__name__}: {exc}"
        label = self.redactor.redact_text(label)
        detail = self.redactor.redact_text(detail)
        error = self.redactor.redact_text(error) if error is not None else None
        acted = rec.get("action") is not None
        if acted:
            self.recent.clear()  # frames before an action are no evidence for later steps
        timings = {"settle_ms": settle_ms, "step_ms": (time.perf_counter() - t1) * 1000}
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        frame_path = None
        if error is not None:
            logger.info("{}", error)  # already redacted
            frame_path = await self._save_failure(index, frame, frame_dom, acted)
        await self._record(step, label, frame, frame_dom, rec, error, detail, timings)
        return StepResult(
            index=index,
            kind=step.kind,
            label=label,
            status="failed" if error else "passed",
            ms=timings["total_ms"],
            error=error,
            frame_path=frame_path,
            detail=detail,
        )

    async def _dispatch(self, step: Any, frame: Frame, rec: dict[str, Any]) -> str:
        kind, value = step.kind, step.value
        timeout = step.timeout or self.step_timeout
        if kind in ("click", "double_click", "right_click", "hover"):
            await self._click_kind(kind, frame, value, timeout, rec)
        elif kind == "type":
            await self._type(frame, value, timeout, rec)
        elif kind == "press":
            action = Key(keys=list(value))
            rec.update(action=action)
            await self._act(action, rec, frame)
        elif kind == "scroll":
            return await self._scroll(frame, value, timeout, rec)
        elif kind == "select":
            return await select_option(self, frame, value, timeout, rec)
        elif kind == "drag":
            await self._drag(frame, value, timeout, rec)
        elif kind == "wait_for":
            return await self._wait_for(frame, value, step.timeout)
        elif kind == "expect":
            return await self._expect(frame, value, step.timeout)
        elif kind in ("ai", "ai_assert"):
            return await self._ai(rec["index"], kind, value, frame)
        elif kind == "screenshot":
            return await self._screenshot(value, frame)
        elif kind == "use":
            return await self._use(value, rec)
        else:  # the schema admits no other kind
            raise StepFailure(f"unsupported step kind {kind!r}")
        return ""

    async def _act(
        self,
        action: BaseAction,
        rec: dict[str, Any],
        frame: Frame,
        hits: list[Grounded] | None = None,
        check: Callable[[], Awaitable[str | None]] | None = None,
        target: dict[str, Any] | None = None,
    ) -> None:
        """One input event through the run's step executor (kill switch, policy, input,
        record); its record is kept for the step's.

        ``hits``: how each point of ``action`` was found on ``frame``; ``target``: the DOM
        evidence at the first point, when already read (:meth:`evidence_at`). Every event of
        a step is recorded with the step's frame, the one its points were found on (the
        typing after the click into a field too: a capture per event cost a screenshot each,
        and what the typing did is checked, and seen in the next step's frame).
        """
        events: list[dict[str, Any]] = rec.setdefault("events", [])
        hits = list(hits or [])
        dom = next((h.dom for h in hits if h.dom is not None), None)
        recording = self.executor.recorder is not None
        if dom is None and (recording or self.executor.policy is not None):
            dom = rec.get("frame_dom") if events else await self.dom()
        if not events:
            rec["frame_dom"] = dom
        context = StepContext(
            frame=frame,
            trail=_trail(frame, hits),
            dom=dom,
            variables=rec.get("variables") if action.name == "type" else None,
            index=rec.get("index", 0),
            target=target,
        )
        problems: list[str] = []
        if check is not None:

            async def outcome_check(_action: BaseAction) -> str | None:
                problem = await check()
                if problem:
                    problems.append(problem)
                return problem

            context.check = outcome_check
        first = hits[0] if hits else None
        if first is not None and first.source == "ocr" and first.text and first.box is not None:
            # the matched text is under the point only when the point is on that text itself
            context.evidence_text, context.evidence_box = first.text, first.box
        outcome = await self.executor.execute(action, context)
        self.dom_changed()
        if outcome.record:
            events.append(outcome.record)
        if outcome.status == "denied":
            raise StepFailure(f"{action.name} denied by policy: {outcome.detail}")
        if outcome.status == "error" and problems:
            raise StepFailure(problems[0])
        if outcome.status == "error":
            raise StepFailure(f"the environment refused {action.name}: {outcome.detail}")

    async def _type(
        self, frame: Frame, spec: TypeSpec, timeout: float, rec: dict[str, Any]
    ) -> None:
        hits = []
        typed_check = None
        if spec.into is not None:
            _into, frame, hit = await self._field(frame, spec.into, timeout)
            hits.append(hit)
            what = spec.into.describe()
            # the focus and the replay evidence for a click into the field, read together
            focused, target = await asyncio.gather(self._has_focus(hit), self.evidence_at(hit))
            if not focused:  # click into the field only when needed
                rec.update(action=Click(x=hit.screen[0], y=hit.screen[1]), hits=hits)
                check = partial(focus_problem, self.env, what, hit.screen)
                await self._act(rec["action"], rec, frame, [hit], check=check, target=target)
            typed_check = await self._typed_check(spec.text, frame, hit, what)
        # a password field: as the check read it (a page; a desktop's bus), else asked here
        password = getattr(typed_check, "password_field", False)
        if not isinstance(typed_check, BrowserTypingCheck):
            password = password or await self.executor.typing_into_password()
        if spec.text and password:
            self.redactor.add_secret(spec.text)
        named = [n for n, v in self.secrets.items() if v == spec.text]
        if named:
            # not in the recording: a replay asks for it by name (--var secret:NAME=VALUE);
            # ``value_hash`` says so without keeping a (guessable) hash of a password
            rec["variables"] = {"name": f"secret:{named[0]}", "secret": True, "value_hash": None}
        action = Type(text=spec.text)
        rec.update(action=action, hits=hits)
        await self._act(action, rec, frame, check=typed_check)
        if spec.enter:
            await self._act(Key(keys=["enter"]), rec, frame)

    async def _has_focus(self, hit: Grounded) -> bool:
        """Whether the field at ``hit`` already has the keyboard focus (browser only)."""
        if not isinstance(self.env, FocusProbe):
            return False
        try:
            return await self.env.focused_at(*hit.screen)
        except Exception as exc:  # a page mid-navigation: click as usual
            logger.debug("cannot tell the focus: {}", exc)
            return False

    async def _ai(self, index: int, kind: str, text: str, frame: Frame) -> str:
        if self.agent_factory is None:
            raise StepFailure("needs a model server: pass --model URL")
        if self._agent is None:
            self._agent = self.agent_factory(self.env)
        if kind == "ai":
            result = await self._agent.run(text)
            if result.status != "finished":
                raise StepFailure(
                    f"the model did not finish the task ({result.status}): {result.stop_reason or ''}"
                )
            return result.answer or ""
        yes, answer = await self._agent.ask_yes_no(text, frame)
        if not yes:
            raise StepFailure(f"the model answered no to {text!r}: {answer}")
        return answer

    async def _screenshot(self, name: str, frame: Frame) -> str:
        if self.out_dir is None:
            raise StepFailure("no output directory for screenshots (pass --record or a recorder)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / (name if name.lower().endswith(".png") else f"{name}.png")
        shown, _ = await self.for_disk(frame, await self.dom())
        await asyncio.to_thread(shown.image.save, path)
        return str(path)

    async def _use(self, spec: Any, rec: dict[str, Any]) -> str:
        """A skill, its input events through this run's executor; its records become sub-steps."""
        from guiagent.skills import SkillError, load_registry

        registry = self.skills if self.skills is not None else load_registry()
        try:
            outcome = await registry.run(
                spec.skill,
                self.env,
                dict(spec.with_),
                grounder=self.grounder,
                on_secret=self.redactor.add_secret,
                executor=self.executor,
                steps_runner=ui_steps_runner,
            )
        except KeyError as exc:  # the registry names the known skills
            raise StepFailure(
                str(exc.args[0]) if exc.args else f"unknown skill {spec.skill!r}"
            ) from exc
        except (SkillError, ValueError) as exc:  # bad parameters
            raise StepFailure(str(exc)) from exc
        rec["sub_steps"] = outcome.sub_steps
        if not outcome.ok:
            raise StepFailure(f"skill {spec.skill!r} failed: {outcome.detail}")
        return outcome.detail

    async def _save_failure(
        self, index: int, frame: Frame, frame_dom: list[Any] | None, acted: bool = False
    ) -> str | None:
        """The failed step's screen, as it may be written: after its input when it sent one."""
        if self.out_dir is None:
            return None
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            if acted:  # the screen the failed input left
                with contextlib.suppress(Exception):  # else the step's own frame
                    await self.observe_with_dom()
            current = self.recent[-1] if self.recent else frame
            dom = frame_dom if current is frame else await self.dom()
            shown, _ = await self.for_disk(current, dom)
            path = self.out_dir / f"failure-step{index + 1}.png"
            await asyncio.to_thread(shown.image.save, path)
            return str(path)
        except OSError as exc:
            logger.warning("cannot save the failure frame: {}", exc)
            return None

    async def _record(
        self,
        step: Any,
        label: str,
        frame: Frame,
        frame_dom: list[Any] | None,
        rec: dict[str, Any],
        error: str | None,
        detail: str,
        timings: dict[str, float],
    ) -> None:
        """Give the step's record to the sink, replayable by :func:`guiagent.record.replay.replay`.

        Every input event is a full step record (frame, point trail, evidence, outcome),
        built by the executor as for the agent loop. A step with one event is that record;
        one with several (``type into``: click the field, then type; ``enter``: then press
        it) keeps them, in order, as ``sub_steps`` of a record carrying the step's main
        action, which a replay runs one by one; so does a ``use`` step with its skill's
        steps. Steps without input (expect, wait_for...) have no action.
        """
        if self.recorder is None:
            return
        index = rec["index"]
        events: list[dict[str, Any]] = rec.get("events", [])
        if len(events) == 1 and not rec.get("sub_steps"):
            data = dict(events[0])
            data["timings"] = {**timings, **data.get("timings", {})}
        else:
            main: BaseAction | None = rec.get("action")
            data = await self.executor.frame_record(frame, index=index, dom=frame_dom)
            shown = action_dict(main) if main is not None and events else None
            data.update(
                action=shown,
                screen_action=shown,
                timings=timings,
                sub_steps=events or rec.get("sub_steps") or [],
            )
            if main is not None and main.name == "type" and rec.get("variables"):
                data["variables"] = rec["variables"]
        data.update(
            index=index,
            outcome="failed" if error else "ok",
            error=error,
            scenario_step={
                "label": label,
                "kind": step.kind,
                "spec": step.model_dump(mode="json", by_alias=True, exclude_none=True),
                "detail": detail,
            },
        )
        await self.sink(self.executor.redact(data))


def _trail(frame: Frame, hits: list[Grounded]) -> list[dict[str, Any]]:
    """The point trail of grounded hits: no model chose these points, so model, sent and
    frame space coincide."""
    trail: list[dict[str, Any]] = []
    for hit in hits:
        if hit.frame_point is not None:
            fx, fy = hit.frame_point
        else:
            point = frame.transform.screen_to_frame(Point(*hit.screen))
            fx, fy = point.x, point.y
        trail.append(
            {
                "space": "image",
                "model": [fx, fy],
                "sent": [fx, fy],
                "frame": [fx, fy],
                "screen": list(hit.screen),
                "source": hit.source,
                "box": list(hit.box) if hit.box else None,
                "confidence": hit.confidence,
            }
        )
    return trail


def _target(value: str | Mapping[str, Any]) -> Any:
    return value if isinstance(value, str) else dict(value)


def _spec(text: str | None, options: dict[str, Any]) -> dict[str, Any]:
    spec = {k: v for k, v in options.items() if v is not None}
    if text is not None:
        spec["text"] = text
    return spec


# skill_steps uses UI; the other names ui.py imported before its pointer steps moved to
# ui_pointer.py stay importable from here
from guiagent.core.actions import DoubleClick, Drag, Move, RightClick, Scroll  # noqa: E402, F401
from guiagent.scenario.schema import as_target  # noqa: E402, F401
from guiagent.scenario.scroll_until import scroll_until  # noqa: E402, F401
from guiagent.scenario.skill_steps import ui_steps_runner  # noqa: E402  (it uses UI)
from guiagent.scenario.verify import CheckedScreen  # noqa: E402, F401

# YAML skills run their steps through the UI: the default a skills registry uses when it
# was given no steps runner (injected here: the skills layer never imports this one)
use_steps_runner(ui_steps_runner)
