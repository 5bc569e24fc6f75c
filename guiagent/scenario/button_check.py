"""A desktop target named with ``role: button``, found by its text in the pixels (no DOM
says what the element is), must look like a button, and a click on it must not be a click
on a disabled one:

- before the input, when the application at the point is on the accessibility bus
  (AT-SPI): one of the objects at the point must be a button, and enabled;
- else from the pixels: a closed, button-shaped outline must be drawn around the text
  (:func:`~guiagent.grounding.buttons.button_around`); plain text (a label) fails;
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


BUTTON_ROLES = {"push button", "toggle button", "button", "menu button", "split button"}


def bus_button_problem(spec: TargetSpec, hit: Grounded, chain: list[dict[str, Any]]) -> str | None:
    """What is wrong with clicking ``hit`` as a button, from the objects the bus names at
    its point (deepest first); None: a button, enabled, or the bus names nothing there."""
    if not chain:
        return None
    x, y = hit.screen
    button = next((node for node in chain if node.get("role") in BUTTON_ROLES), None)
    if button is None:
        node = chain[0]
        name = f"'{node.get('name')}' " if node.get("name") else ""
        return (
            f"{spec.describe()}: what is at ({x:.0f}, {y:.0f}) is {name}({node.get('role')}), "
            "not a button (AT-SPI)"
        )
    if "enabled" not in button.get("states", []):
        return (
            f"{spec.describe()}: the button '{button.get('name') or hit.text}' at ({x:.0f}, "
            f"{y:.0f}) is disabled (AT-SPI)"
        )
    return None


async def drawn_button(env: Any, frame: Frame, spec: TargetSpec, hit: Grounded) -> Rect | None:
    """The outline of the button ``hit`` found (None: the accessibility bus answered for
    this application instead); raises :class:`StepFailure` when it is no (enabled) button."""
    if isinstance(env, AccessibleFocus):
        answer = await env.accessible_focus(*hit.screen)
        if answer is not None:
            problem = bus_button_problem(spec, hit, list(answer.get("chain") or []))
            if problem is not None:
                raise StepFailure(problem)
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
