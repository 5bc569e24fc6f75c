"""Text on small buttons, read one button at a time.

Full-frame OCR misses single glyphs on small buttons (a calculator's "7" or "+"): the
detector does not find a box around one short stroke. Here button-like boxes are found by
their outlines, each crop is upscaled and recognised alone (recognition only, no
detection), and what a crop says is cached by the hash of its pixels, so an unchanged
button is read once per run.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata

import numpy as np
from PIL import Image

from guiagent.core.geometry import Rect
from guiagent.grounding.ocr import OcrEngine, TextBox

TEXT_HEIGHT = 40  # the label is scaled to this height (pixels) before recognition
MIN_SCORE = 0.6  # below this the recogniser is guessing


def button_boxes(rgb: np.ndarray) -> list[Rect]:
    """Closed, button-sized rectangles (outlines) of an RGB frame, innermost first (pure)."""
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 30, 90)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[Rect] = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if not (12 <= h <= 90 and 12 <= w <= 200 and w <= 6 * h):
            continue
        if cv2.contourArea(contour) < 0.7 * w * h:  # an outline around an area, not a glyph
            continue
        boxes.append(Rect(float(x), float(y), float(w), float(h)))
    boxes.sort(key=lambda b: b.width * b.height)
    kept: list[Rect] = []
    for box in boxes:  # one box per button: an outline and its inner outline are the same
        if not any(_same_button(box, k) for k in kept):
            kept.append(box)
    return kept


def button_around(gray: np.ndarray, text: Rect) -> Rect | None:
    """The smallest closed, button-shaped outline around a text's box (a grayscale frame,
    frame pixels): a little taller than the text and not more than a few lines tall; None
    when the text is drawn without one (plain text, or a flat button: pure)."""
    import cv2

    line = max(text.height, 8.0)
    height, width = gray.shape[:2]
    x1, y1 = int(max(0, text.left - 12 * line)), int(max(0, text.top - 3 * line))
    x2, y2 = int(min(width, text.right + 12 * line)), int(min(height, text.bottom + 3 * line))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    edges = cv2.Canny(gray[y1:y2, x1:x2], 30, 90)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    around = []
    for contour in contours:
        bx, by, bw, bh = cv2.boundingRect(contour)
        box = Rect(float(bx + x1), float(by + y1), float(bw), float(bh))
        if not (line + 4 <= bh <= 5 * line and box.left <= text.left + 2):
            continue
        if not (box.top <= text.top + 2 and text.right <= box.right + 2):
            continue
        if text.bottom <= box.bottom + 2 and cv2.contourArea(contour) >= 0.7 * bw * bh:
            around.append(box)
    return min(around, key=lambda b: b.width * b.height) if around else None


def label_contrast(gray: np.ndarray, button: Rect, inset: int = 5) -> float:
    """How far the darkest or lightest ink inside a button stands from its background (gray
    levels): a greyed, disabled label stands out much less than an enabled one (pure)."""
    x1, y1 = int(button.left) + inset, int(button.top) + inset
    x2, y2 = int(button.right) - inset, int(button.bottom) - inset
    if x2 - x1 < 2 or y2 - y1 < 2:
        return 255.0
    inside = gray[y1:y2, x1:x2].astype(np.int16)
    return float(np.percentile(np.abs(inside - np.median(inside)), 99.5))


def _same_button(a: Rect, b: Rect) -> bool:
    return abs(a.centre.x - b.centre.x) <= 4 and abs(a.centre.y - b.centre.y) <= 4


class ButtonReader:
    """Reads the text of each button-like box of a frame, alone and upscaled; cached."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def read(self, image: Image.Image) -> list[TextBox]:
        rgb = np.asarray(image.convert("RGB"))
        found: list[TextBox] = []
        for box in button_boxes(rgb):
            inset = 2
            x1, y1 = int(box.left) + inset, int(box.top) + inset
            x2, y2 = int(box.right) - inset, int(box.bottom) - inset
            if x2 - x1 < 4 or y2 - y1 < 4:
                continue
            crop = rgb[y1:y2, x1:x2]
            text, score = self._read_crop(crop)
            if text and score >= MIN_SCORE:
                found.append(TextBox(text=text, box=box, confidence=round(score, 4)))
        return found

    def _read_crop(self, crop: np.ndarray) -> tuple[str, float]:
        key = hashlib.blake2b(crop.tobytes() + str(crop.shape).encode(), digest_size=16).hexdigest()
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        text, score = "", 0.0
        glyphs = ink_crop(crop)
        if glyphs is not None:
            text, score = recognise_scaled(self.engine, glyphs)
        with self._lock:
            self._cache[key] = (text, score)
        return text, score


def recognise_scaled(engine: OcrEngine, glyphs: np.ndarray) -> tuple[str, float]:
    """One line of text from an RGB crop tight around it, scaled to ``TEXT_HEIGHT`` first
    (small UI text is read better enlarged): (text, score), NFKC-normalised."""
    image = Image.fromarray(glyphs)
    scale = TEXT_HEIGHT / max(1, image.height)
    image = image.resize(
        (max(1, round(image.width * scale)), TEXT_HEIGHT), Image.Resampling.LANCZOS
    )
    text, score = engine.recognise_line(np.asarray(image))
    return unicodedata.normalize("NFKC", text).replace("\u3002", "."), score


def ink_crop(crop: np.ndarray, margin: int = 4) -> np.ndarray | None:
    """The part of a button's crop that holds its label (pixels unlike its background),
    with a margin of background around it; None for a blank button."""
    gray = crop.astype(np.int16).mean(axis=2)
    background = np.median(gray)
    ys, xs = np.nonzero(np.abs(gray - background) > 60)
    if len(xs) < 3:
        return None
    x1, x2, y1, y2 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    ink = crop[y1:y2, x1:x2]
    fill = np.median(crop.reshape(-1, 3), axis=0).astype(np.uint8)
    out = np.empty((ink.shape[0] + 2 * margin, ink.shape[1] + 2 * margin * 2, 3), np.uint8)
    out[:] = fill
    out[margin : margin + ink.shape[0], 2 * margin : 2 * margin + ink.shape[1]] = ink
    return out
