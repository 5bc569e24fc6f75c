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
import inspect
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Literal, Protocol, runtime_checkable

from loguru import logger
from PIL import Image, ImageDraw
from pydantic import BaseModel

from guiagent.core.bullets import BulletScan, find_bullet_runs, round_dots
from guiagent.core.env import Frame
from guiagent.core.geometry import Point, Rect
from guiagent.core.scope import SecretScope, origin_matches, origin_of, title_matches
from guiagent.core.text_scan import ChangedTextScan, TextReader, clipped_int, read_text_with

__all__ = [
    "DEFAULT_SECRET_PATTERNS",
    "REDACTED",
    "ChangedTextScan",
    "RedactionError",
    "RedactionNote",
    "Redactor",
    "SecretScope",
    "StreamRedactor",
    "TextBoxLike",
    "TextReader",
    "clipped_int",
    "find_bullet_runs",
    "origin_matches",
    "origin_of",
    "read_text_with",
    "redact_messages",
    "redacting_sink",
    "round_dots",
    "scrub",
    "scrub_logs_with",
    "title_matches",
]

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

_DEFAULT_COMPILED = [re.compile(p) for p in DEFAULT_SECRET_PATTERNS]

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
        final_ocr: TextReader | None = None,
    ) -> None:
        self.regions = list(regions)
        self.window_titles = list(window_titles)
        self.patterns = _compile_patterns(
            DEFAULT_SECRET_PATTERNS if secret_patterns is None else secret_patterns
        )
        # longest first, so a secret containing another is replaced whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._declared = set(self.secrets)  # the secrets the final OCR pass looks for
        self.mask_password_fields = mask_password_fields
        self.detect_bullets = detect_bullets
        self.ocr = ocr
        # read the image about to be sent and saved, once the DOM boxes are black, when
        # secrets are known: text the DOM did not report (canvas, images, closed shadow
        # roots, cross-origin frames) is still found. Meant for a reader that re-reads only
        # what changed since the last frame (guiagent.grounding's ScreenReader).
        self.final_ocr = final_ocr
        self._final_scan: ChangedTextScan | None = None
        # the desktop's dot scan rescans only the rows changed since the last frame
        self._bullets = BulletScan()
        self.pad = pad

    def add_secret(self, value: str, look_for_pixels: bool = True) -> None:
        """Register a literal secret learned at run time (e.g. a password the user gave).

        ``look_for_pixels=False`` (a password the model made up and typed into a masked
        field) scrubs it from text without starting the final OCR pass for it."""
        if value and value not in self.secrets:
            self.secrets = sorted([*self.secrets, value], key=len, reverse=True)
        if value and look_for_pixels:
            self._declared.add(value)

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
        if isinstance(value, BaseModel):  # e.g. an action or a result handed to an event sink
            return value.model_copy(
                update={k: self.redact_data(getattr(value, k)) for k in type(value).model_fields}
            )
        return value

    # --- frames -------------------------------------------------------------------------

    @property
    def needs_ocr(self) -> bool:
        return self.mask_password_fields or bool(self.secrets) or bool(self.patterns)

    async def read_text(self, frame: Frame) -> list[Any]:
        """Run the OCR reader off the event loop (it is slow and blocking)."""
        if self.ocr is None:
            return []
        return await read_text_with(self.ocr, frame)

    async def redact(
        self,
        frame: Frame,
        dom: list[dict[str, Any]] | None = None,
        windows: list[dict[str, Any]] | None = None,
        text_boxes: list[Any] | Awaitable[list[Any] | None] | None = None,
    ) -> tuple[Frame, list[RedactionNote]]:
        """Black out every sensitive box in a copy of ``frame``.

        ``text_boxes`` (objects with ``.text`` and ``.box`` in frame pixels) skip the OCR
        call when the caller has already read the frame; an awaitable of them (a read still
        running) is awaited side by side with the desktop's dot scan. When nothing is hidden the frame
        is returned as is (frames are never modified in place).
        """
        found = self._layout_boxes(frame, dom, windows)
        await self._pixel_boxes(found, dom, text_boxes)
        image = _blacked(frame.image, found.rects())
        if self.final_ocr is not None and self._declared and dom is not None:
            await self._final_ocr_boxes(found, image, dom)
            image = _blacked(frame.image, found.rects())
        if not found.boxes:
            return frame, []
        notes = [note for _, note in found.boxes]
        logger.debug(
            "redacted {} box(es): {}", len(notes), ", ".join(f"{n.kind}({n.rule})" for n in notes)
        )
        meta = {**frame.meta, "redactions": len(notes)}
        return replace(frame, image=image, meta=meta, _digest=None), notes

    def reads_pixels(self, has_dom: bool) -> bool:
        """Whether :meth:`redact` reads pixels (bullet scan, OCR, final OCR pass), given whether
        a DOM snapshot comes with the frame. False, and no :meth:`layout_boxes`: the frame
        comes back as it is (a browser may send the JPEG it captured)."""
        bullets = self.mask_password_fields and self.detect_bullets and not has_dom
        ocr = self.ocr is not None and self.needs_ocr
        final = self.final_ocr is not None and bool(self._declared) and has_dom
        return bullets or ocr or final

    def layout_boxes(
        self,
        frame: Frame,
        dom: list[dict[str, Any]] | None,
        windows: list[dict[str, Any]] | None = None,
    ) -> list[RedactionNote]:
        """What :meth:`redact` blacks out without reading pixels (DOM, regions, windows)."""
        return [note for _, note in self._layout_boxes(frame, dom, windows).boxes]

    def _layout_boxes(
        self, frame: Frame, dom: list[dict[str, Any]] | None, windows: list[dict[str, Any]] | None
    ) -> _FoundBoxes:
        found = _FoundBoxes(frame)
        self._dom_boxes(found, dom)
        for i, region in enumerate(self.regions):
            found.add(found.from_screen(region), "region", f"regions[{i}]", 0)
        self._window_boxes(found, windows)
        return found

    def _dom_boxes(self, found: _FoundBoxes, dom: list[dict[str, Any]] | None) -> None:
        """Password fields, and elements whose text (visible, past 200 characters, value,
        CSS-generated) holds a secret."""
        for element in dom or []:
            rect = _dom_rect(element)
            if rect is None:
                continue
            if self.mask_password_fields and _is_password(element):
                found.add(
                    found.from_screen(rect), "password_field", "mask_password_fields", self.pad
                )
                continue
            text = " ".join(
                t
                for t in (element.get(k) for k in ("text", "more_text", "value", "pseudo"))
                if isinstance(t, str) and t
            )
            if text:
                rule = self.secret_rule(text)
                if rule is not None:
                    found.add(found.from_screen(rect), "secret_text", rule, self.pad)

    def _window_boxes(self, found: _FoundBoxes, windows: list[dict[str, Any]] | None) -> None:
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
                    found.add(found.from_screen(rect), "window", f"window_titles[{i}]", 0)
                    break

    async def _pixel_boxes(
        self,
        found: _FoundBoxes,
        dom: list[dict[str, Any]] | None,
        text_boxes: list[Any] | Awaitable[list[Any] | None] | None,
    ) -> None:
        """Masked entries found by their look (no DOM: desktop) and text read by OCR."""
        frame = found.frame
        if self.mask_password_fields and self.detect_bullets and dom is None:
            # no DOM to ask (desktop): find masked entries by their look, since OCR
            # engines often do not read bullet characters at all; side by side with an
            # OCR read the caller started (text_boxes still to come)
            dots = asyncio.to_thread(self._bullets.find, frame.image)
            if inspect.isawaitable(text_boxes):
                runs, text_boxes = await asyncio.gather(dots, text_boxes)
            else:
                runs = await dots
            for rect in runs:
                found.add(rect, "masked_text", "mask_password_fields", self.pad)
        if inspect.isawaitable(text_boxes):
            text_boxes = await text_boxes
        if text_boxes is None and self.ocr is not None and self.needs_ocr:
            text_boxes = await self.read_text(frame)
        for tb in text_boxes or []:
            text = str(tb.text)
            if self.mask_password_fields and _MASK_RUN.search(text):
                found.add(tb.box, "masked_text", "mask_password_fields", self.pad)
                continue
            rule = self.secret_rule(text)
            if rule is not None:
                found.add(tb.box, "secret_text", rule, self.pad)

    async def _final_ocr_boxes(
        self, found: _FoundBoxes, image: Image.Image, dom: list[dict[str, Any]]
    ) -> None:
        """The DOM said where its text was (checked above as text); OCR reads the rest of what
        changed in the pixels: canvases, images, frames the DOM could not see."""
        known = found.rects()
        for element in dom:
            rect = _dom_rect(element)
            # a line or a control whose text the DOM gave; not a big container, which
            # may also hold a canvas or an image
            if (
                rect is not None
                and rect.height <= 96
                and (element.get("text") or element.get("value"))
            ):
                known.append(found.from_screen(rect))
        if self._final_scan is None:
            self._final_scan = ChangedTextScan(self.final_ocr)
        for box, text in await self._final_scan.scan(image, known):
            rule = self.secret_rule(text)
            if rule is not None:
                found.add(box, "secret_text", f"final_ocr:{rule}", self.pad)


