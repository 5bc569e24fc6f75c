"""The narrator: what is on the screen, in reading order, grouped into regions.

Local mode reads the page's DOM and ARIA snapshot in a browser, and OCR plus X11 windows
(plus AT-SPI when present) on the desktop. Model mode sends the redacted screenshot to
Step3-VL (see :mod:`guiagent.narrate.model`). Private things (password fields, regions
and windows marked private, elements marked private in the page) are blacked out before
any OCR or model call, left out of the narration, and only counted.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any, Literal

from PIL import ImageDraw
from pydantic import BaseModel, ConfigDict

from guiagent.core.env import Environment, Frame
from guiagent.core.geometry import FrameTransform, Point, Rect, Size
from guiagent.core.redact import Redactor
from guiagent.grounding.local import LocalGrounder
from guiagent.narrate import a11y, axtree, cdp, layout
from guiagent.narrate.render import to_text
from guiagent.narrate.schema import Item, Narration, Region

ScopeKind = Literal["all", "region", "pointer", "focused"]
# what a local narration reads: the page's accessibility tree (CDP) or, on the desktop,
# AT-SPI with pixels for applications without a tree ("tree"); the older DOM walk of a
# page ("dom"); the pixels alone, whatever the surface ("pixels")
Reader = Literal["tree", "dom", "pixels"]


class NarrateError(ValueError):
    """A narration that cannot be made as asked (bad scope, unsupported surface)."""


class Scope(BaseModel):
    """What part of the screen to narrate; ``rect`` in screen points (kind ``region``)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    kind: ScopeKind = "all"
    rect: Rect | None = None

    @classmethod
    def parse_region(cls, text: str) -> Scope:
        numbers = re.findall(r"-?\d+(?:\.\d+)?", text)
        if len(numbers) != 4:
            raise NarrateError(f"--region expects X,Y,W,H (four numbers), got {text!r}")
        x, y, w, h = (float(n) for n in numbers)
        if w <= 0 or h <= 0:
            raise NarrateError(f"--region needs a positive width and height, got {text!r}")
        return cls(kind="region", rect=Rect(x, y, w, h))


def _box(rect: Rect) -> list[float]:
    return [round(rect.left, 1), round(rect.top, 1), round(rect.width, 1), round(rect.height, 1)]


def _overlaps(a: Rect, b: Rect) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


def _scale_rect(rect: Rect, transform: FrameTransform) -> Rect:
    """Screen points -> frame pixels."""
    top_left = transform.screen_to_frame(Point(rect.left, rect.top))
    return Rect(top_left.x, top_left.y, rect.width * transform.scale, rect.height * transform.scale)


def buttons_split(items: list[Item]) -> list[tuple[bool, list[Item]]]:
    """Split items (reading order) into runs; a run of two or more buttons side by side on
    one row is a button row (True)."""
    runs: list[tuple[bool, list[Item]]] = []
    i = 0
    while i < len(items):
        j = i
        while (
            j + 1 < len(items)
            and items[i].role == "button"
            and items[j + 1].role == "button"
            and abs(items[j + 1].centre.y - items[j].centre.y) <= max(items[j].box[3], 1) / 2
        ):
            j += 1
        if j > i:
            runs.append((True, items[i : j + 1]))
        elif runs and not runs[-1][0]:
            runs[-1][1].append(items[i])
        else:
            runs.append((False, [items[i]]))
        i = j + 1
    return runs


def body_regions(items: list[Item], kind: str = "body", title: str | None = None) -> list[Region]:
    regions: list[Region] = []
    for is_grid, run in _grids_split(items):
        if is_grid:
            rows = max(i.row or 0 for i in run)
            regions.append(
                Region(
                    kind="buttons",
                    title=f"{rows} rows",
                    items=run,
                    box=_union([i.rect for i in run]),
                )
            )
        else:
            regions.extend(_rows_regions(run, kind, title))
    return regions


def _grids_split(items: list[Item]) -> list[tuple[bool, list[Item]]]:
    """Runs of numbered grid buttons (True) and of everything else."""
    runs: list[tuple[bool, list[Item]]] = []
    for item in items:
        in_grid = item.role == "button" and item.row is not None and item.source != "ax-tree"
        if runs and runs[-1][0] == in_grid:
            runs[-1][1].append(item)
        else:
            runs.append((in_grid, [item]))
    return runs


def _rows_regions(items: list[Item], kind: str, title: str | None) -> list[Region]:
    regions: list[Region] = []
    for is_row, run in buttons_split(items):
        if is_row:
            regions.append(Region(kind="buttons", items=run, box=_union([i.rect for i in run])))
        else:
            regions.append(Region(kind=kind, title=title, items=run))  # type: ignore[arg-type]
    return regions


