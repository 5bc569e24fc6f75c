"""Whether text typed ``into`` a desktop field landed in that field (the browser's check,
from the DOM's focus and value, is in :mod:`guiagent.scenario.verify`).

1. AT-SPI first: when the application at the clicked point is on the accessibility bus
   (:class:`~guiagent.core.env.AccessibleFocus` answers), the focused object must be a
   text field, the one at the click when the bus names one, and hold the typed text
   (exactly, whitespace aside); a password text says only its length, which must have
   grown by the typed length.
2. Pixels otherwise, inside the field's box (the one the grounder resolved, else the field
   outline around the clicked point, else what changed on the clicked row):

   - masked glyphs (``●``, ``•``) in the box after typing make it a password field: the
     typed text becomes a secret (redacted everywhere) and the count of dots must have
     grown by the typed length; when it grew by less while the dots fill the field (it
     scrolled), or the glyphs cannot be counted (``*``: the field reads as a mask), the
     box must have changed: pixels cannot say more of a masked field;
   - else OCR must read the typed text there (:func:`guiagent.grounding.typed_text.typed_shows`),
     and the field must not have read it, unchanged, before typing.

Failures say what was read where (the focused object's name and role, or the OCR read of
the field and what changed elsewhere). A secret is never quoted, nor is what was read
where one was typed; every message also goes through the run's redaction.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from loguru import logger

from guiagent.core.env import AccessibleFocus, Frame
from guiagent.core.geometry import Point
from guiagent.core.redact import Redactor
from guiagent.grounding.fields import field_box_at
from guiagent.grounding.ocr import OcrEngine, changed_regions, reading_order, shared_engine
from guiagent.grounding.typed_text import (
    count_bullets,
    plain,
    read_field,
    times_shown,
    typed_shows,
)
from guiagent.scenario.ground import Grounded

TEXT_ROLES = {"text", "entry", "password text", "spin button", "editbar", "paragraph"}
TEXT_ROLES |= {"terminal", "document text"}  # they take typing without an editable state

SETTLE_S = 1.5  # how long an application may take to show (or report) what was typed
MASKS = set("*•●·∙⚫")
# how far from the click a change on its row may start or end and still be text typed into
# the clicked field (one that has no outline); at least a row's height. Farther, it is the
# text of another field on that row (one that kept the focus: the click missed the field)
AT_CLICK_PX = 24
Box = tuple[float, float, float, float]


def describe(node: dict[str, Any]) -> str:
    name = str(node.get("name") or "").strip()
    role = str(node.get("role") or "object")
    return f"'{name}' ({role})" if name else f"a {role} with no name"


def takes_text(node: dict[str, Any] | None) -> bool:
    if node is None or node.get("role") not in TEXT_ROLES:
        return False
    editable = "editable" in node.get("states", [])
    return editable or node.get("role") in ("password text", "terminal", "document text")


def _contains(box: list[float], point: tuple[float, float]) -> bool:
    x, y, width, height = box
    return x <= point[0] < x + width and y <= point[1] < y + height


def _same_node(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return a is not None and b is not None and (a["role"], a["box"]) == (b["role"], b["box"])


async def accessible_focus_problem(env: Any, point: tuple[float, float], what: str) -> str | None:
    """After clicking ``what`` to type into it: None when the bus cannot tell or a text
    field has the focus; else where the focus is (waits up to ``SETTLE_S`` for it)."""
    if not isinstance(env, AccessibleFocus):
        return None
    deadline = time.monotonic() + SETTLE_S
    while True:
        answer = await env.accessible_focus(*point)
        if answer is None:
            return None
        focused = answer.get("focused")
        if takes_text(focused):
            return None
        if time.monotonic() > deadline:
            where = describe(focused) if focused else "nothing"
            return f"clicking {what} did not focus a text field: focus is on {where} (AT-SPI)"
        await asyncio.sleep(0.1)


class DesktopTypingCheck:
    """The check of one ``type into`` on a desktop: build it after the click into the field
    and before typing (:meth:`prepare`), call it after typing."""

    def __init__(
        self,
        env: Any,
        text: str,
        what: str,
        before: Frame,
        hit: Grounded,
        redactor: Redactor,
        engine: OcrEngine | None = None,
    ) -> None:
        self.env, self.text, self.what, self.before, self.hit = env, text, what, before, hit
        self.redactor = redactor
        self.engine = engine
        self.baseline: dict[str, Any] | None = None  # the bus's answer before typing
        self.password_field = False  # known before typing (AT-SPI): a secret from the start

    async def prepare(self) -> DesktopTypingCheck:
        if isinstance(self.env, AccessibleFocus):
            self.baseline = await self.env.accessible_focus(*self.hit.screen)
            focused = (self.baseline or {}).get("focused") or {}
            self.password_field = focused.get("role") == "password text"
        return self

    @property
    def secret(self) -> bool:
        return self.password_field or self.text in self.redactor.secrets

    def shown(self) -> str:
        return "the secret" if self.secret else f"'{self.text}'"

    async def __call__(self) -> str | None:
        if not self.text.strip():
            return None
        if self.baseline is not None and isinstance(self.env, AccessibleFocus):
            return await self._by_atspi(self.env)
        return await self._by_pixels()

    # --- AT-SPI ---------------------------------------------------------------------------

    async def _by_atspi(self, env: AccessibleFocus) -> str | None:
        deadline = time.monotonic() + SETTLE_S
        while True:
            answer = await env.accessible_focus(*self.hit.screen)
            if answer is None:  # the bus stopped answering: read the pixels instead
                return await self._by_pixels()
            problem = self._atspi_problem(answer)
            if problem is None:
                logger.debug(
                    "the text typed into {} is in {} (AT-SPI)",
                    self.what,
                    describe(answer["focused"]),
                )
                return None
            if time.monotonic() > deadline:
                return problem
            await asyncio.sleep(0.1)

    def _atspi_problem(self, answer: dict[str, Any]) -> str | None:
        focused, at_point = answer.get("focused"), answer.get("at_point")
        into = f"typed {self.shown()} into {self.what} but"
        if focused is None:
            return (
                f"{into} nothing in {answer.get('app') or 'the application'} has the focus (AT-SPI)"
            )
        if not takes_text(focused):
            return f"{into} the focus is on {describe(focused)}, which takes no text (AT-SPI)"
        held = "" if self.secret else f", which holds '{focused.get('text') or ''}'"
        if at_point is not None and not _same_node(focused, at_point):
            return (
                f"{into} the focus is on {describe(focused)}{held}, not on the field at the "
                f"click, {describe(at_point)} (AT-SPI)"
            )
        if not _contains(focused["box"], self.hit.screen):
            x, y = self.hit.screen
            return (
                f"{into} the focus is on {describe(focused)}{held}, away from the click at "
                f"({x:.0f}, {y:.0f}), where no text field is (AT-SPI)"
            )
        earlier = (self.baseline or {}).get("focused")
        if not _same_node(focused, earlier):
            earlier = None
        if focused.get("role") == "password text":
            return self._count_problem(focused, earlier)
        value = " ".join(str(focused.get("text") or "").split())
        wanted = " ".join(self.text.split())
        before = " ".join(str((earlier or {}).get("text") or "").split())
        if wanted in value and value.count(wanted) > before.count(wanted):
            return None
        if self.secret:
            return f"{into} {describe(focused)} does not hold it (AT-SPI)"
        return f"{into} {describe(focused)} holds '{value}' (AT-SPI)"

    def _count_problem(self, focused: dict[str, Any], earlier: dict[str, Any] | None) -> str | None:
        count = int(focused.get("count") or 0)
        start = int((earlier or {}).get("count") or 0)
        if count - start == len(self.text):
            return None
        return (
            f"typed {len(self.text)} characters into the password field {self.what} "
            f"({describe(focused)}) but it went from {start} to {count} characters (AT-SPI)"
        )

    # --- pixels ---------------------------------------------------------------------------

    async def _by_pixels(self) -> str | None:
        """The pixels' verdict, read again while the application may still be drawing."""
        deadline = time.monotonic() + SETTLE_S
        seen = None
        while True:
            await asyncio.sleep(0.1)  # the application draws what it was sent
            after = await self.env.observe()
            if after.digest != seen:
                seen = after.digest
                problem, misread = await self._pixels_problem(after)
                if problem is None:
                    return None
            if time.monotonic() > deadline:
                if misread is not None:  # where else the screen changed: where the text went
                    return f"{problem}{await self._elsewhere(after, misread)}"
                return problem

    async def _pixels_problem(self, after: Frame) -> tuple[str | None, Box | None]:
        """The problem with ``after`` (None: the text is there), and the field's box when
        OCR read something else in it (the text may show elsewhere)."""
        point = after.transform.screen_to_frame(Point(*self.hit.screen))
        box = await asyncio.to_thread(self._field_box, after, point)
        if box is None:  # no field outline at the click, and nothing changed right there
            at = (point.x, point.y, point.x + 1, point.y + 1)
            return (
                f"typed {self.shown()} into {self.what} but no field outline is at the click "
                f"at ({self.hit.screen[0]:.0f}, {self.hit.screen[1]:.0f}) and nothing changed "
                "there: the text went elsewhere"
            ), (None if self.secret else at)
        dots = await asyncio.to_thread(count_bullets, after.image, box)
        if dots:
            return await self._masked_problem(after, box, dots), None
        reading = await asyncio.to_thread(read_field, self._engine(), after.array(), box)
        if not self.secret:
            logger.debug("the field {} reads {!r} after typing", self.what, reading.text)
        shows = typed_shows(self.text, reading.text, reading.filled)
        if shows is not None:
            problem = await self._unchanged_problem(box, reading.text, shows)
            return problem, (box if problem is not None and not self.secret else None)
        if plain(reading.text) and set(plain(reading.text)) <= MASKS:
            return await self._masked_problem(after, box, 0), None
        if self.secret:
            return (
                f"typed the secret into {self.what} but the field does not show it (OCR; "
                "what it reads is not quoted: it may be secret)"
            ), None
        read = f"reads '{reading.text}' (OCR)" if reading.text else "is empty (OCR read nothing)"
        return f"typed '{self.text}' into {self.what} but the field {read}", box

    def _engine(self) -> OcrEngine:
        return self.engine if self.engine is not None else shared_engine()

    def _field_box(self, after: Frame, point: Point) -> Box | None:
        """The field's box: the grounder's, else the outline around the click, else what
        changed on the clicked row (a field drawn without an outline)."""
        if self.hit.field and self.hit.box is not None:
            return self.hit.box
        gray = np.asarray(after.image.convert("L"))
        found = field_box_at(gray, point.x, point.y)
        if found is not None:
            return found.as_xyxy()
        return _changed_on_row(self.before, after, point)

    async def _masked_problem(self, after: Frame, box: Box, dots: int) -> str | None:
        """A password field (masked glyphs): the text is a secret; the dots must have grown
        by its length, or (scrolled, or uncountable) the box must have changed."""
        self.redactor.add_secret(self.text)
        self.password_field = True
        if dots:
            start = await asyncio.to_thread(count_bullets, self.before.image, box)
            if dots - start == len(self.text):
                return None
            reading = await asyncio.to_thread(read_field, self._engine(), after.array(), box)
            if not (dots > start and reading.filled):
                return (
                    f"typed {len(self.text)} characters into the password field {self.what} "
                    f"but its masked dots went from {start} to {dots}"
                )
        if field_changed(self.before, after, box):
            return None
        return f"typed the secret into the password field {self.what} but nothing changed in it"

    async def _unchanged_problem(self, box: Box, after_text: str, shows: str) -> str | None:
        """The field reads the text: when it read it before typing too, it must show it once
        more now (a scrolled field: its text must have changed), not merely have changed."""
        before = await asyncio.to_thread(read_field, self._engine(), self.before.array(), box)
        if typed_shows(self.text, before.text) is None:
            return None
        if plain(before.text) == plain(after_text):
            return (
                f"typed {self.shown()} into {self.what} but the field showed it already before "
                "typing and did not change (OCR): the text went elsewhere"
            )
        if shows == "tail" or times_shown(self.text, after_text) > times_shown(
            self.text, before.text
        ):
            return None
        read = "" if self.secret else f" (it reads '{after_text}')"
        return (
            f"typed {self.shown()} into {self.what} but the field showed it already before "
            f"typing and does not show it once more{read} (OCR): the text went elsewhere"
        )

    async def _elsewhere(self, after: Frame, box: Box) -> str:
        """What changed outside the field, read by OCR: where the text may have gone."""
        try:
            regions = changed_regions(self.before.array(), after.array())
        except ValueError:
            return ""
        outside = [r for r in regions if not _overlaps(r, box)]
        outside.sort(key=lambda r: (r[2] - r[0]) * (r[3] - r[1]))
        rgb = after.array()
        for region in outside[:3]:
            x1, y1, x2, y2 = (int(v) for v in _grown(region, 24, 12))
            x1, y1 = max(0, x1), max(0, y1)
            lines = await asyncio.to_thread(self._engine().recognise, rgb[y1:y2, x1:x2], (x1, y1))
            text = " ".join(line.text for line in reading_order(lines))
            if plain(text):
                cx, cy = (region[0] + region[2]) / 2, (region[1] + region[3]) / 2
                at = after.transform.frame_to_screen(Point(cx, cy))
                return (
                    f"; the screen changed elsewhere, reading '{text}' at ({at.x:.0f}, {at.y:.0f})"
                )
        return ""