class _FoundBoxes:
    """The boxes one redaction pass hides, in frame pixels, each with its note."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.boxes: list[tuple[Rect, RedactionNote]] = []

    def from_screen(self, rect: Rect) -> Rect:
        transform = self.frame.transform
        a = transform.screen_to_frame(Point(rect.left, rect.top))
        b = transform.screen_to_frame(Point(rect.right, rect.bottom))
        return Rect.from_corners(a.x, a.y, b.x, b.y)

    def add(self, rect: Rect, kind: str, rule: str, pad: int) -> None:
        clipped = _clip(rect, self.frame.size.width, self.frame.size.height, pad)
        if clipped is not None:
            note = RedactionNote(kind=kind, box=list(clipped_int(clipped)), rule=rule)  # type: ignore[arg-type]
            self.boxes.append((clipped, note))

    def rects(self) -> list[Rect]:
        return [rect for rect, _ in self.boxes]


def _blacked(image: Image.Image, rects: list[Rect]) -> Image.Image:
    """A copy of ``image`` with every rect filled black (the image itself when none)."""
    if not rects:
        return image
    out = image.copy()
    draw = ImageDraw.Draw(out)
    for rect in rects:
        x, y, w, h = clipped_int(rect)
        draw.rectangle((x, y, x + w - 1, y + h - 1), fill=(0, 0, 0))
    return out


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


# --- text leaving the process ---------------------------------------------------------------


class StreamRedactor:
    """Redacts a text stream chunk by chunk; what may be the start of a secret split across
    chunks is held back until it is whole (or ruled out); :meth:`flush` releases the rest.

    Held back: a tail that is the beginning of a known secret, the last unfinished word
    (credential patterns are single tokens: an API key may still grow), an open
    ``-----BEGIN`` block. A cut never falls inside a match, and what is released is the
    redaction of a finished prefix, so text still flows word by word.
    """

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor
        self._pending = ""

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for secret in self.redactor.secrets:
            start = text.find(secret)
            while start != -1:
                spans.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
        for pattern in self.redactor.patterns:
            spans.extend(m.span() for m in pattern.finditer(text))
        return spans

    def _cut(self, raw: str) -> int:
        cut = len(raw)
        for secret in self.redactor.secrets:  # the start of a secret at the very end
            for k in range(min(len(secret) - 1, len(raw)), 0, -1):
                if raw.endswith(secret[:k]):
                    cut = min(cut, len(raw) - k)
                    break
        last_word = re.search(r"\S+$", raw)
        if last_word is not None:
            cut = min(cut, last_word.start())
        begin = raw.rfind("-----BEGIN")
        if begin != -1 and "-----" not in raw[begin + 10 :]:
            cut = min(cut, begin)
        moved = True
        while moved:  # back off to the start of any match the cut would split or touch
            moved = False
            for start, end in self._spans(raw):
                if start < cut <= end:
                    cut, moved = start, True
        return cut

    def feed(self, chunk: str) -> str:
        """The redacted text that is safe to release now (may be empty)."""
        raw = self._pending + chunk
        cut = self._cut(raw)
        self._pending = raw[cut:]
        return self.redactor.redact_text(raw[:cut]) if cut > 0 else ""

    def flush(self) -> str:
        text, self._pending = self.redactor.redact_text(self._pending), ""
        return text


def redact_messages(redactor: Redactor, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages with every text part redacted (image parts are left as they are: their
    pixels were redacted before encoding, and their base64 is not text to scrub)."""

    def part(p: Any) -> Any:
        if isinstance(p, dict) and p.get("type") == "image_url":
            return p
        return redactor.redact_data(p)

    out = []
    for message in messages:
        content = message.get("content")
        rest = redactor.redact_data({k: v for k, v in message.items() if k != "content"})
        if isinstance(content, list):
            rest["content"] = [part(p) for p in content]
        else:
            rest["content"] = redactor.redact_data(content)
        out.append(rest)
    return out


