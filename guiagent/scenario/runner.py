"""Run a scenario's steps on an environment with the local grounder (OCR, DOM, templates).

Each step: settle (wait until the screen stops changing, by frame differences, not the
model), ground the target in the settled frame (frame pixels), convert to screen
coordinates through the frame's transform, build a :mod:`guiagent.core.actions` model, act, and
record the step. The first failing step stops the scenario; its frame is saved beside
the recording and its message names the step, what was expected and what was seen.

Secrets: one :class:`~guiagent.core.redact.Redactor` per run knows every ``${secret:NAME}``
value and every text typed into a password field (browser: the focused element after the
click has ``type=password``). Such text is typed for real but is ``[REDACTED]`` in step
records, labels, messages and logs; frames written to disk have password fields blacked out
(their boxes go into the step's ``redactions``), while grounding sees the real frame.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from loguru import logger
from pydantic import BaseModel, Field

from guiagent.core.actions import (
    BaseAction,
    Click,
    DoubleClick,
    Drag,
    InvalidToolCall,
    Key,
    RightClick,
    Scroll,
    Type,
)
from guiagent.core.env import Environment, Frame
from guiagent.core.geometry import Point
from guiagent.core.redact import Redactor
from guiagent.scenario.schema import (
    ExpectSpec,
    Scenario,
    SettleOptions,
    TargetSpec,
    TypeSpec,
    WaitForSpec,
    as_target,
)

StepStatus = Literal["passed", "failed", "skipped"]
AgentFactory = Callable[[Environment], Any]

WAIT_FOR_TIMEOUT_S = 5.0
EXPECT_TIMEOUT_S = 2.0
RECENT_FRAMES = 6  # frames kept so `expect` also sees brief states (toasts) since the last action
RECENT_OCR = 3  # how many of those (distinct, newest first) an `expect` may read
POLL_S = 0.1
MIN_TEXT_CONFIDENCE = 0.7  # below this a fuzzy text match is "not found", not a place to click


class StepResult(BaseModel):
    index: int
    kind: str
    label: str
    status: StepStatus
    ms: float = 0.0
    error: str | None = None
    frame_path: str | None = None
    detail: str = ""


class ScenarioResult(BaseModel):
    name: str
    path: str | None = None
    status: Literal["passed", "failed", "error"]
    steps: list[StepResult] = Field(default_factory=list)
    ms: float = 0.0
    run_dir: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "passed"

    @property
    def failed_step(self) -> StepResult | None:
        return next((s for s in self.steps if s.status == "failed"), None)

    def failure_message(self) -> str:
        step = self.failed_step
        if step is not None and step.error:
            where = f" (frame: {step.frame_path})" if step.frame_path else ""
            return f"{step.error}{where}"
        return self.error or ""


class StepFailure(Exception):
    """A step that did not do what it says; the message is the report line."""


class WeakMatch(LookupError):
    """Only loose fuzzy matches: a person would not call that text the target."""

    def __init__(self, closest: list[str]) -> None:
        super().__init__(f"only weak matches: {closest}")
        self.closest = closest


class _Grounded(BaseModel):
    frame_point: tuple[float, float] | None = None
    screen: tuple[float, float]
    box: tuple[float, float, float, float] | None = None
    source: str = ""
    confidence: float | None = None
    role: str | None = None
    text: str = ""  # what the grounder matched (OCR line or DOM name)
    dom: list[Any] | None = Field(default=None, exclude=True, repr=False)  # for evidence


@dataclass
class _Event:
    """One input event the runner performed: recorded as its own replayable step."""

    action: BaseAction  # in screen coordinates, as sent to the environment
    frame: Frame  # the screen as the event found it (its points were grounded on it)
    hits: list[_Grounded]  # one per point of the action
    started_at: float
    ms: float = 0.0
    error: str | None = None
    saved: Frame | None = None  # ``frame`` with password fields blacked out, for the disk
    redactions: list[dict[str, Any]] | None = None
    variables: dict[str, Any] | None = None  # a typed secret: how a replay gets its value
    target: dict[str, Any] | None = None  # the DOM element at the first point (replay evidence)


def _label(index: int, kind: str, value: Any) -> str:
    head = f"step {index + 1} ({kind}"
    if kind in ("click", "double_click", "right_click"):
        return f"{head} {as_target(value).describe()})"
    if kind == "type":
        into = f" into {value.into.describe()}" if value.into is not None else ""
        return f'{head} "{value.text}"{into})'
    if kind == "press":
        return f"{head} {'+'.join(value) if isinstance(value, list) else value})"
    if kind == "wait_for":
        what = f'"{value.text}"' if value.text is not None else f"image {value.image}"
        return f"{head} {what}{' gone' if value.gone else ''})"
    if kind == "expect":
        parts = []
        if value.text is not None:
            parts.append(f'"{value.text}"')
        if value.image is not None:
            parts.append(f"image {value.image}")
        if value.title is not None:
            parts.append(f"title {value.title!r}")
        if value.url is not None:
            parts.append(f"url {value.url!r}")
        return f"{head} {'not ' if value.not_ else ''}{', '.join(parts)})"
    if kind == "screenshot":
        return f"{head} {value})"
    if kind == "use":
        return f"{head} {value.skill})"
    return f"{head})"


def not_found_message(spec: TargetSpec, exc: Exception) -> str:
    """``no text matching "Sign on"; seen: "Sign in" (0.83), "Username" (0.31)``."""
    from guiagent.grounding.local import similarity

    closest = list(dict.fromkeys(str(t) for t in getattr(exc, "closest", [])))
    if spec.text is not None:
        what = f'no text matching "{spec.text}"'
        scored = sorted(((similarity(spec.text, t), t) for t in closest), key=lambda p: -p[0])
        seen = ", ".join(f'"{t}" ({score:.2f})' for score, t in scored)
    else:
        what = f"no match for {spec.describe()}"
        seen = ", ".join(f'"{t}"' for t in closest)
    detail = str(exc)
    extra = ""
    if "(" in detail and "not found (" in detail:
        extra = " (" + detail.split("not found (", 1)[1].split(")", 1)[0] + ")"
    return f"{what}{extra}; seen: {seen or 'no text at all'}"


def _window_titles(display: str) -> list[str]:
    """Titles of the visible windows on an X display (without a window manager there is no
    focused top-level window to ask, so an ``expect title`` looks at all of them)."""
    import os
    import subprocess

    try:
        proc = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", ".", "getwindowname", "%@"],
            env={**os.environ, "DISPLAY": display},
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.debug("cannot list windows: {}", exc)
        return []
    return [line for line in proc.stdout.splitlines() if line.strip()]


def ambiguous_message(spec: TargetSpec, exc: Any) -> str:
    listed = "; ".join(
        f'"{text}" at [{box.left:.0f},{box.top:.0f} {box.width:.0f}x{box.height:.0f}] ({score:.2f})'
        for text, box, score in exc.candidates
    )
    return (
        f"{len(exc.candidates)} equally good matches for {spec.describe()}: {listed}; "
        "add nth, near or in to choose"
    )


def match_pattern(pattern: str, value: str) -> bool:
    """``re:<regex>`` searches; a pattern with glob characters must match whole; else a substring."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], value) is not None
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(value, pattern)
    return pattern in value