def _union(rects: list[Rect]) -> list[float] | None:
    if not rects:
        return None
    left = min(r.left for r in rects)
    top = min(r.top for r in rects)
    return _box(
        Rect(left, top, max(r.right for r in rects) - left, max(r.bottom for r in rects) - top)
    )


def finish(
    regions: list[Region],
    surface: str,
    redacted: int,
    description: str | None = None,
    mode: Literal["local", "model"] = "local",
    notes: list[str] | None = None,
) -> Narration:
    regions = [r for r in regions if r.items or r.kind in ("title_bar", "dialog")]
    focused = next((i for r in regions for i in r.items if "focused" in i.state), None)
    sources = sorted({i.source for r in regions for i in r.items})
    narration = Narration(
        description=description,
        regions=regions,
        surface=surface,
        mode=mode,
        focused=focused,
        redacted=redacted,
        sources=sources,
        notes=notes or [],
    )
    return narration.model_copy(update={"text": to_text(narration)})


class Narrator:
    """Narrates one environment (a :class:`~guiagent.envs.browser.BrowserEnv` or a
    :class:`~guiagent.envs.desktop.DesktopEnv`).

    ``grounder`` supplies OCR on the desktop (share one: a full OCR costs about a second);
    ``redactor`` defines what is private (default: password fields and masked text);
    ``model`` switches to model mode (a :class:`~guiagent.narrate.model.ModelDescriber`);
    ``reader`` chooses what local mode reads in a browser (see :data:`Reader`; the DOM walk
    stays the default of this class for the callers written against it, the command line
    reads the tree); ``pixel_model`` (a ModelDescriber) names, in tree mode, what the tree
    leaves unnamed and OCR cannot read (an icon-only image); ``pixel_controls`` reads every
    control box drawn on screen (empty fields, keypads numbered row by row), off by
    default for the callers written against the older pixel narration.
    """

    def __init__(
        self,
        env: Environment,
        grounder: LocalGrounder | None = None,
        redactor: Redactor | None = None,
        model: Any = None,
        use_atspi: bool = True,
        reader: Reader = "dom",
        pixel_model: Any = None,
        atspi_env: dict[str, str] | None = None,
        pixel_controls: bool = False,
    ) -> None:
        self.env = env
        self.grounder = grounder
        self.redactor = redactor or Redactor()
        self.model = model
        self.use_atspi = use_atspi
        self.reader = reader
        self.pixel_model = pixel_model
        self.atspi_env = atspi_env  # DISPLAY and the session bus of the desktop's AT-SPI
        # pixels: read every drawn control box (see guiagent.narrate.pixels.pixel_items)
        self.pixel_controls = pixel_controls
        self._atspi: Any = None  # the AT-SPI reader, started on first use

    async def aclose(self) -> None:
        """Stop the AT-SPI helper process, if one was started."""
        if self._atspi is not None:
            await asyncio.to_thread(self._atspi.close)
            self._atspi = None

    @property
    def surface(self) -> str:
        return str(getattr(self.env, "surface", "image"))

    async def narrate(self, scope: Scope | None = None) -> Narration:
        scope = scope or Scope()
        if self.model is not None:
            frame, hidden = await self.private_frame()
            return await self.model.describe(frame, scope, self.redactor, hidden)
        if self.reader == "pixels" and self.surface in ("browser", "desktop"):
            return await self._narrate_desktop(scope, atspi=False)
        if self.surface == "browser" and self.reader == "tree":
            return await self._narrate_tree(scope)
        if self.surface == "browser":
            return await self._narrate_browser(scope)
        if self.surface == "desktop":
            return await self._narrate_desktop(scope, atspi=self.use_atspi)
        raise NarrateError(f"cannot narrate a {self.surface!r} surface locally")

    # --- privacy ------------------------------------------------------------------------

    async def private_frame(self) -> tuple[Frame, list[Rect]]:
        """The current frame with every private thing blacked out, and the blacked-out boxes
        (frame pixels)."""
        frame = await self.env.observe()
        if self.surface == "browser":
            page = self.env.page  # type: ignore[attr-defined]
            snapshot = await a11y.dom_snapshot(page)
            dom = [{"type": "password", "box": i.box} for i in snapshot.items if i.password]
            frame, notes = await self.redactor.redact(frame, dom=dom, text_boxes=[])
            private = [
                _scale_rect(Rect(*i.box), frame.transform) for i in snapshot.items if i.private
            ]
            return blackout(frame, private), [Rect(*n.box) for n in notes] + private
        from guiagent.narrate.desktop import list_windows

        windows = await list_windows(self.env)
        frame, notes = await self.redactor.redact(
            frame, windows=[_window_dict(w) for w in windows], text_boxes=[]
        )
        return frame, [Rect(*n.box) for n in notes]

    def _private_screen_rects(self) -> list[Rect]:
        return list(self.redactor.regions)

    # --- browser --------------------------------------------------------------------------

    async def _narrate_browser(self, scope: Scope) -> Narration:
        env: Any = self.env
        if scope.kind == "pointer":
            raise NarrateError(
                "--under-pointer needs the desktop: a headless page has no pointer to follow"
            )
        snapshot = await a11y.dom_snapshot(env.page)
        state = await env.page_state()
        aria = a11y.parse_aria_snapshot(await env.accessibility_snapshot())
        scale = float(state["dpr"])
        private = self._private_screen_rects()
        kept: list[tuple[a11y.DomItem, Rect]] = []
        redacted = 0
        for dom_item in snapshot.items:
            rect = Rect(*dom_item.box)
            if dom_item.password or dom_item.private or any(_overlaps(rect, p) for p in private):
                redacted += 1
                continue
            if scope.kind == "region" and scope.rect and not scope.rect.contains(rect.centre):
                continue
            kept.append((dom_item, rect))
        if scope.kind == "focused":
            kept = _focused_subset(kept)
        text_sizes = [d.font_size for d, _ in kept if d.role == "text"]
        levels = layout.heading_levels(text_sizes) if text_sizes else []
        level_of = iter(levels)
        order = layout.reading_order([r for _, r in kept])
        items: dict[int, Item] = {}
        containers: dict[int, dict[str, Any]] = {}
        for index, (dom_item, rect) in enumerate(kept):
            role, level = dom_item.role, dom_item.level
            if role == "text":
                guessed = next(level_of)
                if guessed is not None and len(dom_item.label.split()) <= 12:
                    role, level = "heading", guessed
            states = list(dom_item.states)
            if role not in ("text", "heading"):
                for extra in a11y.aria_states(aria, role, dom_item.label) or []:
                    if extra not in states and not (extra == "not checked" and "checked" in states):
                        states.append(extra)
            label = self.redactor.redact_text(dom_item.label)
            value = self.redactor.redact_text(dom_item.value) if dom_item.value else None
            if not label and not value and role in ("text", "heading"):
                continue
            items[index] = Item(
                role=role,
                label=label,
                value=value,
                state=states,
                box=_box(
                    Rect(
                        rect.left * scale, rect.top * scale, rect.width * scale, rect.height * scale
                    )
                ),
                level=level,
                source="dom",
            )
            if dom_item.container is not None:
                containers[index] = dom_item.container
        ordered = [i for i in order if i in items]
        return finish(
            _browser_regions(ordered, items, containers, snapshot.title), "browser", redacted
        )

    async def _narrate_tree(self, scope: Scope) -> Narration:
        env: Any = self.env
        if scope.kind == "pointer":
            raise NarrateError(
                "--under-pointer needs the desktop: a headless page has no pointer to follow"
            )
        tree = await cdp.read_page_tree(env.page)
        scale = float((await env.page_state())["dpr"])
        told = axtree.narrate_tree(tree, scale)
        private = [
            Rect(r.left * scale, r.top * scale, r.width * scale, r.height * scale)
            for r in self._private_screen_rects()
        ]
        redacted = told.redacted
        regions: list[Region] = []
        for region in told.regions:
            items: list[Item] = []
            for item in region.items:
                if any(_overlaps(item.rect, p) for p in private):
                    redacted += 1
                    continue
                if scope.kind == "region" and scope.rect:
                    centre = Point(item.centre.x / scale, item.centre.y / scale)
                    if not scope.rect.contains(centre):
                        continue
                items.append(self._redact_item(item))
            regions.append(region.model_copy(update={"items": items}))
        if scope.kind == "focused":
            regions = _focused_regions(regions)
        regions = await self._fill_gaps(regions)
        notes = [f"a frame from another site was not read: {url}" for url in told.skipped_frames]
        return finish(regions, "browser", redacted, notes=notes)

    def _redact_item(self, item: Item) -> Item:
        label = self.redactor.redact_text(item.label)
        value = self.redactor.redact_text(item.value) if item.value else None
        if label == item.label and value == item.value:
            return item
        return item.model_copy(update={"label": label, "value": value})

    async def _fill_gaps(self, regions: list[Region]) -> list[Region]:
        """Name, from the pixels, what the tree left unnamed (canvas text, images
        without alt): OCR first, then the model when there is one."""
        if not any(axtree.is_gap(i) for r in regions for i in r.items):
            return regions
        if self.grounder is None:
            self.grounder = LocalGrounder()
        frame, _ = await self.private_frame()
        out: list[Region] = []
        for region in regions:
            items = [
                await self._read_gap(frame, item) if axtree.is_gap(item) else item
                for item in region.items
            ]
            out.append(region.model_copy(update={"items": items}))
        return out

    async def _read_gap(self, frame: Frame, item: Item) -> Item:
        rect = item.rect
        inside = Rect(0, 0, frame.image.width, frame.image.height)
        if rect.width < 4 or rect.height < 4 or not _overlaps(rect, inside):
            return item
        crop = _crop(frame, rect)
        assert self.grounder is not None
        boxes = await self.grounder.aread_text(crop)
        order = layout.reading_order([b.box for b in boxes])
        text = " ".join(boxes[i].text for i in order).strip()
        if text:
            return item.model_copy(
                update={"label": self.redactor.redact_text(text), "source": "ocr"}
            )
        if self.pixel_model is not None:
            label = await self.pixel_model.name_crop(crop)
            if label:
                return item.model_copy(update={"label": label, "source": "model"})
        return item

    # --- desktop --------------------------------------------------------------------------

    async def _narrate_desktop(self, scope: Scope, atspi: bool) -> Narration:
        from guiagent.narrate.desktop import narrate_desktop

        return await narrate_desktop(self, scope, atspi)


