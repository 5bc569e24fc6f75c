"""Checks that an action does what its step says, before the step may pass.

- A click on a DOM element is hit-tested first: what the browser draws at the point
  (through shadow roots and same-origin iframes) must be the element or inside it. When
  something else is there (an overlay, or the element is clipped by a scroll box), the
  element is scrolled into view and grounded again; if the point still lands elsewhere the
  step fails naming what is in the way.
- ``type into``: after the click the focused element must take text, and after typing its
  value must hold the text (browser), or the field's box must have changed (desktop).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from guiagent.core.env import Frame
from guiagent.core.geometry import Point
from guiagent.scenario.ground import Grounded, StepFailure


@runtime_checkable
class HitTester(Protocol):
    """A surface that can say what is drawn at a point (a browser)."""

    async def hit_test(self, x: float, y: float, ref: int) -> dict[str, Any]: ...

    async def scroll_into_view(self, ref: int) -> bool: ...


@runtime_checkable
class FocusReader(Protocol):
    """A surface that can say which element has focus and what it holds (a browser)."""

    async def focus_state(self, text: str | None = None) -> dict[str, Any]: ...


async def covered_by(env: Any, hit: Grounded) -> str | None:
    """None when the point of ``hit`` lands on its element; else what is drawn there."""
    if hit.ref is None or not isinstance(env, HitTester):
        return None
    result = await env.hit_test(hit.screen[0], hit.screen[1], hit.ref)
    if not result.get("found"):
        return None  # the element went away: grounding again is the caller's business
    return None if result.get("hit") else str(result.get("at") or "something else")


async def focus_problem(env: Any, what: str) -> str | None:
    """After clicking ``what`` to type into it: None when an editable element has focus."""
    if not isinstance(env, FocusReader):
        return None
    state = await env.focus_state(None)
    if state.get("focused") and state.get("editable"):
        return None
    return f"clicking {what} did not focus a text field: focus is on {state.get('at', 'nothing')}"


async def typed_problem(env: Any, text: str) -> str | None:
    """After typing ``text`` into a field: None when the focused field's value holds it."""
    if not isinstance(env, FocusReader) or not text:
        return None
    state = await env.focus_state(text)
    if not state.get("focused"):
        return f"focus went to {state.get('at', 'nothing')} while typing; the text was lost"
    if not state.get("editable"):
        return f"focus is on {state.get('at')}, which takes no text; the text was lost"
    if state.get("contains") is False:
        return f"the text is not in the field's value after typing (focus: {state.get('at')})"
    return None


def field_changed(before: Frame, after: Frame, box: tuple[float, float, float, float]) -> bool:
    """Whether the pixels inside ``box`` (frame pixels) differ between two frames."""
    x1, y1, x2, y2 = (round(v) for v in box)
    if before.image.size != after.image.size or x2 <= x1 or y2 <= y1:
        return True  # cannot compare: do not claim nothing happened
    a = np.asarray(before.image.convert("L"))[y1:y2, x1:x2].astype(np.int16)
    b = np.asarray(after.image.convert("L"))[y1:y2, x1:x2].astype(np.int16)
    return bool((np.abs(a - b) > 40).sum() >= 4)


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
