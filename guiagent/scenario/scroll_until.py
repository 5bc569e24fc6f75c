"""``scroll: {until: TARGET}``: scroll a container (or the page) until a target shows.

Each round looks for the target on the settled frame (shown means grounded, and in a
browser a click at its point would reach it, not a clipping or covering element); when it
is not there, one wheel scroll goes through the run's executor like any step's input. The
step fails after ``max`` scrolls, or earlier when a scroll left the screen unchanged (the
end of the list was reached), naming the target and the place.
"""

from __future__ import annotations

from typing import Any

from PIL import ImageChops

from guiagent.core.actions import Scroll
from guiagent.core.env import Frame
from guiagent.scenario.ground import Grounded, StepFailure
from guiagent.scenario.schema import ScrollSpec, TargetSpec
from guiagent.scenario.verify import covered_by


async def shows(ui: Any, frame: Frame, target: TargetSpec) -> bool:
    """Whether ``target`` is on ``frame`` where a person could click it."""
    from guiagent.grounding.local import AmbiguousTarget

    dom = await ui.dom()
    found, _ = await ui.visible(frame, target, dom)
    if not found:
        return False
    try:
        hit: Grounded = await ui._ground_once(frame, target, dom)
    except AmbiguousTarget:
        return True  # several matches are showing
    except Exception:  # found a moment ago, gone now: not showing
        return False
    return await covered_by(ui.env, hit) is None


def _unchanged(before: Frame, after: Frame) -> bool:
    if before.image.size != after.image.size:
        return False
    diff = ImageChops.difference(before.image.convert("RGB"), after.image.convert("RGB"))
    return diff.getbbox() is None


async def scroll_until(
    ui: Any, frame: Frame, spec: ScrollSpec, timeout: float, rec: dict[str, Any]
) -> str:
    """Scroll (as ``spec`` says where and which way) until ``spec.until`` shows."""
    assert spec.until is not None
    target = spec.until
    place = spec.on or spec.in_
    where = f" in {place.describe()}" if place is not None else ""
    point: tuple[float, float, list[Grounded]] | None = None
    for done in range(spec.max + 1):
        if await shows(ui, frame, target):
            return f"{target.describe()} showed after {done} scroll(s) {spec.direction}{where}"
        if done == spec.max:
            break
        if point is None:  # found once: what named the place may scroll away
            point = await ui._scroll_point(frame, spec, timeout)
        x, y, hits = point
        action = Scroll(x=x, y=y, direction=spec.direction, amount=spec.amount)
        rec.update(action=action, hits=hits)
        await ui._act(action, rec, frame, hits)
        after, _ = await ui.settled()
        if _unchanged(frame, after):
            raise StepFailure(
                f"{target.describe()} did not show: the view stopped moving after"
                f" {done + 1} scroll(s) {spec.direction}{where}"
            )
        frame = after
    raise StepFailure(
        f"{target.describe()} did not show after {spec.max} scrolls {spec.direction}{where}"
        " (raise max: to scroll further)"
    )
