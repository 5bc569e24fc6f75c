"""Redaction: black out what must never reach the model or the disk, and scrub text.

The same redacted frame is sent to the model and written by the recorder. What is
blacked out (solid black, in a copy of the frame):

- password fields: in a browser, DOM elements with ``type=password`` (boxes in CSS px,
  i.e. screen points of the page, mapped through the frame transform); on the desktop,
  masked text found by OCR (runs of ``•``, ``*``, ``●``);
- regions the user listed (screen points);
- windows the user listed by title (window dicts ``{title, x, y, width, height}`` in
  screen points);
- on-screen text matching a secret pattern or containing a known secret value (OCR
  boxes, and DOM text nodes when the browser passes them).

Notes (:class:`RedactionNote`) say what kind of thing was hidden and where, never what it
was. :meth:`Redactor.redact_text` scrubs strings (typed text, reasoning echoes, step
records) the same way.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import math
import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from loguru import logger
from PIL import Image, ImageDraw
from pydantic import BaseModel

from guiagent.core.env import Frame
from guiagent.core.geometry import Point, Rect

REDACTED = "[REDACTED]"

# Well-known credential shapes. Deliberately specific: a loose pattern would black out
# ordinary words and blind the agent.
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key id
    r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}",  # OpenAI / Anthropic style API keys
    r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{40,}\b",
    r"\bglpat-[A-Za-z0-9_\-]{20,}\b",  # GitLab
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}\b",  # Slack
    r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API key
    r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----",
    r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}",  # JWT
)

# Masked password text as OCR reads it: bullets, stars, black circles, middle dots.
_MASK_RUN = re.compile(r"[•*●∙·⚫⬤◦]{3,}")


def looks_masked(text: str) -> bool:
    """Whether ``text`` (as OCR read it) holds a masked password: a run of dots or stars."""
    return _MASK_RUN.search(text) is not None


# JavaScript the browser environment can evaluate to list password fields for redact().
PASSWORD_FIELDS_JS = """
() => Array.from(document.querySelectorAll('input[type=password]')).map(e => {
  const r = e.getBoundingClientRect();
  return {tag: 'input', type: 'password', x: r.x, y: r.y, width: r.width, height: r.height};
}).filter(d => d.width > 0 && d.height > 0)
"""


class RedactionError(ValueError):
    """A redaction setting is unusable (bad regex, bad region)."""


class RedactionNote(BaseModel):
    """One blacked-out box. Holds the kind and where, never the content."""

    kind: Literal["password_field", "masked_text", "region", "window", "secret_text"]
    box: list[int]  # [x, y, w, h] in frame pixels
    rule: str


@runtime_checkable
class TextBoxLike(Protocol):
    text: str
    box: Rect  # frame pixels


@runtime_checkable
class TextReader(Protocol):
    """Anything that reads text boxes from a frame (e.g. LocalGrounder); may be sync or async."""

    def read_text(self, frame: Frame) -> Any: ...


def title_matches(pattern: str, title: str | None) -> bool:
    """Match a window title: ``re:<regex>`` is a regex search, a pattern with ``*?[`` a
    glob, anything else a substring; all case-insensitive."""
    if title is None:
        return False
    if pattern.startswith("re:"):
        return re.search(pattern[3:], title, re.IGNORECASE) is not None
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(title.lower(), pattern.lower())
    return pattern.lower() in title.lower()


def _compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise RedactionError(
                f"secret_patterns[{i}] is not a valid regular expression: {exc}"
            ) from exc
    return compiled


class Redactor:
    """Blacks out sensitive areas of frames and scrubs secrets from text.

    ``secret_patterns=None`` uses :data:`DEFAULT_SECRET_PATTERNS`; pass ``[]`` for none.
    ``ocr`` is any object with ``read_text(frame)``; without it, desktop masked text and
    on-screen secrets can only be found through text boxes the caller passes in.
    """

    def __init__(
        self,
        regions: Sequence[Rect] = (),
        window_titles: Sequence[str] = (),
        secret_patterns: Sequence[str] | None = None,
        secrets: Sequence[str] = (),
        mask_password_fields: bool = True,
        ocr: TextReader | None = None,
        pad: int = 2,
        detect_bullets: bool = True,
    ) -> None:
        self.regions = list(regions)
        self.window_titles = list(window_titles)
        self.patterns = _compile_patterns(
            DEFAULT_SECRET_PATTERNS if secret_patterns is None else secret_patterns
        )
        # longest first, so a secret containing another is replaced whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self.mask_password_fields = mask_password_fields
        self.detect_bullets = detect_bullets
        self.ocr = ocr
        self.pad = pad

    def add_secret(self, value: str) -> None:
        """Register a literal secret learned at run time (e.g. a password the user gave)."""
        if value and value not in self.secrets:
            self.secrets = sorted([*self.secrets, value], key=len, reverse=True)

    # --- text ---------------------------------------------------------------------------

    def secret_rule(self, text: str) -> str | None:
        """The name of the first rule that finds a secret in ``text`` (never the secret)."""
        for i, secret in enumerate(self.secrets):
            if secret in text:
                return f"secrets[{i}]"
        for i, pattern in enumerate(self.patterns):
            if pattern.search(text):
                return f"secret_patterns[{i}]"
        return None

    def redact_text(self, s: str) -> str:
        """Replace known secrets and pattern matches with ``[REDACTED]``."""
        for secret in self.secrets:
            s = s.replace(secret, REDACTED)
        for pattern in self.patterns:
            s = pattern.sub(REDACTED, s)
        return s

    def redact_data(self, value: Any) -> Any:
        """:meth:`redact_text` applied to every string inside dicts, lists and tuples."""
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            return {k: self.redact_data(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.redact_data(v) for v in value)
        return value

    # --- frames -------------------------------------------------------------------------

    @property
    def needs_ocr(self) -> bool:
        return self.mask_password_fields or bool(self.secrets) or bool(self.patterns)

    async def read_text(self, frame: Frame) -> list[Any]:
        """Run the OCR reader off the event loop (it is slow and blocking)."""
        if self.ocr is None:
            return []
        if inspect.iscoroutinefunction(self.ocr.read_text):
            result = await self.ocr.read_text(frame)
        else:
            result = await asyncio.to_thread(self.ocr.read_text, frame)
            if inspect.isawaitable(result):
                result = await result
        return list(result)

    async def redact(
        self,
        frame: Frame,
        dom: list[dict[str, Any]] | None = None,
        windows: list[dict[str, Any]] | None = None,
        text_boxes: list[Any] | None = None,
    ) -> tuple[Frame, list[RedactionNote]]:
        """Black out every sensitive box in a copy of ``frame``.

        ``text_boxes`` (objects with ``.text`` and ``.box`` in frame pixels) skip the OCR
        call when the caller has already read the frame. When nothing is hidden the frame
        is returned as is (frames are never modified in place).
        """
        boxes: list[tuple[Rect, RedactionNote]] = []
        transform = frame.transform

        def from_screen(rect: Rect) -> Rect:
            a = transform.screen_to_frame(Point(rect.left, rect.top))
            b = transform.screen_to_frame(Point(rect.right, rect.bottom))
            return Rect.from_corners(a.x, a.y, b.x, b.y)

        def add(rect: Rect, kind: str, rule: str, pad: int) -> None:
            clipped = _clip(rect, frame.size.width, frame.size.height, pad)
            if clipped is not None:
                boxes.append(
                    (clipped, RedactionNote(kind=kind, box=list(clipped_int(clipped)), rule=rule))
                )  # type: ignore[arg-type]

        for element in dom or []:
            rect = _dom_rect(element)
            if rect is None:
                continue
            if self.mask_password_fields and _is_password(element):
                add(from_screen(rect), "password_field", "mask_password_fields", self.pad)
                continue
            text = element.get("text") or element.get("value")
            if isinstance(text, str) and text:
                rule = self.secret_rule(text)
                if rule is not None:
                    add(from_screen(rect), "secret_text", rule, self.pad)

        for i, region in enumerate(self.regions):
            add(from_screen(region), "region", f"regions[{i}]", 0)

        for window in windows or []:
            title = window.get("title")
            for i, pattern in enumerate(self.window_titles):
                if title_matches(pattern, title):
                    rect = Rect(
                        float(window["x"]),
                        float(window["y"]),
                        float(window["width"]),
                        float(window["height"]),
                    )
                    add(from_screen(rect), "window", f"window_titles[{i}]", 0)
                    break

        if self.mask_password_fields and self.detect_bullets and dom is None:
            # no DOM to ask (desktop): find masked entries by their look, since OCR
            # engines often do not read bullet characters at all
            for rect in await asyncio.to_thread(find_bullet_runs, frame.image):
                add(rect, "masked_text", "mask_password_fields", self.pad)

        if text_boxes is None and self.ocr is not None and self.needs_ocr:
            text_boxes = await self.read_text(frame)
        for tb in text_boxes or []:
            text = str(tb.text)
            if self.mask_password_fields and _MASK_RUN.search(text):
                add(tb.box, "masked_text", "mask_password_fields", self.pad)
                continue
            rule = self.secret_rule(text)
            if rule is not None:
                add(tb.box, "secret_text", rule, self.pad)

        if not boxes:
            return frame, []
        image = frame.image.copy()
        draw = ImageDraw.Draw(image)
        for rect, _ in boxes:
            x, y, w, h = clipped_int(rect)
            draw.rectangle((x, y, x + w - 1, y + h - 1), fill=(0, 0, 0))
        notes = [note for _, note in boxes]
        logger.debug(
            "redacted {} box(es): {}", len(notes), ", ".join(f"{n.kind}({n.rule})" for n in notes)
        )
        meta = {**frame.meta, "redactions": len(notes)}
        return replace(frame, image=image, meta=meta, _digest=None), notes


def find_bullet_runs(
    image: Image.Image, min_run: int = 4, min_size: int = 6, max_size: int = 32
) -> list[Rect]:
    """Rows of identical filled dots (masked password text: ``●●●●``, ``••••``), in frame pixels.

    Works on the pixels alone: connected components of dark-on-light and light-on-dark
    ink that are round, filled, equal in size, on one line and evenly spaced.
    """
    import cv2

    gray = np.asarray(image.convert("L"))
    runs: list[Rect] = []
    for mask in (gray < 110, gray > 170):
        _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        x, y, w, h, area = (stats[1:, i].astype(np.int64) for i in range(5))
        keep = (w >= min_size) & (w <= max_size) & (np.abs(w - h) <= 1)
        fill = area / np.maximum(w * h, 1)
        keep &= (fill >= 0.7) & (fill <= 0.92)
        dots = [
            (int(a), int(b), int(c), int(d))
            for a, b, c, d in zip(x[keep], y[keep], w[keep], h[keep], strict=True)
            if _clear_above_below(mask, int(a), int(b), int(c), int(d))
        ]
        if len(dots) >= min_run:
            runs.extend(_dot_runs(dots, min_run))
    return runs


def _dot_runs(dots: list[tuple[int, int, int, int]], min_run: int) -> list[Rect]:
    """Group dots of one size on one line into evenly spaced runs of at least ``min_run``."""
    dots.sort(key=lambda d: (d[1], d[0]))
    rows: dict[tuple[int, int, int], list[tuple[int, int, int, int]]] = {}
    for dot in dots:
        _, y, w, h = dot
        key = next(
            (k for k in rows if abs(k[0] - y) <= 1 and abs(k[1] - w) <= 1 and abs(k[2] - h) <= 1),
            None,
        )
        rows.setdefault(key or (y, w, h), []).append(dot)
    runs: list[Rect] = []
    for row in rows.values():
        row.sort()
        run = [row[0]]
        for dot in [*row[1:], None]:
            prev = run[-1]
            if dot is not None and prev[2] * 1.1 <= dot[0] - prev[0] <= prev[2] * 3:
                first_gap = run[1][0] - run[0][0] if len(run) > 1 else None
                if first_gap is None or abs((dot[0] - prev[0]) - first_gap) <= 2:
                    run.append(dot)
                    continue
            if len(run) >= min_run:
                left, top = run[0][0], min(d[1] for d in run)
                right, bottom = run[-1][0] + run[-1][2], max(d[1] + d[3] for d in run)
                runs.append(Rect(left, top, right - left, bottom - top))
            if dot is not None:
                run = [dot]
    return runs


def _clear_above_below(mask: np.ndarray, x: int, y: int, w: int, h: int) -> bool:
    """No ink of the same polarity just above or below the dot: a bullet sits on empty
    background, while the hole inside an ``o`` is closed by background beyond its ring."""
    reach = h // 2 + 1
    above = mask[max(y - reach, 0) : y, x : x + w]
    below = mask[y + h : y + h + reach, x : x + w]
    return not above.any() and not below.any()


def clipped_int(rect: Rect) -> tuple[int, int, int, int]:
    """Integer [x, y, w, h] covering ``rect`` entirely (floor the start, ceil the end)."""
    x1, y1 = math.floor(rect.left), math.floor(rect.top)
    x2, y2 = math.ceil(rect.right), math.ceil(rect.bottom)
    return (x1, y1, x2 - x1, y2 - y1)


def _clip(rect: Rect, width: int, height: int, pad: int) -> Rect | None:
    x1 = max(rect.left - pad, 0.0)
    y1 = max(rect.top - pad, 0.0)
    x2 = min(rect.right + pad, float(width))
    y2 = min(rect.bottom + pad, float(height))
    if x2 <= x1 or y2 <= y1:
        return None
    return Rect(x1, y1, x2 - x1, y2 - y1)


def _is_password(element: dict[str, Any]) -> bool:
    kind = str(element.get("type") or element.get("input_type") or "").lower()
    autocomplete = str(element.get("autocomplete") or "").lower()
    return kind == "password" or "password" in autocomplete or bool(element.get("sensitive"))


def _dom_rect(element: dict[str, Any]) -> Rect | None:
    """An element's box in CSS px from ``x/y/width/height``, ``box: [x,y,w,h]`` or ``rect: {...}``."""
    try:
        box = element.get("box")
        if isinstance(box, dict):
            return Rect(float(box["x"]), float(box["y"]), float(box["width"]), float(box["height"]))
        if box is not None:
            x, y, w, h = (float(v) for v in box)
            return Rect(x, y, w, h)
        source = element.get("rect") or element
        return Rect(
            float(source["x"]), float(source["y"]), float(source["width"]), float(source["height"])
        )
    except (KeyError, TypeError, ValueError):
        logger.warning(
            "DOM element without a usable box skipped during redaction (keys: {})", sorted(element)
        )
        return None
