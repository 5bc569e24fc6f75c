"""Finding what a scenario step names on the screen: settle, DOM, OCR, templates.

:class:`Screen` is the observing half of the Python action API (:class:`guiagent.scenario.ui.UI`):
it keeps the last few distinct frames (so an ``expect`` also sees a brief toast), grounds a
:class:`~guiagent.scenario.schema.TargetSpec` in frame pixels and converts the point to the
screen through the frame's transform, and tells whether something is visible.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

from guiagent.agent.step import StepExecutor
from guiagent.core.env import ChangeSource, DomSource, Environment, Frame, QuietSource
from guiagent.core.geometry import Point
from guiagent.scenario.schema import (
    ExpectSpec,
    SettleOptions,
    TargetSpec,
    WaitForSpec,
    as_target,
)

WAIT_FOR_TIMEOUT_S = 5.0
EXPECT_TIMEOUT_S = 2.0
RECENT_FRAMES = 6  # frames kept so `expect` also sees brief states (toasts) since the last action
RECENT_OCR = 3  # how many of those (distinct, newest first) an `expect` may read
POLL_S = 0.1
MIN_TEXT_CONFIDENCE = 0.7  # below this a fuzzy text match is "not found", not a place to click


class StepFailure(Exception):
    """A step that did not do what it says; the message is the report line."""


class WeakMatch(LookupError):
    """Only loose fuzzy matches: a person would not call that text the target."""

    def __init__(self, closest: list[str]) -> None:
        super().__init__(f"only weak matches: {closest}")
        self.closest = closest


class Grounded(BaseModel):
    frame_point: tuple[float, float] | None = None
    screen: tuple[float, float]
    box: tuple[float, float, float, float] | None = None
    source: str = ""
    confidence: float | None = None
    role: str | None = None
    text: str = ""  # what the grounder matched (OCR line or DOM name)
    dom: list[Any] | None = Field(default=None, exclude=True, repr=False)  # for evidence
    field: bool = False  # the grounder resolved a label to the field it names
    ref: int | None = None  # the browser's handle on the DOM element found
    editable: bool | None = None  # the DOM element found takes typed text


def step_label(index: int, kind: str, value: Any) -> str:
    head = f"step {index + 1} ({kind}"
    if kind in ("click", "double_click", "right_click", "hover"):
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
    if kind == "scroll" and value.until is not None:
        place = value.on or value.in_
        where = f" in {place.describe()}" if place is not None else ""
        return f"{head} until {value.until.describe()}{where})"
    if kind == "select":
        return f'{head} "{value.option}" in {value.in_.describe()})'
    if kind == "screenshot":
        return f"{head} {value})"
    if kind == "use":
        return f"{head} {value.skill})"
    return f"{head})"


def not_found_message(spec: TargetSpec, exc: Exception) -> str:
    """``no text matching "Sign on"; seen: "Sign in" (0.83), "Username" (0.31)``."""
    from guiagent.grounding.local import TargetDisabled, similarity

    if isinstance(exc, TargetDisabled):
        return f"{spec.describe()} is disabled: a click or typing there would do nothing"
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


def window_titles(display: str) -> list[str]:
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
    anchor = getattr(exc, "anchor", None)
    if anchor is not None:
        helper = spec.near if anchor == "near" else spec.in_
        return (
            f'the {anchor} text "{helper}" of {spec.describe()} is ambiguous: it shows in '
            f"{len(exc.candidates)} places: {listed}; make it name one place"
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


class Screen:
    """Observing and grounding on one environment, for one run."""

    def __init__(
        self,
        env: Environment,
        grounder: Any,
        executor: StepExecutor,
        settle: SettleOptions,
        base_dir: Path,
    ) -> None:
        self.env = env
        self.grounder = grounder
        self.executor = executor
        self.redactor = executor.redactor
        self.settle_opts = settle
        self.base_dir = base_dir
        self.recent: deque[Frame] = deque(maxlen=RECENT_FRAMES)
        # the DOM read since the last observe and the last input event, read once per frame
        self._dom: list[Any] | None = None
        self._dom_fresh = False
        # the last frame and DOM read together, with the surface's change token then
        self._unchanged: tuple[str, Frame, list[Any] | None] | None = None

    # --- observing --------------------------------------------------------------------

    async def observe(self) -> Frame:
        frame = await self.env.observe()
        self.dom_changed()
        self._keep(frame)
        return frame

    async def observe_with_dom(self) -> Frame:
        """A frame and the DOM as of it, read at the same time (both only read the page: a
        browser walks its DOM while the screenshot waits for the compositor's frame).

        When the surface says nothing could have changed since the last such frame (its
        change token is the same), that frame and DOM are still the screen: no new capture.
        """
        if not isinstance(self.env, DomSource):
            return await self.observe()
        token = await self.env.change_token() if isinstance(self.env, ChangeSource) else None
        last = self._unchanged
        if token is not None and last is not None and last[0] == token:
            self._dom, self._dom_fresh = last[2], last[2] is not None
            self._keep(last[1])
            return last[1]
        return await self._capture_with_dom(token)

    async def _capture_with_dom(self, token: str | None) -> Frame:
        self.dom_changed()
        frame, dom = await asyncio.gather(self.env.observe(), self.dom())
        self._unchanged = (token, frame, dom) if token is not None else None
        self._keep(frame)
        return frame

    async def _capture_ahead(self) -> None:
        """A frame and DOM taken beside the settle's wait, kept for observe_with_dom to reuse
        when the page's change token has not moved by then; nothing when the page cannot
        tell (its token is None: the capture would be thrown away)."""
        token = await self.env.change_token() if isinstance(self.env, ChangeSource) else None
        last = self._unchanged
        if token is not None and (last is None or last[0] != token):
            await self._capture_with_dom(token)

    def _keep(self, frame: Frame) -> None:
        # keep distinct frames only: a long quiet settle must not push a brief toast out
        if self.recent and self.recent[-1].digest == frame.digest:
            self.recent[-1] = frame
        else:
            self.recent.append(frame)

    async def settled(self) -> tuple[Frame, float]:
        opts = self.settle_opts
        if not opts.enabled:
            return await self.observe_with_dom(), 0.0
        from guiagent.core.change import settle_env

        trackable = isinstance(self.env, ChangeSource) and isinstance(self.env, DomSource)
        result = await settle_env(
            self.env,
            self.observe_with_dom,
            threshold=opts.threshold,
            quiet_ms=opts.quiet_ms,
            timeout_s=opts.timeout_s,
            ahead=self._capture_ahead if trackable else None,
        )
        if not result.settled:
            logger.debug("screen still changing after {:.0f} ms; going on", result.waited_ms)
        return result.frame, float(result.waited_ms)

    async def for_check(self, spec: Any) -> tuple[Frame, float]:
        """The frame a retrying check (expect, wait_for) starts from: no settle, as the
        check retries until it holds. A check for absence (``not``, ``gone``) would pass
        at once on a screen that is about to show the thing (an application still drawing
        what the last input did), so it waits for the page's own quiet first when the
        surface can tell (events, no pixels); elsewhere (a desktop) for the screen to be
        still, as any other step does."""
        negative = bool(getattr(spec, "not_", False) or getattr(spec, "gone", False))
        if negative and self.settle_opts.enabled and not isinstance(self.env, QuietSource):
            return await self.settled()
        if negative and self.settle_opts.enabled and isinstance(self.env, QuietSource):
            start = time.monotonic()
            try:
                await self.env.wait_quiet(self.settle_opts.timeout_s)
            except Exception as exc:  # the observe below reports a dead surface
                logger.debug("no quiet wait before the check: {}", exc)
            waited = (time.monotonic() - start) * 1000
            return await self.observe_with_dom(), waited
        return await self.observe_with_dom(), 0.0

    def dom_changed(self) -> None:
        """Forget the DOM read so far (a new frame was taken, or input was sent)."""
        self._dom_fresh = False

    async def dom(self) -> list[Any] | None:
        """The page's elements as of the last frame (read once per frame and input event)."""
        if not isinstance(self.env, DomSource):
            return None
        if self._dom_fresh:
            return self._dom
        try:
            self._dom = list(await self.env.dom_elements())
        except Exception as exc:  # a page mid-navigation: fall back to OCR for this frame
            logger.debug("no DOM for this frame: {}", exc)
            self._dom = None
            return None
        self._dom_fresh = True
        return self._dom

    async def for_disk(
        self, frame: Frame, dom: list[Any] | None
    ) -> tuple[Frame, list[dict[str, Any]]]:
        """``frame`` as it may be written: password fields (from ``dom``; without one, masked
        dots found by their look) and on-screen secrets blacked out, with the boxes."""
        return await self.executor.shown_frame(frame, dom)

    # --- grounding --------------------------------------------------------------------

    def _target(self, spec: TargetSpec) -> Any:
        from guiagent.grounding.local import Target

        image = None
        if spec.image is not None:
            image = str((self.base_dir / spec.image).resolve())
            if not Path(image).exists():
                raise StepFailure(f"template image {spec.image} not found (looked at {image})")
        if spec.text is None and spec.image is None and spec.role is None:
            raise StepFailure(f"{spec.describe()} cannot be grounded")
        return Target(
            text=spec.text,
            image=image,
            role=spec.role,
            nth=spec.nth,
            near=spec.near,
            in_region=spec.in_,
            exact=spec.exact,
        )

    async def _ground_once(self, frame: Frame, spec: TargetSpec, dom: list[Any] | None) -> Grounded:
        if spec.at is not None:
            return Grounded(screen=(float(spec.at[0]), float(spec.at[1])), source="at")
        from guiagent.grounding.local import AmbiguousTarget

        try:
            result = await self.grounder.aground(frame, self._target(spec), dom=dom)
        except AmbiguousTarget as exc:
            weak = [
                (text, box) for text, box, score in exc.candidates if score < MIN_TEXT_CONFIDENCE
            ]
            if spec.text is not None and len(weak) == len(exc.candidates):
                raise WeakMatch(await self._read_in(frame, weak)) from exc
            raise
        if spec.text is not None and result.confidence < MIN_TEXT_CONFIDENCE:
            found = [(result.text, result.box)]
            raise WeakMatch(
                await self._read_in(frame, found) if result.source == "ocr" else [result.text]
            )
        screen = frame.transform.frame_to_screen(result.point)
        element = result.element
        return Grounded(
            field=result.field,
            ref=element.ref if element is not None else None,
            editable=(element.editable if element is not None else None),
            role=(element.effective_role if element is not None else spec.role),
            frame_point=(result.point.x, result.point.y),
            screen=(screen.x, screen.y),
            box=result.box.as_xyxy(),
            source=str(result.source),
            confidence=result.confidence,
            text=str(result.text or ""),
            dom=dom,
        )

    async def _read_in(self, frame: Frame, found: list[tuple[str, Any]]) -> list[str]:
        """The whole OCR lines that weak matches were found in ("Save" in "Unsaved
        changes" reads as that line, not as "Save"); a match outside every line as itself."""
        if not hasattr(self.grounder, "aread_text"):
            return [text for text, _box in found]
        lines = await self.grounder.aread_text(frame)  # this frame's read: cached
        texts = []
        for text, box in found:
            holding = [line.text for line in lines if line.box.contains(box.centre)]
            texts.append(holding[0] if holding else text)
        return texts

    async def ground(
        self, frame: Frame, spec: TargetSpec, timeout: float
    ) -> tuple[Frame, Grounded]:
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
        self,
        frame: Frame,
        spec: TargetSpec,
        dom: list[Any] | None,
        trust_dom_absence: bool = False,
        seen_only: bool = False,
    ) -> tuple[bool, str]:
        """Whether ``spec`` is on ``frame``; the second value is what the grounder said when not.

        ``trust_dom_absence``: in a browser, text missing from the DOM counts as absent
        without an OCR pass (used by ``expect not`` and ``wait_for gone``; text drawn on a
        canvas is not in the DOM, so positive checks still fall back to OCR).
        ``seen_only``: only text a person can see counts (``expect``, ``wait_for``): not an
        aria-label, title or alt, nor text covered, transparent, or the colour of its
        background (:func:`~guiagent.grounding.dom.seen_elements`); OCR reads the rest.
        """
        seen = None
        if seen_only and dom:
            from guiagent.grounding.dom import seen_elements

            seen = seen_elements(dom)
        if (
            trust_dom_absence
            and dom
            and spec.text is not None
            and not self._dom_has_text(dom, spec)
            and not (seen and self._dom_has_text(seen, spec))
        ):
            return False, f'no text matching "{spec.text}"'
        if seen is not None:  # text in the DOM that is not seen: the pixels say (OCR)
            dom = seen
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

    def _input_beside_label(self, frame: Frame, hit: Grounded) -> Grounded:
        """A text found by OCR next to a field is its label: click the field to its right.

        In a browser the DOM grounder already resolves a label to its input; on the
        desktop the label and the entry are separate pixels, so look along the label's
        middle row for the entry's border and click a little inside it.
        """
        if hit.box is None or hit.source == "dom" or hit.field:
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
        return await asyncio.to_thread(window_titles, str(display))

    # --- checks: wait_for and expect ---------------------------------------------------

    async def _wait_for(self, frame: Frame, spec: WaitForSpec, timeout: float | None) -> str:
        limit = spec.timeout or timeout or WAIT_FOR_TIMEOUT_S
        target = TargetSpec(text=spec.text, image=spec.image, exact=spec.exact)
        deadline = time.monotonic() + limit
        started = time.monotonic()
        while True:
            present, seen = await self.visible(
                frame, target, await self.dom(), trust_dom_absence=spec.gone, seen_only=True
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
                frame, target, await self.dom(), trust_dom_absence=spec.not_, seen_only=True
            )
            if not present and not spec.not_ and use_recent:
                present = await self._seen_recently(frame, target)
            if spec.not_ and present:
                problems.append(f"{target.describe()} is visible but should not be")
            elif not spec.not_ and not present:
                problems.append(seen or f"{target.describe()} is not visible")
        return problems