# --- helpers --------------------------------------------------------------------------------


def _window_dict(window: a11y.XWindow) -> dict[str, Any]:
    x, y, w, h = window.box
    return {"title": window.title, "x": x, "y": y, "width": w, "height": h}


def _crop(frame: Frame, rect: Rect) -> Frame:
    x1 = max(int(rect.left), 0)
    y1 = max(int(rect.top), 0)
    x2 = min(int(rect.right + 0.999), frame.image.width)
    y2 = min(int(rect.bottom + 0.999), frame.image.height)
    if x2 <= x1 or y2 <= y1:
        raise NarrateError(f"the region {_box(rect)} is outside the screen")
    image = frame.image.crop((x1, y1, x2, y2))
    transform = FrameTransform(
        frame_size=Size(image.width, image.height),
        origin=frame.transform.frame_to_screen(Point(x1, y1)),
        scale=frame.transform.scale,
    )
    return replace(frame, image=image, transform=transform, _digest=None)


def _focused_subset(kept: list[tuple[a11y.DomItem, Rect]]) -> list[tuple[a11y.DomItem, Rect]]:
    focused = next((pair for pair in kept if "focused" in pair[0].states), None)
    if focused is None:
        raise NarrateError("nothing has the keyboard focus on this page")
    container = focused[0].container
    if container is None:
        return [focused]
    return [
        pair
        for pair in kept
        if pair[0].container and pair[0].container.get("id") == container.get("id")
    ]


