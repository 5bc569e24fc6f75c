"""Desktop narration: each window from its AT-SPI tree when its application exposes one,
else from the pixels (OCR words grouped into controls by the boxes drawn around them,
roles from shape and text, keypads and toolbars read row by row). The narration says
which windows were read from the pixels, and why.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING, Any

from loguru import logger

from guiagent.core.env import Frame
from guiagent.core.geometry import FrameTransform, Point, Rect
from guiagent.core.redact import looks_masked, title_matches
from guiagent.envs.atspi import AtspiError, AtspiNode, AtspiReader
from guiagent.grounding.local import LocalGrounder
from guiagent.grounding.ocr import TextBox, recognise_crops
from guiagent.narrate import a11y, layout, pixels
from guiagent.narrate.desktop_tree import showing_windows, window_items
from guiagent.narrate.narrator import (
    NarrateError,
    Scope,
    _box,
    _crop,
    _overlaps,
    _scale_rect,
    _window_dict,
    body_regions,
    finish,
)
from guiagent.narrate.schema import Item, Narration, Region

if TYPE_CHECKING:
    from guiagent.narrate.narrator import Narrator


async def list_windows(env: Any) -> list[a11y.XWindow]:
    display = getattr(env, "display", None)
    if not display:
        return []
    try:
        return await asyncio.to_thread(a11y.x_windows, display)
    except Exception as exc:  # no Xlib, display gone: narrate the pixels alone
        logger.warning("cannot list X windows on {}: {}", display, exc)
        return []


def _bus_env(narrator: Narrator) -> dict[str, str] | None:
    """Where the desktop's accessibility bus is, or None when there is none to ask."""
    env = dict(narrator.atspi_env or {})
    display = getattr(narrator.env, "display", None)
    if display and "DISPLAY" not in env:
        env["DISPLAY"] = display
    if not any(
        k in env or k in os.environ for k in ("DBUS_SESSION_BUS_ADDRESS", "AT_SPI_BUS_ADDRESS")
    ):
        return None
    return env


async def tree_windows(narrator: Narrator) -> tuple[list[tuple[str, AtspiNode]], str | None]:
    """The AT-SPI windows showing on the desktop, or ([], why not)."""
    env = _bus_env(narrator)
    if env is None:
        return [], "no accessibility bus on this display"
    if narrator._atspi is None:
        narrator._atspi = AtspiReader(env=env)
    try:
        apps = await asyncio.to_thread(narrator._atspi.applications)
    except AtspiError as exc:
        logger.info("AT-SPI unavailable ({}): narrating the pixels", exc)
        return [], f"AT-SPI unavailable: {exc}"
    return showing_windows(apps), None


def _match(window: a11y.XWindow, trees: list[tuple[str, AtspiNode]]) -> AtspiNode | None:
    """The AT-SPI window of an X window: same title, overlapping boxes."""
    for _, node in trees:
        if node.name == window.title and _overlaps(Rect(*node.box), Rect(*window.box)):
            return node
    return None


async def narrate_desktop(narrator: Narrator, scope: Scope, atspi: bool) -> Narration:
    frame = await narrator.env.observe()
    windows = await list_windows(narrator.env)
    display = getattr(narrator.env, "display", None)
    screen_area = await _desktop_area(frame, scope, windows, display)
    crop_rect = _scale_rect(screen_area, frame.transform) if screen_area else None
    notes: list[str] = []
    trees: list[tuple[str, AtspiNode]] = []
    if atspi:
        trees, why_not = await tree_windows(narrator)
        if why_not and windows:
            notes.append(f"{why_not}: read from the pixels")
    regions: list[Region] = []
    covered: list[Rect] = []  # frame pixels already read from a tree
    redacted = 0
    for window in reversed(windows) if trees else []:  # topmost first
        node = _match(window, trees)
        area = _scale_rect(Rect(*window.box), frame.transform)
        if node is None or any(_overlaps(area, c) for c in covered):
            continue
        if crop_rect is not None and not _overlaps(area, crop_rect):
            continue
        covered.append(area)
        if any(title_matches(p, window.title) for p in narrator.redactor.window_titles):
            redacted += 1
            continue
        items = window_items(node, lambda r: _scale_rect(r, frame.transform))
        if crop_rect is not None:
            items = [i for i in items if crop_rect.contains(i.centre)]
        items = [narrator._redact_item(i) for i in items]
        dialog = window.dialog or node.role in ("dialog", "alert", "file chooser")
        regions.extend(_window_regions(window.title, dialog, items, area))
    told, pixel_redacted = await _pixel_regions(
        narrator, frame, scope, windows, crop_rect, covered, display
    )
    if atspi and trees:
        for window in windows:
            area = _scale_rect(Rect(*window.box), frame.transform)
            if not any(_overlaps(area, c) for c in covered) and _has_items(told, area):
                notes.append(f"{window.title} exposes no accessibility tree: read from the pixels")
    if scope.kind == "pointer" and display:
        px, py = await asyncio.to_thread(a11y.x_pointer, display)
        point = frame.transform.screen_to_frame(Point(px, py))
        regions = [r.model_copy(update={"items": _under(r.items, point)}) for r in regions]
    return finish(regions + told, narrator.surface, redacted + pixel_redacted, notes=notes)


