"""Whether text typed into a field shows in it: the field's pixels read by OCR, and the
comparison with what was typed (pure); in a password field, its masking dots counted
(:func:`count_bullets`).

Reading (:func:`read_field`): the field's box without its border, cropped to its ink,
scaled to ``TEXT_HEIGHT`` pixels high as small buttons are (grounding/buttons.py), and
recognised as one line with the shared engine (a field of several lines: detected and read
line by line).

Matching (:func:`typed_shows`): whitespace is ignored (OCR drops and adds spaces), text is
NFKC-normalised, dashes and quotes folded, letters compared without case. A typed digit,
sign, currency symbol or punctuation mark must be read as itself; a typed letter may be
read as a character OCR confuses it with (``l``/``I``/``1``/``|``, ``o``/``0``, ``s``/``5``,
``z``/``2``, ``b``/``6``/``8``, ``g``/``9``): forgiven in words, never in numbers. Nothing
may be missing or added inside the typed text.

- ``"whole"``: all of the typed text is in the field (anything may stand before or after it:
  earlier content, the text cursor).
- ``"tail"``: the field scrolled; its visible text is the end of the typed text. Accepted
  only when that visible end holds at least ``MIN_TAIL`` characters, the ink reaches the
  field's right end (a field scrolls only when full), the first ``CLIPPED`` characters
  (glyphs the field's left edge may cut) are not compared, and a last character that
  looks like the text cursor may be dropped.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from guiagent.core.redact import round_dots
from guiagent.grounding.buttons import TEXT_HEIGHT, ink_crop, recognise_scaled
from guiagent.grounding.ocr import OcrEngine, reading_order

MIN_TAIL = 6  # characters of a scrolled field's visible end that must match the typed end
CLIPPED = 2  # leading characters of a scrolled field that its edge may have cut
FILLED = 0.8  # share of the field's inner width the ink reaches when the field scrolled
INK = 60  # grey-level difference from the background that counts as ink
CURSOR_LIKE = "|lI1!i"

Shown = Literal["whole", "tail"]

_FOLD = str.maketrans(
    {
        "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2013": "-", "\u2014": "-",
        "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
        "\u3002": ".", "\u3001": ",", "\u00b7": ".",
    }
)  # fmt: skip
_LOOKALIKES = ("li1|!", "o0", "s5", "z2", "b68", "g9")
_GROUP = {c: group for group in _LOOKALIKES for c in group}


def plain(text: str) -> str:
    """``text`` as compared: NFKC, dashes and quotes folded, no whitespace."""
    return "".join(unicodedata.normalize("NFKC", text).translate(_FOLD).split())


def _same(typed: str, read: str) -> bool:
    """Whether OCR reading ``read`` where ``typed`` was typed is that character."""
    if typed == read or typed.casefold() == read.casefold():
        return True
    if not typed.isalpha():  # digits, signs, currency, punctuation: never forgiven
        return False
    group = _GROUP.get(typed.casefold())
    return group is not None and group == _GROUP.get(read.casefold())


def _agrees(typed: str, read: str) -> bool:
    return len(typed) == len(read) and all(map(_same, typed, read))


def typed_shows(typed: str, read: str, filled: bool = False) -> Shown | None:
    """How the field's OCR reading ``read`` shows ``typed`` (see the module's rules), or
    None. ``filled``: the field's ink reaches its right end (it may have scrolled)."""
    want, seen = plain(typed), plain(read)
    if not want:
        return "whole"
    for start in range(len(seen) - len(want) + 1):
        if _agrees(want, seen[start : start + len(want)]):
            return "whole"
    if not filled:
        return None
    ends = [seen] + ([seen[:-1]] if seen[-1:] in CURSOR_LIKE else [])
    for end in ends:
        for cut in range(CLIPPED + 1):
            visible = end[cut:]
            if MIN_TAIL <= len(visible) < len(want) and _agrees(want[-len(visible) :], visible):
                return "tail"
    return None


def times_shown(typed: str, read: str) -> int:
    """How many times ``typed`` shows whole in ``read``, not overlapping (the rules of
    :func:`typed_shows`): text typed into a field that held it already must show once more."""
    want, seen = plain(typed), plain(read)
    if not want:
        return 0
    count, start = 0, 0
    while start + len(want) <= len(seen):
        if _agrees(want, seen[start : start + len(want)]):
            count, start = count + 1, start + len(want)
        else:
            start += 1
    return count


@dataclass(frozen=True)
class FieldReading:
    """What OCR reads in a field: its text, the recogniser's score, and whether the ink
    reaches the field's right end (``filled``)."""

    text: str
    score: float
    filled: bool