# Never rewritten: file names inside the run directory, and the runner's own ``variables``
# (a secret's name and no value; a short secret may look like its name).
_KEEP_KEYS = {"frame": str, "crop": str, "variables": dict}


def scenario_redactor(scenario: Scenario) -> Redactor:
    """The run's redactor: knows the scenario's secret values (more join as they are typed)."""
    return Redactor(secrets=list(scenario.secrets.values()))


class ScenarioRunner:
    """Runs one scenario on one environment; create one per run."""

    def __init__(
        self,
        scenario: Scenario,
        env: Environment,
        grounder: Any,
        *,
        recorder: Any = None,
        agent_factory: AgentFactory | None = None,
        settle_opts: SettleOptions | None = None,
        out_dir: str | Path | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.scenario = scenario
        self.redactor = redactor or scenario_redactor(scenario)
        for value in scenario.secrets.values():
            self.redactor.add_secret(value)
        self.env = env
        self.grounder = grounder
        self.recorder = recorder
        self.agent_factory = agent_factory
        self.settle_opts = settle_opts or scenario.settle
        self.out_dir = (
            Path(out_dir) if out_dir else (Path(recorder.run_dir) if recorder is not None else None)
        )
        self.recent: deque[Frame] = deque(maxlen=RECENT_FRAMES)
        self._agent: Any = None

    # --- observing --------------------------------------------------------------------

    async def observe(self) -> Frame:
        frame = await self.env.observe()
        # keep distinct frames only: a long quiet settle must not push a brief toast out
        if self.recent and self.recent[-1].digest == frame.digest:
            self.recent[-1] = frame
        else:
            self.recent.append(frame)
        return frame

    async def settled(self) -> tuple[Frame, float]:
        opts = self.settle_opts
        if not opts.enabled:
            return await self.observe(), 0.0
        from guiagent.core.change import settle

        result = await settle(
            self.observe, threshold=opts.threshold, quiet_ms=opts.quiet_ms, timeout_s=opts.timeout_s
        )
        if not result.settled:
            logger.debug("screen still changing after {:.0f} ms; going on", result.waited_ms)
        return result.frame, float(result.waited_ms)

    async def dom(self) -> list[Any] | None:
        getter = getattr(self.env, "dom_elements", None)
        if getter is None:
            return None
        try:
            return list(await getter())
        except Exception as exc:  # a page mid-navigation: fall back to OCR for this frame
            logger.debug("no DOM for this frame: {}", exc)
            return None

    async def for_disk(
        self, frame: Frame, dom: list[Any] | None
    ) -> tuple[Frame, list[dict[str, Any]]]:
        """``frame`` as it may be written: password fields (from ``dom``; without one, masked
        dots found by their look) and on-screen secrets blacked out, with the boxes."""
        shown, notes = await self.redactor.redact(frame, dom, None)
        return shown, [n.model_dump() for n in notes]

    def scrub(self, value: Any) -> Any:
        """Every secret in strings of ``value`` replaced by ``[REDACTED]`` (file names kept)."""
        if isinstance(value, dict):
            return {
                k: v if isinstance(v, _KEEP_KEYS.get(k, ())) else self.scrub(v)
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub(v) for v in value)
        return self.redactor.redact_data(value)

    async def _typing_into_password(self) -> bool:
        """Whether the focused element is a password field (browser only: a desktop cannot say)."""
        focused = getattr(self.env, "focused_element", None)
        if focused is None:
            return False
        try:
            element = await focused()
        except Exception as exc:  # navigation mid-query: fall back to the declared secrets
            logger.debug("cannot ask for the focused element: {}", exc)
            return False
        return bool(element) and str(element.get("type") or "").lower() == "password"

    # --- grounding --------------------------------------------------------------------

    def _target(self, spec: TargetSpec) -> Any:
        from guiagent.grounding.local import Target

        image = None
        if spec.image is not None:
            image = str((self.scenario.base_dir / spec.image).resolve())
            if not Path(image).exists():
                raise StepFailure(f"template image {spec.image} not found (looked at {image})")
        return Target(
            text=spec.text,
            image=image,
            role=spec.role,
            nth=spec.nth,
            near=spec.near,
            in_region=spec.in_,
            exact=spec.exact,
        )

    async def _ground_once(
        self, frame: Frame, spec: TargetSpec, dom: list[Any] | None
    ) -> _Grounded:
        if spec.at is not None:
            return _Grounded(screen=(float(spec.at[0]), float(spec.at[1])), source="at")
        from guiagent.grounding.local import AmbiguousTarget

        try:
            result = await self.grounder.aground(frame, self._target(spec), dom=dom)
        except AmbiguousTarget as exc:
            weak = [text for text, _box, score in exc.candidates if score < MIN_TEXT_CONFIDENCE]
            if spec.text is not None and len(weak) == len(exc.candidates):
                raise WeakMatch(weak) from exc
            raise
        if spec.text is not None and result.confidence < MIN_TEXT_CONFIDENCE:
            raise WeakMatch([result.text])
        screen = frame.transform.frame_to_screen(result.point)
        return _Grounded(
            frame_point=(result.point.x, result.point.y),
            screen=(screen.x, screen.y),
            box=result.box.as_xyxy(),
            source=str(result.source),
            confidence=result.confidence,
            text=str(result.text or ""),
            dom=dom,
        )

    async def ground(
        self, frame: Frame, spec: TargetSpec, timeout: float
    ) -> tuple[Frame, _Grounded]:
        """Ground ``spec``, re-observing until ``timeout`` while it is not found (the UI may still be coming)."""
        from guiagent.grounding.local import AmbiguousTarget, TargetNotFound
        from guiagent.grounding.template import TemplateError

        deadline = time.monotonic() + timeout
        dom = await self.dom()
        while True:
            try:
                return frame, await self._ground_once(frame, spec, dom)
            except (TargetNotFound, WeakMatch) as exc:
                if time.monotonic() >= deadline:
                    raise StepFailure(not_found_message(spec, exc)) from exc
            except AmbiguousTarget as exc:
                raise StepFailure(ambiguous_message(spec, exc)) from exc
            except TemplateError as exc:
                raise StepFailure(str(exc)) from exc
            await asyncio.sleep(POLL_S)
            frame = await self.observe()
            dom = await self.dom()

    def _dom_has_text(self, dom: list[Any], spec: TargetSpec) -> bool:
        from guiagent.grounding.local import DomElement, match_text

        threshold = float(getattr(self.grounder, "dom_preference", 0.75))
        assert spec.text is not None
        for raw in dom:
            element = raw if isinstance(raw, DomElement) else DomElement.model_validate(raw)
            for name in element.names():
                found = match_text(spec.text, name, exact=spec.exact)
                if found is not None and found.score >= threshold:
                    return True
        return False

    async def visible(
        self, frame: Frame, spec: TargetSpec, dom: list[Any] | None, trust_dom_absence: bool = False
    ) -> tuple[bool, str]:
        """Whether ``spec`` is on ``frame``; the second value is what the grounder said when not.

        ``trust_dom_absence``: in a browser, text missing from the DOM counts as absent
        without an OCR pass (used by ``expect not`` and ``wait_for gone``; text drawn on a
        canvas is not in the DOM, so positive checks still fall back to OCR).
        """
        if (
            trust_dom_absence
            and dom
            and spec.text is not None
            and not self._dom_has_text(dom, spec)
        ):
            return False, f'no text matching "{spec.text}"'
        from guiagent.grounding.local import AmbiguousTarget, TargetNotFound
        from guiagent.grounding.template import TemplateError

        try:
            await self._ground_once(frame, spec, dom)
        except AmbiguousTarget:
            return True, ""
        except (TargetNotFound, WeakMatch) as exc:
            return False, not_found_message(spec, exc)
        except TemplateError as exc:
            raise StepFailure(str(exc)) from exc
        return True, ""

    # --- steps ------------------------------------------------------------------------

    async def _act(
        self,
        action: BaseAction,
        rec: dict[str, Any],
        frame: Frame,
        hits: list[_Grounded] | None = None,
    ) -> None:
        """Perform one input event and keep it for the recording.

        ``hits``: how each point of ``action`` was found on ``frame``. A pointless event
        that follows another one in the same step (the typing after the click into a field)
        gets a fresh frame when recording: the screen as that event found it.
        """
        events: list[_Event] = rec.setdefault("events", [])
        dom = next((h.dom for h in hits or [] if h.dom is not None), None)
        if events and self.recorder is not None and not action.points():
            try:
                frame = await self.env.observe()
                dom = None
            except Exception as exc:  # the recording then shows the step's earlier frame
                logger.debug("no frame for the recorded {}: {}", action.name, exc)
        event = _Event(action, frame, list(hits or []), started_at=time.time())
        if self.recorder is not None:
            event.saved, event.redactions = await self.for_disk(
                frame, dom if dom is not None else await self.dom()
            )
            event.variables = rec.get("variables") if action.name == "type" else None
            if hits:
                from guiagent.record.evidence import dom_evidence

                event.target = await dom_evidence(self.env, *hits[0].screen)
        events.append(event)
        started = time.perf_counter()
        try:
            result = await self.env.act(action)
        except Exception as exc:
            event.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            event.ms = (time.perf_counter() - started) * 1000
        if not result.ok:
            event.error = f"the environment refused {action.name}: {result.detail}"
            raise StepFailure(event.error)

    async def _click_kind(
        self, kind: str, frame: Frame, value: Any, timeout: float, rec: dict[str, Any]
    ) -> None:
        spec = as_target(value)
        frame, hit = await self.ground(frame, spec, timeout)
        cls = {"click": Click, "double_click": DoubleClick, "right_click": RightClick}[kind]
        action = cls(x=hit.screen[0], y=hit.screen[1])
        rec.update(action=action, hits=[hit])
        await self._act(action, rec, frame, [hit])

    async def _type(
        self, frame: Frame, spec: TypeSpec, timeout: float, rec: dict[str, Any]
    ) -> None:
        hits = []
        if spec.into is not None:
            frame, hit = await self.ground(frame, spec.into, timeout)
            hit = self._input_beside_label(frame, hit)
            hits.append(hit)
            rec.update(action=Click(x=hit.screen[0], y=hit.screen[1]), hits=hits)
            await self._act(rec["action"], rec, frame, [hit])
        if spec.text and await self._typing_into_password():
            self.redactor.add_secret(spec.text)
        named = [n for n, v in self.scenario.secrets.items() if v == spec.text]
        if named:
            # not in the recording: a replay asks for it by name (--var secret:NAME=VALUE);
            # ``value_hash`` says so without keeping a (guessable) hash of a password
            rec["variables"] = {"name": f"secret:{named[0]}", "secret": True, "value_hash": None}
        action = Type(text=spec.text)
        rec.update(action=action, hits=hits)
        await self._act(action, rec, frame)
        if spec.enter:
            await self._act(Key(keys=["enter"]), rec, frame)

    def _input_beside_label(self, frame: Frame, hit: _Grounded) -> _Grounded:
        """A text found by OCR next to a field is its label: click the field to its right.

        In a browser the DOM grounder already resolves a label to its input; on the
        desktop the label and the entry are separate pixels, so look along the label's
        middle row for the entry's border and click a little inside it.
        """
        if (
            hit.box is None
            or hit.source == "dom"
            or (hit.role or "") in ("textbox", "input", "combobox")
        ):
            return hit
        _x1, y1, x2, y2 = hit.box
        image = frame.image
        y = int((y1 + y2) / 2)
        if not 0 <= y < image.height:
            return hit
        start = int(x2) + 3
        limit = min(image.width - 1, start + 400)
        if start >= limit:
            return hit
        row = [image.getpixel((x, y)) for x in range(start, limit)]
        base = row[0]

        def differs(p: Any) -> bool:
            return sum(abs(int(a) - int(b)) for a, b in zip(p, base, strict=False)) > 90

        edge = next((i for i, p in enumerate(row) if differs(p)), None)
        if edge is None:
            return hit
        inner = next((i for i in range(edge, len(row)) if not differs(row[i])), None)
        fx = start + (inner if inner is not None else edge) + 12
        screen = frame.transform.frame_to_screen(Point(float(fx), float(y)))
        return hit.model_copy(
            update={
                "frame_point": (float(fx), float(y)),
                "screen": (screen.x, screen.y),
                "source": f"{hit.source}+field",
            }
        )

    async def _scroll(self, frame: Frame, spec: Any, timeout: float, rec: dict[str, Any]) -> None:
        hits = []
        if spec.on is not None:
            frame, hit = await self.ground(frame, spec.on, timeout)
            hits.append(hit)
            x, y = hit.screen
        elif spec.at is not None:
            x, y = spec.at
        else:
            centre = frame.transform.frame_to_screen(
                Point(frame.size.width / 2, frame.size.height / 2)
            )
            x, y = centre.x, centre.y
        action = Scroll(x=x, y=y, direction=spec.direction, amount=spec.amount)
        rec.update(action=action, hits=hits)
        where = _Grounded(screen=(x, y), source="at" if spec.at is not None else "centre")
        await self._act(action, rec, frame, hits or [where])

    async def _drag(self, frame: Frame, spec: Any, timeout: float, rec: dict[str, Any]) -> None:
        frame, start = await self.ground(frame, spec.from_, timeout)
        frame, end = await self.ground(frame, spec.to, timeout)
        action = Drag(x1=start.screen[0], y1=start.screen[1], x2=end.screen[0], y2=end.screen[1])
        rec.update(action=action, hits=[start, end])
        await self._act(action, rec, frame, [start, end])

    async def _wait_for(self, frame: Frame, spec: WaitForSpec, timeout: float | None) -> str:
        limit = spec.timeout or timeout or WAIT_FOR_TIMEOUT_S
        target = TargetSpec(text=spec.text, image=spec.image, exact=spec.exact)
        deadline = time.monotonic() + limit
        started = time.monotonic()
        while True:
            present, seen = await self.visible(
                frame, target, await self.dom(), trust_dom_absence=spec.gone
            )
            if present != spec.gone:
                return f"after {(time.monotonic() - started) * 1000:.0f} ms"
            if time.monotonic() >= deadline:
                what = target.describe()
                if spec.gone:
                    raise StepFailure(f"{what} still visible after {limit:g} s")
                raise StepFailure(f"{what} did not appear within {limit:g} s: {seen}")
            await asyncio.sleep(POLL_S)
            frame = await self.observe()

    async def _expect(self, frame: Frame, spec: ExpectSpec, timeout: float | None) -> str:
        limit = spec.timeout if spec.timeout is not None else (timeout or EXPECT_TIMEOUT_S)
        deadline = time.monotonic() + limit
        checked_recent = False
        while True:
            problems = await self._expect_problems(frame, spec, use_recent=not checked_recent)
            checked_recent = True
            if not problems:
                return ""
            if time.monotonic() >= deadline:
                raise StepFailure("; ".join(problems))
            await asyncio.sleep(POLL_S)
            frame = await self.observe()

    async def _expect_problems(self, frame: Frame, spec: ExpectSpec, use_recent: bool) -> list[str]:
        problems: list[str] = []
        if spec.title is not None:
            titles = await self._titles(frame)
            if any(match_pattern(spec.title, t) for t in titles) == spec.not_:
                seen = ", ".join(repr(t) for t in titles) or "no titled window"
                problems.append(
                    f"title {'matches' if spec.not_ else 'is not'} {spec.title!r}; seen: {seen}"
                )
        if spec.url is not None:
            url = str(frame.meta.get("url", ""))
            if match_pattern(spec.url, url) == spec.not_:
                problems.append(
                    f"url {'matches' if spec.not_ else 'is not'} {spec.url!r}; seen: {url!r}"
                )
        if spec.text is not None or spec.image is not None:
            target = TargetSpec(text=spec.text, image=spec.image, exact=spec.exact)
            present, seen = await self.visible(
                frame, target, await self.dom(), trust_dom_absence=spec.not_
            )
            if not present and not spec.not_ and use_recent:
                present = await self._seen_recently(frame, target)
            if spec.not_ and present:
                problems.append(f"{target.describe()} is visible but should not be")
            elif not spec.not_ and not present:
                problems.append(seen or f"{target.describe()} is not visible")
        return problems

    async def _seen_recently(self, current: Frame, target: TargetSpec) -> bool:
        """Brief states (toasts, flashes) count: look at the few frames seen since the last action."""
        digests = {current.digest}
        frames = []
        for frame in reversed(self.recent):
            if frame.digest not in digests:
                digests.add(frame.digest)
                frames.append(frame)
        for frame in frames[:RECENT_OCR]:
            present, _ = await self.visible(frame, target, None)
            if present:
                logger.debug("expect {}: seen in a recent frame", target.describe())
                return True
        return False

    async def _titles(self, frame: Frame) -> list[str]:
        """The page title, or on a desktop the focused window's title and else every visible window's."""
        title = frame.meta.get("title") or frame.meta.get("window_title")
        if title:
            return [str(title)]
        display = frame.meta.get("display")
        if frame.surface != "desktop" or not display:
            return []
        return await asyncio.to_thread(_window_titles, str(display))

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

    async def _use(self, spec: Any, rec: dict[str, Any]) -> str:
        try:
            import guiagent.skills as skills
        except ImportError:
            raise StepFailure(
                f"unknown skill {spec.skill!r}: no skills are installed (guiagent.skills is absent)"
            ) from None
        runner = getattr(skills, "run_skill", None)
        if runner is None:
            raise StepFailure(f"unknown skill {spec.skill!r}: guiagent.skills has no run_skill()")
        skill_error: type[Exception] = getattr(skills, "SkillError", RuntimeError)
        try:
            result = await runner(spec.skill, self.env, dict(spec.with_))
        except KeyError as exc:  # the registry names the known skills
            raise StepFailure(
                str(exc.args[0]) if exc.args else f"unknown skill {spec.skill!r}"
            ) from exc
        except (skill_error, ValueError) as exc:  # failed, or bad parameters
            raise StepFailure(str(exc)) from exc
        return str(result) if result is not None else ""

    async def _screenshot(self, name: str, frame: Frame) -> str:
        if self.out_dir is None:
            raise StepFailure("no output directory for screenshots (pass --record or a recorder)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / (name if name.lower().endswith(".png") else f"{name}.png")
        shown, _ = await self.for_disk(frame, await self.dom())
        await asyncio.to_thread(shown.image.save, path)
        return str(path)

    async def run_step(self, index: int, frame: Frame, rec: dict[str, Any]) -> str:
        step = self.scenario.steps[index]
        kind, value = step.kind, step.value
        timeout = step.timeout or self.scenario.step_timeout
        if kind in ("click", "double_click", "right_click"):
            await self._click_kind(kind, frame, value, timeout, rec)
        elif kind == "type":
            await self._type(frame, value, timeout, rec)
        elif kind == "press":
            action = Key(keys=list(value))
            rec.update(action=action)
            await self._act(action, rec, frame)
        elif kind == "scroll":
            await self._scroll(frame, value, timeout, rec)
        elif kind == "drag":
            await self._drag(frame, value, timeout, rec)
        elif kind == "wait_for":
            return await self._wait_for(frame, value, step.timeout)
        elif kind == "expect":
            return await self._expect(frame, value, step.timeout)
        elif kind in ("ai", "ai_assert"):
            return await self._ai(index, kind, value, frame)
        elif kind == "screenshot":
            return await self._screenshot(value, frame)
        elif kind == "use":
            return await self._use(value, rec)
        else:  # the schema admits no other kind
            raise StepFailure(f"unsupported step kind {kind!r}")
        return ""

    # --- the whole scenario ------------------------------------------------------------

    async def run(self) -> ScenarioResult:
        started = time.perf_counter()
        results: list[StepResult] = []
        failed = False
        for index, step in enumerate(self.scenario.steps):
            label = self.redactor.redact_text(_label(index, step.kind, step.value))
            if failed:
                results.append(
                    StepResult(index=index, kind=step.kind, label=label, status="skipped")
                )
                continue
            results.append(await self._run_one(index, label))
            failed = results[-1].status == "failed"
        status: Literal["passed", "failed"] = "failed" if failed else "passed"
        if self._agent is not None and hasattr(self._agent, "close"):
            await self._agent.close()
        # a secret learned at a later step (typed into a password field) may be in earlier text
        results = [StepResult.model_validate(self.scrub(r.model_dump())) for r in results]
        return ScenarioResult(
            name=self.scenario.name,
            path=self.scenario.path,
            status=status,
            steps=results,
            ms=(time.perf_counter() - started) * 1000,
            run_dir=str(self.recorder.run_dir) if self.recorder is not None else None,
        )

    async def _run_one(self, index: int, label: str) -> StepResult:
        step = self.scenario.steps[index]
        t0 = time.perf_counter()
        rec: dict[str, Any] = {}
        frame, settle_ms = await self.settled()
        # the DOM of the settled frame, to black out its password fields on disk
        frame_dom = await self.dom() if self.out_dir is not None else None
        t1 = time.perf_counter()
        error: str | None = None
        detail = ""
        try:
            detail = await self.run_step(index, frame, rec)
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
        if rec.get("action") is not None:
            self.recent.clear()  # frames before an action are no evidence for later steps
        timings = {"settle_ms": settle_ms, "step_ms": (time.perf_counter() - t1) * 1000}
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        frame_path = None
        if error is not None:
            logger.info("{}", error)  # already redacted
            frame_path = await self._save_failure(index, frame, frame_dom)
        await self._record(index, label, frame, frame_dom, rec, error, detail, timings)
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

    async def _save_failure(
        self, index: int, frame: Frame, frame_dom: list[Any] | None
    ) -> str | None:
        if self.out_dir is None:
            return None
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
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
        index: int,
        label: str,
        frame: Frame,
        frame_dom: list[Any] | None,
        rec: dict[str, Any],
        error: str | None,
        detail: str,
        timings: dict[str, float],
    ) -> None:
        """Append the step to the recording, replayable by :func:`guiagent.record.replay.replay`.

        Every input event is a full step record (frame, point trail, evidence, outcome) as
        the agent loop writes them. A scenario step with one event is that record; one with
        several (``type into``: click the field, then type; ``enter``: then press it) keeps
        them, in order, as ``sub_steps`` of a record carrying the step's main action, which
        a replay runs one by one. Steps without input (expect, wait_for...) have no action.
        """
        if self.recorder is None:
            return
        from guiagent.record.trajectory import StepRecord

        step = self.scenario.steps[index]
        extra = {
            "scenario_step": {
                "label": label,
                "kind": step.kind,
                "spec": step.model_dump(mode="json", by_alias=True, exclude_none=True),
                "detail": detail,
            }
        }
        events = [
            self._event_record(index, n, event) for n, event in enumerate(rec.get("events", []))
        ]
        outcome = "failed" if error else "ok"
        if len(events) == 1:
            data = events[0]
            data.pop("event", None)
            data["timings"] = {**timings, **data["timings"]}
        else:
            main: BaseAction | None = rec.get("action")
            shown, redactions = await self.for_disk(frame, frame_dom)
            data = {
                "index": index,
                "frame": self.recorder.save_frame(shown.image),
                "redactions": redactions,
                "frame_size": [frame.size.width, frame.size.height],
                "sent_size": [frame.size.width, frame.size.height],
                "meta": _frame_meta(frame),
                "action": _action_dict(main) if main is not None and events else None,
                "screen_action": _action_dict(main) if main is not None and events else None,
                "timings": timings,
                "sub_steps": events,
            }
            if main is not None and main.name == "type" and rec.get("variables"):
                data["variables"] = rec["variables"]
        data.update(outcome=outcome, error=error, **extra)
        self.recorder.append(StepRecord.model_validate(self.scrub(data)))

    def _event_record(self, index: int, n: int, event: _Event) -> dict[str, Any]:
        """One input event as a step record dict (what the agent loop writes for a step)."""
        assert self.recorder is not None
        frame = event.frame
        shown = event.saved or frame
        transform = frame.transform
        trail: list[dict[str, Any]] = []
        for hit in event.hits:
            if hit.frame_point is not None:
                fx, fy = hit.frame_point
            else:
                point = transform.screen_to_frame(Point(*hit.screen))
                fx, fy = point.x, point.y
            trail.append(
                {
                    # No model chose these points: model, sent and frame space coincide.
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
        frame_action = (
            event.action.with_points([tuple(t["frame"]) for t in trail]) if trail else event.action
        )
        return {
            "index": index,
            "event": n,
            "started_at": event.started_at,
            "frame": self.recorder.save_frame(shown.image),
            "frame_size": [frame.size.width, frame.size.height],
            "sent_size": [frame.size.width, frame.size.height],
            "meta": _frame_meta(frame),
            "redactions": event.redactions or [],
            "variables": event.variables or {},
            "action": _action_dict(frame_action),
            "screen_action": _action_dict(event.action),
            "trail": trail,
            "evidence": self._evidence(shown, event.hits[0], trail[0]["frame"], event.target)
            if trail
            else None,
            "outcome": "error" if event.error else "ok",
            "error": event.error,
            "timings": {"act_ms": event.ms},
        }

    def _evidence(
        self,
        frame: Frame,
        hit: _Grounded,
        frame_point: list[float],
        target: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """What a healing replay needs to find the target again (crop, DOM node, text)."""
        from guiagent.record.evidence import collect_evidence, dom_at_point

        assert self.recorder is not None
        fx, fy = frame_point
        if not (0 <= fx < frame.size.width and 0 <= fy < frame.size.height):
            return None  # a point off the frame (an explicit `at`): no pixels to keep
        node = target or (dom_at_point(hit.dom, hit.screen[0], hit.screen[1]) if hit.dom else None)
        # The matched text is under the point only when the point is on that text itself.
        on_text = hit.source == "ocr" and hit.text and hit.box is not None
        try:
            return collect_evidence(
                self.recorder,
                frame.image,
                (fx, fy),
                dom=node,
                text=hit.text if on_text else None,
                text_box=hit.box if on_text else None,
            )
        except (OSError, ValueError) as exc:
            logger.warning("no evidence recorded for the point {}: {}", frame_point, exc)
            return None


def _frame_meta(frame: Frame) -> dict[str, Any]:
    meta = {
        k: v
        for k, v in frame.meta.items()
        if isinstance(v, (str, int, float, bool, type(None), list, dict))
    }
    origin = frame.transform.origin
    meta["transform"] = {"origin": [origin.x, origin.y], "scale": frame.transform.scale}
    return meta


def _action_dict(action: BaseAction) -> dict[str, Any]:
    return {"action": action.name, **action.arguments()}


async def run_scenario(
    scenario: Scenario,
    env: Environment,
    grounder: Any,
    *,
    recorder: Any = None,
    agent_factory: AgentFactory | None = None,
    settle_opts: SettleOptions | None = None,
    out_dir: str | Path | None = None,
    redactor: Redactor | None = None,
) -> ScenarioResult:
    """Run every step of ``scenario`` on ``env``; stops at the first failing step.

    ``grounder`` is a :class:`guiagent.grounding.local.LocalGrounder`; ``recorder`` a
    :class:`guiagent.record.trajectory.Recorder` (its run directory also receives failure
    frames and screenshots, unless ``out_dir`` is given); ``agent_factory(env)`` builds the
    agent used by ``ai``/``ai_assert`` steps (None: those steps fail asking for a model);
    ``redactor`` the run's :func:`scenario_redactor` when the caller also writes about the run.
    """
    runner = ScenarioRunner(
        scenario,
        env,
        grounder,
        recorder=recorder,
        agent_factory=agent_factory,
        settle_opts=settle_opts,
        out_dir=out_dir,
        redactor=redactor,
    )
    return await runner.run()


def model_agent_factory(model: str | None) -> AgentFactory | None:
    """What ``ai`` / ``ai_assert`` steps use: an agent on the model server at ``model``, or None for
    ``local`` (those steps then fail with a clear message). Risky actions go through the default
    approver: asked on a terminal, denied without one."""
    if not model or model == "local":
        return None

    def make(env: Environment) -> Any:
        from guiagent.agent.config import AgentConfig
        from guiagent.agent.loop import Agent

        return Agent(env, AgentConfig(model_url=model))

    return make
