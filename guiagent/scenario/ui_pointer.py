"""The pointer steps of :class:`~guiagent.scenario.ui.UI` (click kinds, scroll, drag), a mixin
split from ``ui.py``: they ground their targets, then act through ``UI._act``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from guiagent.core.actions import Click, DoubleClick, Drag, Move, RightClick, Scroll
from guiagent.core.env import Frame
from guiagent.core.geometry import Point
from guiagent.scenario.button_check import button_click_check
from guiagent.scenario.ground import Grounded
from guiagent.scenario.schema import as_target
from guiagent.scenario.scroll_until import scroll_until
from guiagent.scenario.verify import CheckedScreen, toggle_check


def click_step_value(target: str | Mapping[str, Any], modifiers: Sequence[str] | str) -> Any:
    """A click step's value from the Python API: the target, with the keys held if any."""
    value = target if isinstance(target, str) else dict(target)
    if not modifiers:
        return value
    held = [modifiers] if isinstance(modifiers, str) else list(modifiers)
    return {"target": value, "modifiers": held}


class PointerSteps(CheckedScreen):
    """Click, double/right click, hover, scroll and drag steps (``_act`` comes from UI)."""

    async def _click_kind(
        self, kind: str, frame: Frame, value: Any, timeout: float, rec: dict[str, Any]
    ) -> None:
        spec = as_target(value)
        frame, hit = await self.ground(frame, spec, timeout)
        # the replay evidence at the point is read beside the hit test
        early = asyncio.ensure_future(self.evidence_at(hit))
        try:
            frame, reached = await self._reachable(frame, spec, hit, timeout)
        finally:
            target = await early
        if reached is not hit:  # grounded again elsewhere: the executor reads it there
            target, hit = None, reached
        # role button on a desktop: drawn as a button, and a click on a disabled one fails
        check = await button_click_check(self.env, frame, spec, hit)
        cls = {
            "click": Click,
            "double_click": DoubleClick,
            "right_click": RightClick,
            "hover": Move,
        }[kind]
        held = getattr(spec, "modifiers", ())  # ClickTarget: keys held while clicking
        action = (
            cls(x=hit.screen[0], y=hit.screen[1], modifiers=held)
            if held
            else cls(x=hit.screen[0], y=hit.screen[1])
        )
        rec.update(action=action, hits=[hit])
        pressed = check if check is not None and kind != "hover" else None
        if pressed is None and kind == "click":
            # a click on a checkbox, radio, switch or toggle button must change its state
            pressed = await toggle_check(self.env, hit, spec.describe(), self.reached_answer(hit))
        await self._act(action, rec, frame, [hit], check=pressed, target=target)

    async def _scroll(self, frame: Frame, spec: Any, timeout: float, rec: dict[str, Any]) -> str:
        if spec.until is not None:
            return await scroll_until(self, frame, spec, timeout, rec)
        x, y, hits = await self._scroll_point(frame, spec, timeout)
        action = Scroll(x=x, y=y, direction=spec.direction, amount=spec.amount)
        rec.update(action=action, hits=hits)
        await self._act(action, rec, frame, hits)
        return ""

    async def _scroll_point(
        self, frame: Frame, spec: Any, timeout: float
    ) -> tuple[float, float, list[Grounded]]:
        """Where a scroll step turns the wheel: its ``on``/``in`` target, ``at``, or the centre."""
        place = spec.on if spec.on is not None else spec.in_
        if place is not None:
            frame, hit = await self.ground(frame, place, timeout)
            return hit.screen[0], hit.screen[1], [hit]
        if spec.at is not None:
            x, y = spec.at
            return x, y, [Grounded(screen=(x, y), source="at")]
        centre = frame.transform.frame_to_screen(Point(frame.size.width / 2, frame.size.height / 2))
        return centre.x, centre.y, [Grounded(screen=(centre.x, centre.y), source="centre")]

    async def _drag(self, frame: Frame, spec: Any, timeout: float, rec: dict[str, Any]) -> None:
        frame, start = await self.ground(frame, spec.from_, timeout)
        frame, start = await self._reachable(frame, spec.from_, start, timeout)  # press on it
        frame, end = await self.ground(frame, spec.to, timeout)
        action = Drag(x1=start.screen[0], y1=start.screen[1], x2=end.screen[0], y2=end.screen[1])
        rec.update(action=action, hits=[start, end])
        await self._act(action, rec, frame, [start, end])
