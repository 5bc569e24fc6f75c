"""Controls from pixels alone (pure functions): OCR words grouped into the boxes drawn
around them, and each given a role from its shape and its text.

- a box with short text centred in it is a button (its words are one label: "Save as");
- text at the left end of an outlined wide box is a field holding that text;
- a small square before a line of text is a checkbox (checked when filled);
- anything else is text, or a heading when its letters are clearly bigger.
"""

from __future__ import annotations

import numpy as np

from guiagent.core.geometry import Rect
from guiagent.grounding.ocr import TextBox
from guiagent.narrate import layout
from guiagent.narrate.schema import Item


def control_boxes(pixels: np.ndarray, min_side: int = 12, max_area: float = 0.25) -> list[Rect]:
    """Rectangles drawn on screen (outlined or filled boxes that differ from what is
    around them) of a control's size, innermost first."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 40, 120)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    height, width = gray.shape
    found: list[Rect] = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w < min_side or h < min_side or w * h > max_area * width * height:
            continue
        if cv2.contourArea(contour) < 0.8 * w * h:  # not a rectangle (a letter, a curve)
            continue
        rect = Rect(float(x), float(y), float(w), float(h))
        if any(_same(rect, r) for r in found):
            continue
        found.append(rect)
    return sorted(found, key=lambda r: r.width * r.height)


def _same(a: Rect, b: Rect, tolerance: float = 3.0) -> bool:
    return (
        abs(a.left - b.left) <= tolerance
        and abs(a.top - b.top) <= tolerance
        and abs(a.right - b.right) <= tolerance
        and abs(a.bottom - b.bottom) <= tolerance
    )


def _inside(inner: Rect, outer: Rect, pad: float = 1.0) -> bool:
    return (
        inner.left >= outer.left - pad
        and inner.top >= outer.top - pad
        and inner.right <= outer.right + pad
        and inner.bottom <= outer.bottom + pad
    )


def _join(words: list[TextBox]) -> str:
    order = layout.reading_order([w.box for w in words])
    return " ".join(words[i].text for i in order).strip()


def _union(rects: list[Rect]) -> Rect:
    left, top = min(r.left for r in rects), min(r.top for r in rects)
    return Rect(left, top, max(r.right for r in rects) - left, max(r.bottom for r in rects) - top)


def group_words(
    boxes: list[TextBox], controls: list[Rect]
) -> tuple[list[tuple[Rect, list[TextBox]]], list[TextBox]]:
    """Words that sit in one control box together (a button's label in two words), and
    the words that sit in none. A control holds words of one line or two at most."""
    grouped: dict[int, list[TextBox]] = {}
    loose: list[TextBox] = []
    for word in boxes:
        home = next(
            (
                k
                for k, c in enumerate(controls)
                if _inside(word.box, c) and c.height <= 3.5 * max(word.box.height, 8)
            ),
            None,
        )
        if home is None:
            loose.append(word)
        else:
            grouped.setdefault(home, []).append(word)
    return [(controls[k], words) for k, words in grouped.items()], loose


def role_in_box(box: Rect, text: Rect) -> str | None:
    """A box's role from where its text sits: centred and short -> button; at the left of
    a wide box -> textbox; else None (the box is a panel, not a control)."""
    centred = abs(text.centre.x - box.centre.x) <= max(0.2 * box.width, 6)
    if centred and text.width <= 0.9 * box.width and box.width <= 12 * box.height:
        return "button"
    if box.width >= 3 * box.height and text.left - box.left <= 1.5 * box.height and not centred:
        return "textbox"
    return None


def pixel_items(
    pixels: np.ndarray, boxes: list[TextBox], offset: tuple[float, float]
) -> list[Item]:
    """Items (not yet in reading order) from OCR words and the pixels they were read from;
    ``offset`` moves boxes of a cropped frame back into the whole frame."""
    items: list[Item] = []
    groups, loose = group_words(boxes, control_boxes(pixels))
    for box, words in groups:
        text_rect = _union([w.box for w in words])
        role = role_in_box(box, text_rect) if len(words) > 1 else None
        if role is None:
            loose.extend(words)
            continue
        rect = box if role == "button" else text_rect
        items.append(_item(role, _join(words), rect, offset))
    levels = layout.heading_levels([layout.font_size(t.text, t.box.height) for t in loose])
    for tb, level in zip(loose, levels, strict=True):
        state: list[str] = []
        checkbox = layout.checkbox_state(pixels, tb.box)
        if checkbox is not None:
            role, state = "checkbox", [checkbox]
        else:
            role = layout.control_shape(pixels, tb.box) or (
                "heading" if level is not None else "text"
            )
        label = tb.text
        if role == "textbox" and label[-1:] in "lI|!" and layout.caret_at_end(pixels, tb.box):
            label = label[:-1].rstrip()
        items.append(
            _item(role, label, tb.box, offset, state, level if role == "heading" else None)
        )
    return items


def _item(
    role: str,
    label: str,
    rect: Rect,
    offset: tuple[float, float],
    state: list[str] | None = None,
    level: int | None = None,
) -> Item:
    box = [
        round(rect.left + offset[0], 1),
        round(rect.top + offset[1], 1),
        round(rect.width, 1),
        round(rect.height, 1),
    ]
    return Item(role=role, label=label, state=state or [], box=box, level=level, source="ocr")