def _has_items(regions: list[Region], area: Rect) -> bool:
    return any(area.contains(i.centre) for r in regions for i in r.items)


def _window_regions(title: str, dialog: bool, items: list[Item], area: Rect) -> list[Region]:
    if dialog:
        return [Region(kind="dialog", title=title, items=items, box=_box(area))]
    return [
        Region(kind="title_bar", title=title, items=[], box=_box(area)),
        *body_regions(items),
    ]


async def _pixel_regions(
    narrator: Narrator,
    frame: Frame,
    scope: Scope,
    windows: list[a11y.XWindow],
    crop_rect: Rect | None,
    covered: list[Rect],
    display: str | None,
) -> tuple[list[Region], int]:
    """Regions read from the pixels (everything not ``covered`` by a tree)."""
    if narrator.grounder is None:
        narrator.grounder = LocalGrounder()
    if narrator.surface == "browser":
        frame, hidden_rects = await narrator.private_frame()
        work = _crop(frame, crop_rect) if crop_rect else frame
        hidden = [_shift(h, crop_rect) for h in hidden_rects]
        redacted = len(hidden_rects)
    else:
        work = _crop(frame, crop_rect) if crop_rect else frame
        work, masked = await narrator.redactor.redact(
            work, windows=[_window_dict(w) for w in windows], text_boxes=[]
        )
        hidden = [Rect(*n.box) for n in masked]
        redacted = len(masked)
    offset = (crop_rect.left, crop_rect.top) if crop_rect else (0.0, 0.0)
    local_covered = [_shift(c, crop_rect) for c in covered]
    boxes = await narrator.grounder.aread_text(work)
    kept: list[TextBox] = []
    for tb in boxes:
        if any(_overlaps(tb.box, h) for h in hidden) or any(
            c.contains(tb.box.centre) for c in local_covered
        ):
            continue  # ink around a blacked-out box, or a window read from its tree
        if looks_masked(tb.text) or narrator.redactor.secret_rule(tb.text):
            redacted += 1
            continue
        kept.append(tb)
    recognise = recognise_crops if narrator.pixel_controls else None
    items = pixels.pixel_items(work.array(), kept, offset, recognise)
    if scope.kind == "pointer" and display:
        px, py = await asyncio.to_thread(a11y.x_pointer, display)
        items = _under(items, frame.transform.screen_to_frame(Point(px, py)))
    order = layout.reading_order([i.rect for i in items])
    ordered = [items[i] for i in order]
    uncovered = [w for w in windows if not any(c.contains(Rect(*w.box).centre) for c in covered)]
    return _desktop_regions(ordered, uncovered, frame.transform), redacted


def _shift(rect: Rect, crop_rect: Rect | None) -> Rect:
    if crop_rect is None:
        return rect
    return Rect(rect.left - crop_rect.left, rect.top - crop_rect.top, rect.width, rect.height)


async def _desktop_area(
    frame: Frame, scope: Scope, windows: list[a11y.XWindow], display: str | None
) -> Rect | None:
    """The screen area to read for a scope (None: everything)."""
    if scope.kind == "region":
        return scope.rect
    if scope.kind == "pointer":
        if not display:
            raise NarrateError("--under-pointer needs an X display")
        px, py = await asyncio.to_thread(a11y.x_pointer, display)
        for window in reversed(windows):  # topmost first
            if Rect(*window.box).contains(Point(px, py)):
                return Rect(*window.box)
        return None
    if scope.kind == "focused":
        title = frame.meta.get("window_title")
        for window in reversed(windows):
            if title and window.title == title:
                return Rect(*window.box)
        raise NarrateError("no focused window found to narrate")
    return None


def _under(items: list[Item], point: Point) -> list[Item]:
    inside = [i for i in items if i.rect.contains(point)]
    if inside:
        return inside
    if not items:
        return []
    nearest = min(items, key=lambda i: i.centre.distance(point))
    return [nearest] if nearest.centre.distance(point) <= 48 else []


def _desktop_regions(
    ordered: list[Item], windows: list[a11y.XWindow], transform: FrameTransform
) -> list[Region]:
    """Per window (dialogs first, then top to bottom of the stack): its title bar and body."""
    remaining = list(ordered)
    regions: list[Region] = []
    stack = sorted(reversed(windows), key=lambda w: not w.dialog)
    for window in stack:
        area = _scale_rect(Rect(*window.box), transform)
        members = [i for i in remaining if area.contains(i.centre)]
        if not members:
            continue
        remaining = [i for i in remaining if i not in members]
        if window.dialog:
            regions.append(Region(kind="dialog", title=window.title, items=members, box=_box(area)))
            continue
        regions.append(Region(kind="title_bar", title=window.title, items=[], box=_box(area)))
        regions.extend(body_regions(members))
    regions.extend(body_regions(remaining))
    return regions