def read_field(
    engine: OcrEngine, rgb: np.ndarray, box: tuple[float, float, float, float]
) -> FieldReading:
    """Read the text inside a field's box (x1, y1, x2, y2, frame pixels) of an RGB frame."""
    height, width = rgb.shape[:2]
    x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
    x2, y2 = min(width, int(np.ceil(box[2]))), min(height, int(np.ceil(box[3])))
    inner = _inside_border(rgb[y1:y2, x1:x2])
    if inner.shape[0] < 4 or inner.shape[1] < 4:
        return FieldReading("", 0.0, False)
    gray = inner.astype(np.int16).mean(axis=2)
    ink = np.abs(gray - np.median(gray)) > INK
    columns = np.flatnonzero(ink.any(axis=0))
    if ink.sum() < 3 or columns.size == 0:
        return FieldReading("", 0.0, False)
    filled = bool(columns[-1] >= FILLED * inner.shape[1])
    bands = _bands(ink.any(axis=1))
    if len(bands) > 1:  # several lines: find them, then read each
        line = max(b - a for a, b in bands)
        scale = max(1.0, TEXT_HEIGHT / max(1, line))
        image = Image.fromarray(np.ascontiguousarray(inner))
        if scale > 1.0:
            image = image.resize(
                (round(image.width * scale), round(image.height * scale)),
                Image.Resampling.LANCZOS,
            )
        lines = reading_order(engine.recognise(np.asarray(image)))
        score = min((b.confidence for b in lines), default=0.0)
        return FieldReading(" ".join(b.text for b in lines), score, filled)
    glyphs = ink_crop(inner)
    if glyphs is None:
        return FieldReading("", 0.0, False)
    text, score = recognise_scaled(engine, glyphs)
    return FieldReading(text, score, filled)


def _inside_border(crop: np.ndarray, inset: int = 2, most: int = 6) -> np.ndarray:
    """``crop`` without the field's outline: ``inset`` pixels, then any edge row or column
    that is mostly unlike the middle's background (a border, a focus ring), up to ``most``."""
    crop = crop[inset : crop.shape[0] - inset, inset : crop.shape[1] - inset]
    if crop.shape[0] < 4 or crop.shape[1] < 4:
        return crop
    gray = crop.astype(np.int16).mean(axis=2)
    background = np.median(gray)
    lines = np.abs(gray - background) > INK
    top, bottom, left, right = 0, gray.shape[0], 0, gray.shape[1]
    for _ in range(most):
        if bottom - top > 4 and lines[top, left:right].mean() > 0.5:
            top += 1
        if bottom - top > 4 and lines[bottom - 1, left:right].mean() > 0.5:
            bottom -= 1
        if right - left > 4 and lines[top:bottom, left].mean() > 0.5:
            left += 1
        if right - left > 4 and lines[top:bottom, right - 1].mean() > 0.5:
            right -= 1
    return crop[top:bottom, left:right]


def _bands(rows: np.ndarray, gap: int = 3, least: int = 4) -> list[tuple[int, int]]:
    """Runs of ink rows (start, end), split by at least ``gap`` blank rows; runs shorter
    than ``least`` rows (specks, underlines) are dropped."""
    bands: list[tuple[int, int]] = []
    start, blank = None, 0
    for i, has_ink in enumerate([*rows.tolist(), False]):
        if has_ink:
            if start is None:
                start = i
            blank = 0
            end = i + 1
        elif start is not None:
            blank += 1
            if blank >= gap or i == len(rows):
                if end - start >= least:
                    bands.append((start, end))
                start, blank = None, 0
    return bands


# --- masked text (password fields) ---------------------------------------------------


def count_bullets(
    image: Image.Image, box: tuple[float, float, float, float], min_size: int = 6
) -> int:
    """How many masking dots (``●``, ``•``) one row inside ``box`` (x1, y1, x2, y2, frame
    pixels) shows: the most dots of one size on one line, either polarity; 0 for none."""
    x1, y1, x2, y2 = (round(v) for v in box)
    if x2 - x1 < min_size or y2 - y1 < min_size:
        return 0
    gray = np.asarray(image.convert("L").crop((x1, y1, x2, y2)))
    best = 0
    for mask in (gray < 110, gray > 170):
        mask = _without_long_lines(mask)
        rows: dict[tuple[int, int], int] = {}
        for _x, y, _w, h in round_dots(mask, min_size, 32):
            key = next((k for k in rows if abs(k[0] - y) <= 1 and abs(k[1] - h) <= 1), (y, h))
            rows[key] = rows.get(key, 0) + 1
        best = max([best, *rows.values()])
    return best


def _without_long_lines(mask: np.ndarray, share: float = 0.6, tall: float = 0.6) -> np.ndarray:
    """``mask`` without straight lines longer than ``share`` of its width or ``tall`` of its
    height (a field's outline runs close above and below its dots: not ink around a dot)."""
    import cv2

    ink = mask.astype(np.uint8)
    height, width = ink.shape
    across = np.ones((1, max(2, int(width * share))), np.uint8)
    down = np.ones((max(2, int(height * tall)), 1), np.uint8)
    lines = cv2.morphologyEx(ink, cv2.MORPH_OPEN, across) | cv2.morphologyEx(
        ink, cv2.MORPH_OPEN, down
    )
    return mask & (lines == 0)
