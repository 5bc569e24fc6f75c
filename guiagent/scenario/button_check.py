"""A desktop target named with ``role: button``, found by its text in the pixels (no DOM
says what the element is), must look like a button, and a click on it must not be a click
on a disabled one:

- before the input: a closed, button-shaped outline must be drawn around the text
  (:func:`~guiagent.grounding.buttons.button_around`); plain text (a label) fails. When the
  application at the point is on the accessibility bus the pixels are not asked (a flat
  button there has no outline): the role stays a hint, as for other roles.
- after a click: a button whose label is greyed (it stands out from the button's face by
  less than ``GREYED_CONTRAST`` gray levels) and whose click changed nothing on the screen
  within ``SETTLE_S`` is disabled: the step fails.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from guiagent.core.env import AccessibleFocus, Frame
from guiagent.core.geometry import Rect
from guiagent.grounding.buttons import button_around, button_boxes, label_contrast
from guiagent.scenario.ground import Grounded, StepFailure
from guiagent.scenario.schema import TargetSpec

GREYED_CONTRAST = 90.0  # Tk greys a disabled label to 54 levels from its face; black is 217
SETTLE_S = 1.0  # how long a pressed button may take to show anything


def asks_for_button(spec: TargetSpec, frame: Frame, hit: Grounded) -> bool:
    """A desktop text target with role button, found in the pixels (not by a DOM)."""
    role = " ".join((spec.role or "").lower().split())
    return (
        role == "button"
        and spec.text is not None
        and frame.surface == "desktop"
        and hit.ref is None
        and hit.box is not None
    )


class ButtonClickCheck:
    """After a click on a button found in ``before``: None, or why the click did nothing."""

    def __init__(self, env: Any, what: str, before: Frame, greyed: bool) -> None:
        self.env, self.what, self.before, self.greyed = env, what, before, greyed

    async def __call__(self) -> str | None:
        if not self.greyed:
            return None
        deadline = time.monotonic() + SETTLE_S
        while True:
            await asyncio.sleep(0.1)
            after = await self.env.observe()
            if after.digest != self.before.digest:
                return None
            if time.monotonic() > deadline:
                return (
                    f"clicked {self.what} but it looks disabled (its label is greyed) and "
                    "nothing on the screen changed"
                )


async def drawn_button(env: Any, frame: Frame, spec: TargetSpec, hit: Grounded) -> Rect | None:
    """The outline of the button ``hit`` found (None: the bus answers for this application,
    pixels are not asked); raises :class:`StepFailure` when no button is drawn there."""
    if isinstance(env, AccessibleFocus) and await env.accessible_focus(*hit.screen) is not None:
        return None
    assert hit.box is not None
    x1, y1, x2, y2 = hit.box
    gray = np.asarray(frame.image.convert("L"))
    text = Rect(x1, y1, x2 - x1, y2 - y1)
    found = await asyncio.to_thread(button_around, gray, text)
    if found is None:  # a small button's label read alone: its box is the button's outline
        rgb = np.asarray(frame.image.convert("RGB"))
        outlines = await asyncio.to_thread(button_boxes, rgb)
        found = next((b for b in outlines if _same_box(b, text)), None)
    if found is None:
        x, y = hit.screen
        raise StepFailure(
            f"{spec.describe()}: the text '{hit.text or spec.text}' at ({x:.0f}, {y:.0f}) is not "
            "drawn as a button (no outline around it): plain text, not a button; without "
            "role: button the text itself is clicked"
        )
    return found


async def button_click_check(
    env: Any, frame: Frame, spec: TargetSpec, hit: Grounded
) -> ButtonClickCheck | None:
    """The check of a click on ``hit`` when ``spec`` asks for a button (see the module)."""
    if not asks_for_button(spec, frame, hit):
        return None
    button = await drawn_button(env, frame, spec, hit)
    if button is None:
        return None
    gray = np.asarray(frame.image.convert("L"))
    greyed = label_contrast(gray, button) < GREYED_CONTRAST
    return ButtonClickCheck(env, spec.describe(), frame, greyed)


def _same_box(a: Rect, b: Rect, slack: float = 3.0) -> bool:
    return all(abs(p - q) <= slack for p, q in zip(a.as_xyxy(), b.as_xyxy(), strict=True))