# Redactors of the runs alive in this process: log lines pass all of them. Weak, so a
# finished run's secrets are not kept in memory by the logging set-up.
_LIVE_REDACTORS: weakref.WeakSet[Redactor] = weakref.WeakSet()


def scrub_logs_with(redactor: Redactor) -> None:
    """Log records (messages and tracebacks) written through :func:`redacting_sink` are
    scrubbed with this redactor's secrets and patterns while it lives."""
    _LIVE_REDACTORS.add(redactor)


def scrub(text: str) -> str:
    """``text`` with the secrets of every live redactor and the built-in patterns removed."""
    for redactor in list(_LIVE_REDACTORS):
        text = redactor.redact_text(text)
    for pattern in _DEFAULT_COMPILED:
        text = pattern.sub(REDACTED, text)
    return text


def redacting_sink(stream: Any) -> Callable[[Any], None]:
    """A loguru sink writing fully formatted records (traceback included) scrubbed.
    ``stream``: a text stream, or a function returning one at each write (``lambda:
    sys.stderr`` follows a replaced ``sys.stderr``)."""

    def write(message: Any) -> None:
        target = stream() if callable(stream) and not hasattr(stream, "write") else stream
        target.write(scrub(str(message)))
        flush = getattr(target, "flush", None)
        if flush is not None:
            flush()

    return write
