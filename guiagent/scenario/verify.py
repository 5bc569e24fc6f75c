"""Checks that an action does what its step says, before the step may pass.

- A click on a DOM element is hit-tested first: what the browser draws at the point
  (through shadow roots and same-origin iframes) must be the element or inside it. When
  something else is there (an overlay, or the element is clipped by a scroll box), the
  element is scrolled into view and grounded again; if the point still lands elsewhere the
  step fails naming what is in the way.
- ``type into``: after the click the focused element must take text, and after typing its
  value must hold the text (browser); on a desktop, the accessibility bus must say so, or
  the field's pixels must show it (:mod:`guiagent.scenario.typed_check`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from loguru import logger

from guiagent.core.env import Frame, QuietSource
from guiagent.core.geometry import Point
from guiagent.record.evidence import dom_evidence
from guiagent.scenario.ground import Grounded, Screen, StepFailure
from guiagent.scenario.schema import TargetSpec
from guiagent.scenario.typed_check import (
    DesktopTypingCheck,
    accessible_focus_problem,
)


@runtime_checkable
class HitTester(Protocol):
    """A surface that can say what is drawn at a point (a browser)."""

    async def hit_test(self, x: float, y: float, ref: int) -> dict[str, Any]: ...

    async def scroll_into_view(self, ref: int) -> bool: ...


@runtime_checkable
class FocusReader(Protocol):
    """A surface that can say which element has focus and what it holds (a browser)."""

    async def focus_state(
        self, text: str | None = None, expect: Mapping[str, Any] | None = None
    ) -> dict[str, Any]: ...


async def hit_answer(env: Any, hit: Grounded) -> dict[str, Any] | None:
    """The page's hit test at the point of ``hit`` (what is there, and the element's toggle
    state); None when the surface cannot say."""
    if hit.ref is None or not isinstance(env, HitTester):
        return None
    return await env.hit_test(hit.screen[0], hit.screen[1], hit.ref)


async def covered_by(env: Any, hit: Grounded) -> str | None:
    """None when the point of ``hit`` lands on its element; else what is drawn there."""
    return blocker_in(await hit_answer(env, hit))


def blocker_in(result: Mapping[str, Any] | None) -> str | None:
    """What a hit test found drawn over its element (None: the click lands on it)."""
    if result is None or not result.get("found"):
        return None  # the element went away: grounding again is the caller's business
    if result.get("hit"):
        return None
    at = str(result.get("at") or "something else")
    if result.get("through"):  # the element is there but lets the click through
        return f"{at} (the element takes no clicks: pointer-events: none)"
    return at


async def focus_problem(
    env: Any, what: str, point: tuple[float, float] | None = None
) -> str | None:
    """After clicking ``what`` (at screen ``point``) to type into it: None when an editable
    element has focus (browser), or a text field (desktop, when the bus can tell)."""
    if not isinstance(env, FocusReader):
        return None if point is None else await accessible_focus_problem(env, point, what)
    state = await env.focus_state(None)
    if state.get("focused") and state.get("editable"):
        return None
    return f"clicking {what} did not focus a text field: focus is on {state.get('at', 'nothing')}"


async def typed_problem(
    env: Any, text: str, meant_for: Mapping[str, Any] | None = None, what: str = "the field"
) -> str | None:
    """After typing ``text``: None when the field it was meant for (``meant_for``: its
    focus state read before typing) holds it; without one, the focused field.

    A page that moves the focus to another field on the first key gets the text in that
    field: that is a failure, not a pass because the focused field holds the text.
    """
    if not isinstance(env, FocusReader) or not text:
        return None
    expect = {"ref": meant_for["ref"], "doc": meant_for["doc"]} if meant_for else None
    state = await env.focus_state(text, expect)
    expected = state.get("expected")
    if expected and expected.get("connected"):  # still in the page: it must hold the text
        if expected.get("contains"):
            return None
        if state.get("ref") != (meant_for or {}).get("ref") and state.get("contains"):
            return (
                f"the text went to {state.get('at')}, not to {what} ({expected.get('at')}): "
                "the focus moved while typing"
            )
    if not state.get("focused"):
        return f"focus went to {state.get('at', 'nothing')} while typing; the text was lost"
    if not state.get("editable"):
        return f"focus is on {state.get('at')}, which takes no text; the text was lost"
    if state.get("contains") is False:
        return f"the text is not in the field's value after typing (focus: {state.get('at')})"
    return None


class BrowserTypingCheck:
    """After typing into a page's field: :func:`typed_problem` against the field focused
    before typing (``meant_for``, a focus state), which also says whether it is a password
    field (``password_field``: then the text is a secret from the start)."""

    def __init__(self, env: Any, text: str, what: str, meant_for: Mapping[str, Any]) -> None:
        self.env, self.text, self.what = env, text, what
        known = bool(meant_for.get("focused")) and meant_for.get("ref") is not None
        self.meant_for = meant_for if known else None
        self.password_field = bool(meant_for.get("focused") and meant_for.get("password"))

    async def __call__(self) -> str | None:
        return await typed_problem(self.env, self.text, self.meant_for, self.what)


TOGGLE_ROLES = {
    "checkbox",
    "radio",
    "switch",
    "menuitemcheckbox",
    "menuitemradio",
    "label",
    "button",
}


def toggle_problem(what: str, role: str | None, before: str, after: str | None) -> str | None:
    """After clicking a checkbox, radio or switch (``role``) whose state was ``before``
    ("true", "false", "mixed"): None when the click took (a radio is now checked, any other
    toggle changed), else why not. ``after`` None: the element went away (a page that
    draws the list again): nothing to compare."""
    if after is None:
        return None
    if role in ("radio", "menuitemradio"):
        return None if after == "true" else f"clicking {what} did not select it"
    if after != before:
        return None
    names = {"true": "pressed", "false": "not pressed"} if role == "button" else {}
    state = names.get(after) or {"true": "checked", "false": "unchecked"}.get(after, after)
    return f"clicking {what} did not change it: it is still {state} (the page undid or ignored the click)"


async def toggle_check(
    env: Any, hit: Grounded, what: str, answer: Mapping[str, Any] | None = None
) -> Callable[[], Awaitable[str | None]] | None:
    """For a click on a checkbox, radio or switch (or a label of one): the check that its
    state changed, to run after the click (None: not a toggle, or a surface that cannot say).
    ``answer``: the hit test already made at the point just before (its state is used)."""
    if hit.ref is None or hit.role not in TOGGLE_ROLES or not isinstance(env, HitTester):
        return None
    x, y = hit.screen
    before = (answer if answer is not None else await env.hit_test(x, y, hit.ref)).get("checked")
    if before is None:
        return None

    async def check() -> str | None:
        if isinstance(env, QuietSource):  # a handler may undo the click a moment later
            try:
                await env.wait_quiet(1.0)
            except Exception as exc:  # the read below reports a dead page
                logger.debug("no quiet wait before the toggle check: {}", exc)
        after = (await env.hit_test(x, y, hit.ref)).get("checked")
        return toggle_problem(what, hit.role, str(before), None if after is None else str(after))

    return check


def screen_point(frame: Frame, hit: Grounded) -> tuple[float, float]:
    if hit.frame_point is None:
        return hit.screen
    point = frame.transform.frame_to_screen(Point(*hit.frame_point))
    return point.x, point.y


def fail_covered(what: str, hit: Grounded, blocker: str) -> StepFailure:
    x, y = hit.screen
    return StepFailure(
        f"{what} is not what a click at ({x:.0f}, {y:.0f}) would hit: {blocker} is drawn "
        "there (covered, or clipped by a scroll box), even after scrolling it into view"
    )


class CheckedScreen(Screen):
    """Grounding with the checks above: the point reaches its element; a text naming a
    field resolves to the field; typing is checked against the field."""

    async def evidence_at(self, hit: Grounded) -> dict[str, Any] | None:
        """The replay evidence (DOM element) at ``hit`` when recording; None: the executor
        reads it itself."""
        if self.executor.recorder is None or hit.ref is None:
            return None
        try:
            return await dom_evidence(self.env, hit.screen[0], hit.screen[1], hit.dom)
        except Exception as exc:  # a page mid-navigation: the executor tries again
            logger.debug("no evidence read beside the checks: {}", exc)
            return None

    async def _reachable(
        self, frame: Frame, spec: TargetSpec, hit: Grounded, timeout: float
    ) -> tuple[Frame, Grounded]:
        """``hit`` when a click at its point lands on its element; else scroll the element
        into view and ground it again; fail naming what is in the way when still covered.
        The hit test of the hit returned is kept (``reached_answer``)."""
        answer = await hit_answer(self.env, hit)
        blocker = blocker_in(answer)
        if blocker is None:
            self._reached = (hit, answer)
            return frame, hit
        if isinstance(self.env, HitTester) and hit.ref is not None:
            await self.env.scroll_into_view(hit.ref)
            frame = await self.observe()
            frame, hit = await self.ground(frame, spec, timeout)
            answer = await hit_answer(self.env, hit)
            blocker = blocker_in(answer)
            if blocker is None:
                self._reached = (hit, answer)
                return frame, hit
        raise fail_covered(spec.describe(), hit, blocker)

    def reached_answer(self, hit: Grounded) -> dict[str, Any] | None:
        """The hit test ``_reachable`` made for ``hit`` (None: none for this hit)."""
        reached = getattr(self, "_reached", None)
        return reached[1] if reached is not None and reached[0] is hit else None

    async def _field(
        self, frame: Frame, into: TargetSpec, timeout: float
    ) -> tuple[TargetSpec, Frame, Grounded]:
        """The field ``into`` names: the element itself when it takes text, else the field
        beside the text (its label: DOM geometry, or the outline found on the desktop)."""
        frame, hit = await self.ground(frame, into, timeout)
        if not hit.field and hit.editable is not True and into.role is None and into.text:
            as_field = into.model_copy(update={"role": "textbox"})
            try:
                frame, field = await self.ground(frame, as_field, 0.0)
            except StepFailure:
                field = None
            if field is not None and (field.field or field.editable):
                into, hit = as_field, field
        hit = self._input_beside_label(frame, hit)
        frame, hit = await self._reachable(frame, into, hit, timeout)
        return into, frame, hit

    async def _typed_check(
        self, text: str, before: Frame, hit: Grounded, what: str = "the field"
    ) -> Callable[[], Awaitable[str | None]]:
        """After clicking into the field of ``hit`` and before typing ``text``: the check to
        run after typing. The browser's field must hold the text; on a desktop, see
        :class:`~guiagent.scenario.typed_check.DesktopTypingCheck` (its ``password_field``
        says, before typing, when the bus knows the field is a password field)."""
        if isinstance(self.env, FocusReader):
            # the field the text is meant for: the one focused now, after the click
            meant_for = await self.env.focus_state(None)
            return BrowserTypingCheck(self.env, text, what, meant_for)
        engine = getattr(self.grounder, "ocr_engine", None)
        return await DesktopTypingCheck(
            self.env, text, what, before, hit, self.redactor, engine
        ).prepare()