def field_changed(before: Frame, after: Frame, box: Box) -> bool:
    """Whether the pixels inside ``box`` (frame pixels) differ between two frames."""
    x1, y1, x2, y2 = (round(v) for v in box)
    if before.image.size != after.image.size or x2 <= x1 or y2 <= y1:
        return True  # cannot compare: do not claim nothing happened
    a = np.asarray(before.image.convert("L"))[y1:y2, x1:x2].astype(np.int16)
    b = np.asarray(after.image.convert("L"))[y1:y2, x1:x2].astype(np.int16)
    return bool((np.abs(a - b) > 40).sum() >= 4)


def _overlaps(a: tuple[int, int, int, int], b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _grown(region: tuple[int, int, int, int], by: int = 4, by_y: int | None = None) -> Box:
    down = by if by_y is None else by_y
    return (region[0] - by, region[1] - down, region[2] + by, region[3] + down)


def _changed_on_row(before: Frame, after: Frame, point: Point) -> Box | None:
    """The changed area at the click, on its row, nearest it (a field with no outline: the
    text typed into the field clicked covers the click or reaches it)."""
    if before.image.size != after.image.size:
        return None
    regions = changed_regions(before.array(), after.array(), tile=8)
    row = [r for r in regions if r[1] - 8 <= point.y <= r[3] + 8 and _at_click(r, point)]
    if not row:
        return None
    nearest = min(row, key=lambda r: max(r[0] - point.x, point.x - r[2], 0.0))
    return _grown(nearest)


def _at_click(region: tuple[int, int, int, int], point: Point) -> bool:
    """Whether a changed region reaches the click across (within a row's height of it)."""
    slack = max(AT_CLICK_PX, region[3] - region[1])
    return region[0] - slack <= point.x <= region[2] + slack
