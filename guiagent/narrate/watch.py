"""Watch mode: after each settled change, announce only what changed.

:func:`diff_narrations` compares two narrations item by item (identity: role, label and
approximate position) and says what a user needs to hear: a dialog opened or closed, a
text changed from A to B, a state changed, the focus moved, things appeared or went.
:class:`ChangeAnnouncer` rate-limits: changes arriving within ``min_interval_s`` of the
last announcement are held and announced together later, as the net change (a text that
changes and changes back says nothing). :class:`Watcher` drives it from the screen.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
from loguru import logger

from guiagent.core.change import frame_difference, settle
from guiagent.core.env import Frame
from guiagent.core.geometry import Point, Rect
from guiagent.narrate.narrator import Narrator, Scope
from guiagent.narrate.schema import Announcement, Item, Narration, Region

_MAX_LISTED = 3


def _near(a: Item, b: Item, tolerance: float) -> bool:
    return abs(a.centre.x - b.centre.x) <= tolerance and abs(a.centre.y - b.centre.y) <= tolerance


def _same_start(a: Item, b: Item, tolerance: float) -> bool:
    return (
        a.live == b.live
        and a.role == b.role
        and abs(a.box[0] - b.box[0]) <= tolerance
        and abs(a.box[1] - b.box[1]) <= tolerance
    )


def item_key(item: Item, grid: float = 24.0) -> str:
    c = item.centre
    return f"{item.role}|{item.label}|{round(c.x / grid)},{round(c.y / grid)}"


def _region_key(region: Region) -> str:
    first = region.items[0].label if region.items else ""
    return f"{region.kind}|{region.title or first}"


def _states(item: Item) -> list[str]:
    return [s for s in item.state if s != "focused"]


def _dialog_regions(narration: Narration) -> dict[str, Region]:
    return {_region_key(r): r for r in narration.regions if r.kind == "dialog"}


def _dialog_changes(
    old_dialogs: dict[str, Region], new_dialogs: dict[str, Region]
) -> list[Announcement]:
    """Dialogs that opened (said whole, with what is inside) or closed."""
    out: list[Announcement] = []
    for key, region in new_dialogs.items():
        if key not in old_dialogs:
            inside = ". ".join(i.spoken() for i in region.items)
            title = f": {region.title}" if region.title else ""
            out.append(
                Announcement(
                    kind="dialog_opened",
                    text=f"Dialog{title}. {inside}".strip(),
                    key=f"dialog|{key}",
                )
            )
    for key, region in old_dialogs.items():
        if key not in new_dialogs:
            title = f": {region.title}" if region.title else ""
            out.append(
                Announcement(
                    kind="dialog_closed", text=f"Dialog closed{title}", key=f"dialog|{key}"
                )
            )
    return out


def _title_change(old: Narration, new: Narration) -> list[Announcement]:
    old_title = next((r.title for r in old.regions if r.kind == "title_bar"), None)
    new_title = next((r.title for r in new.regions if r.kind == "title_bar"), None)
    if new_title and new_title != old_title:
        return [Announcement(kind="title_changed", text=f"Title: {new_title}", key="title")]
    return []


def _focus_change(old: Narration, new: Narration, tolerance: float) -> list[Announcement]:
    if new.focused is not None and (
        old.focused is None
        or old.focused.role != new.focused.role
        or old.focused.label != new.focused.label
        or not _near(old.focused, new.focused, tolerance)
    ):
        return [
            Announcement(
                kind="focus_moved",
                text=f"Focus: {new.focused.spoken()}".replace(", focused", ""),
                key="focus",
                item=new.focused,
            )
        ]
    return []


def _items_outside_changed_dialogs(
    old: Narration,
    new: Narration,
    old_dialogs: dict[str, Region],
    new_dialogs: dict[str, Region],
) -> tuple[list[Item], list[Item]]:
    """The items to compare one by one: those of dialogs that opened or closed were
    announced whole with their dialog."""
    skip_new = {id(i) for k, r in new_dialogs.items() if k not in old_dialogs for i in r.items}
    skip_old = {id(i) for k, r in old_dialogs.items() if k not in new_dialogs for i in r.items}
    before = [i for i in old.items() if id(i) not in skip_old]
    after = [i for i in new.items() if id(i) not in skip_new]
    return before, after


def _same_item_changes(
    before: list[Item], after: list[Item], tolerance: float
) -> tuple[list[Announcement], list[Item], list[Item]]:
    """State and value changes of items found again (same role, label and place); returns
    them with the old items not found again and the new items not matched."""
    out: list[Announcement] = []
    unmatched_old = list(before)
    unmatched_new: list[Item] = []
    for item in after:
        match = next(
            (
                o
                for o in unmatched_old
                if o.role == item.role and o.label == item.label and _near(o, item, tolerance)
            ),
            None,
        )
        if match is None:
            unmatched_new.append(item)
            continue
        unmatched_old.remove(match)
        if _states(match) != _states(item):
            now = ", ".join(_states(item)) or "normal"
            out.append(
                Announcement(
                    kind="state_changed",
                    text=f"{item.label or item.role}, {item.role}: now {now}",
                    key=f"state|{item_key(item)}",
                    item=item,
                )
            )
        if match.value != item.value:
            out.append(
                Announcement(
                    kind="text_changed",
                    text=f"{item.label or item.role}: {item.value or 'empty'}",
                    key=f"value|{item_key(item)}",
                    item=item,
                )
            )
    return out, unmatched_old, unmatched_new


def _relabel_and_live_changes(
    unmatched_new: list[Item], unmatched_old: list[Item], tolerance: float
) -> tuple[list[Announcement], list[Announcement], list[Item]]:
    """New items that replace an old one in place (a relabel), live-region content, and
    items that simply appeared. Removes the old items matched here from ``unmatched_old``."""
    changes: list[Announcement] = []
    live: list[Announcement] = []
    appeared: list[Item] = []
    for item in unmatched_new:
        match = next(
            (o for o in unmatched_old if o.role == item.role and _near(o, item, tolerance)), None
        )
        if match is None and item.live:  # new text in a live region keeps its start
            match = next((o for o in unmatched_old if _same_start(o, item, tolerance)), None)
        if match is not None:
            unmatched_old.remove(match)
        if item.live:  # a live region says its new content, as it is
            live.append(
                Announcement(
                    kind="live_region",
                    text=item.spoken(),
                    key=f"live|{item.role}|{round(item.centre.x)},{round(item.centre.y)}",
                    item=item,
                )
            )
            continue
        if match is None:
            appeared.append(item)
            continue
        changes.append(
            Announcement(
                kind="text_changed",
                text=f"{match.label!r} changed to {item.label!r}",
                key=f"text|{item.role}|{round(item.centre.x)},{round(item.centre.y)}",
                item=item,
            )
        )
    return changes, live, appeared


def _appeared_and_gone(appeared: list[Item], gone: list[Item]) -> list[Announcement]:
    out: list[Announcement] = []
    if appeared:
        listed = ". ".join(i.spoken() for i in appeared[:_MAX_LISTED])
        more = f", and {len(appeared) - _MAX_LISTED} more" if len(appeared) > _MAX_LISTED else ""
        out.append(
            Announcement(
                kind="appeared",
                text=f"New: {listed}{more}",
                key="appeared|" + ";".join(item_key(i) for i in appeared),
            )
        )
    if gone:
        listed = ", ".join(i.label or i.role for i in gone[:_MAX_LISTED])
        more = f", and {len(gone) - _MAX_LISTED} more" if len(gone) > _MAX_LISTED else ""
        out.append(
            Announcement(
                kind="disappeared",
                text=f"Gone: {listed}{more}",
                key="gone|" + ";".join(item_key(i) for i in gone),
            )
        )
    return out


def diff_narrations(old: Narration, new: Narration, tolerance: float = 24.0) -> list[Announcement]:
    """What changed from ``old`` to ``new``, most important first; [] when nothing did."""
    old_dialogs, new_dialogs = _dialog_regions(old), _dialog_regions(new)
    out = _dialog_changes(old_dialogs, new_dialogs)
    out += _title_change(old, new)
    out += _focus_change(old, new, tolerance)
    before, after = _items_outside_changed_dialogs(old, new, old_dialogs, new_dialogs)
    changes, unmatched_old, unmatched_new = _same_item_changes(before, after, tolerance)
    out += changes
    relabels, live, appeared = _relabel_and_live_changes(unmatched_new, unmatched_old, tolerance)
    out += relabels
    # assertive regions interrupt: said first; polite ones after what is already queued
    out = (
        [a for a in live if a.item and a.item.live == "assertive"]
        + out
        + [a for a in live if not (a.item and a.item.live == "assertive")]
    )
    return out + _appeared_and_gone(appeared, unmatched_old)


def visible_change(a: Frame, b: Frame, area: Rect | None = None, min_side: int = 4) -> bool:
    """Whether something at least ``min_side`` pixels wide and tall changed between two
    frames (within ``area``, frame pixels). A blinking text caret (one or two pixels wide)
    does not count; a check mark appearing in a box does."""
    import cv2

    if a.size != b.size:
        return True
    x1, y1, x2, y2 = 0, 0, a.size.width, a.size.height
    if area is not None:
        x1, y1 = max(int(area.left), 0), max(int(area.top), 0)
        x2, y2 = min(int(area.right + 0.999), x2), min(int(area.bottom + 0.999), y2)
    old = np.asarray(a.image)[y1:y2, x1:x2].astype(np.int16)
    new = np.asarray(b.image)[y1:y2, x1:x2].astype(np.int16)
    mask = (np.abs(old - new).max(axis=2) > 24).astype(np.uint8) if old.size else None
    if mask is None or not mask.any():
        return False
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    return any(w >= min_side and h >= min_side for _, _, w, h, _ in stats[1:count])


class ChangeAnnouncer:
    """Turns successive narrations into announcements, at most one batch per
    ``min_interval_s``; the first narration is the baseline and announces nothing."""

    def __init__(
        self, min_interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.baseline: Narration | None = None
        self.pending: Narration | None = None
        self.last_announced = float("-inf")

    def update(self, narration: Narration, now: float | None = None) -> list[Announcement]:
        now = self.clock() if now is None else now
        if self.baseline is None:
            self.baseline = narration
            return []
        self.pending = narration
        return self.flush(now)

    def flush(self, now: float | None = None) -> list[Announcement]:
        """Announce the held change if the interval has passed (else nothing, yet)."""
        now = self.clock() if now is None else now
        if self.pending is None or self.baseline is None:
            return []
        if now - self.last_announced < self.min_interval_s:
            return []
        announcements = diff_narrations(self.baseline, self.pending)
        self.baseline, self.pending = self.pending, None
        if announcements:
            self.last_announced = now
        return announcements

    @property
    def due_in(self) -> float | None:
        """Seconds until a held change may be announced (None: nothing held)."""
        if self.pending is None:
            return None
        return max(0.0, self.last_announced + self.min_interval_s - self.clock())


Emit = Callable[[list[Announcement]], Awaitable[Any] | Any]


class Watcher:
    """Watches an environment through a narrator and announces settled changes.

    A new narration is made only when the pixels changed by more than ``threshold`` (see
    :func:`~guiagent.core.change.frame_difference`) and then settled for ``quiet_ms``.
    """

    def __init__(
        self,
        narrator: Narrator,
        scope: Scope | None = None,
        min_interval_s: float = 1.0,
        threshold: float = 0.002,
        quiet_ms: float = 300,
        settle_timeout_s: float = 5.0,
    ) -> None:
        self.narrator = narrator
        self.scope = scope or Scope()
        self.announcer = ChangeAnnouncer(min_interval_s)
        self.threshold = threshold
        self.quiet_ms = quiet_ms
        self.settle_timeout_s = settle_timeout_s
        self.last_frame: Frame | None = None
        self.narrations = 0

    async def start(self) -> Narration:
        """Settle, narrate the whole scope once (the baseline) and return it."""
        settled = await settle(
            self.narrator.env.observe, quiet_ms=self.quiet_ms, timeout_s=self.settle_timeout_s
        )
        self.last_frame = settled.frame
        narration = await self.narrator.narrate(self.scope)
        self.narrations += 1
        self.announcer.update(narration)
        return narration

    async def check(self) -> list[Announcement]:
        """Look once: announcements for a settled change, or held ones now due, or []."""
        if self.last_frame is None:
            await self.start()
            return []
        frame = await self.narrator.env.observe()
        if frame_difference(frame, self.last_frame) <= self.threshold and not visible_change(
            self.last_frame, frame, self._area(frame)
        ):
            return self.announcer.flush()
        settled = await settle(
            self.narrator.env.observe, quiet_ms=self.quiet_ms, timeout_s=self.settle_timeout_s
        )
        self.last_frame = settled.frame
        narration = await self.narrator.narrate(self.scope)
        self.narrations += 1
        return self.announcer.update(narration)

    def _area(self, frame: Frame) -> Rect | None:
        """The scope's rectangle in frame pixels (None: the whole frame)."""
        if self.scope.kind != "region" or self.scope.rect is None:
            return None
        rect, t = self.scope.rect, frame.transform
        top_left = t.screen_to_frame(Point(rect.left, rect.top))
        return Rect(top_left.x, top_left.y, rect.width * t.scale, rect.height * t.scale)

    async def run(
        self,
        emit: Emit,
        stop: asyncio.Event | None = None,
        duration_s: float | None = None,
        poll_s: float = 0.25,
    ) -> None:
        """Check every ``poll_s`` until ``stop`` is set or ``duration_s`` passes."""
        started = time.monotonic()
        if self.last_frame is None:
            await self.start()
        while not (stop is not None and stop.is_set()):
            if duration_s is not None and time.monotonic() - started >= duration_s:
                break
            announcements = await self.check()
            if announcements:
                logger.debug("announcing {} change(s)", len(announcements))
                result = emit(announcements)
                if inspect.isawaitable(result):
                    await result
            await asyncio.sleep(poll_s)