def _focused_regions(regions: list[Region]) -> list[Region]:
    """The title bar and the region that holds the keyboard focus."""
    for region in regions:
        if any("focused" in i.state for i in region.items):
            return [r for r in regions[:1] if r.kind == "title_bar"] + [region]
    raise NarrateError("nothing has the keyboard focus on this page")


def _browser_regions(
    order: list[int], items: dict[int, Item], containers: dict[int, dict[str, Any]], title: str
) -> list[Region]:
    title_items: list[Item] = []
    grouped: dict[int, tuple[dict[str, Any], list[Item]]] = {}
    body: list[Item] = []
    for index in order:
        container = containers.get(index)
        if container is None:
            body.append(items[index])
        elif container["kind"] == "title_bar":
            title_items.append(items[index])
        else:
            grouped.setdefault(int(container["id"]), (container, []))[1].append(items[index])
    regions = [Region(kind="title_bar", title=title or None, items=title_items)]
    for kind in ("dialog", "menu"):
        for container, members in grouped.values():
            if container["kind"] == kind:
                regions.append(
                    Region(kind=kind, title=container.get("title"), items=members, box=None)
                )
    regions.extend(body_regions(body))
    return regions


def blackout(frame: Frame, rects: list[Rect]) -> Frame:
    """A copy of the frame with ``rects`` (frame pixels) painted black."""
    if not rects:
        return frame
    image = frame.image.copy()
    draw = ImageDraw.Draw(image)
    for r in rects:
        draw.rectangle((r.left, r.top, r.right, r.bottom), fill=(0, 0, 0))
    return replace(frame, image=image, _digest=None)
