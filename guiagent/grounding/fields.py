"""Where the field a label names is, from geometry and outlines (pure, OpenCV)."""

from __future__ import annotations

import numpy as np

from guiagent.core.geometry import Rect

# the share of a field's inside that may be edges (its text); a line of small text, its
# glyphs' edges merged by the dilation, is a closed blob with hardly any blank inside
MAX_INSIDE_EDGES = 0.6


def _contains(outer: Rect, inner: Rect, slack: float = 1.0) -> bool:
    return (
        outer.left - slack <= inner.left
        and outer.top - slack <= inner.top
        and inner.right <= outer.right + slack
        and inner.bottom <= outer.bottom + slack
    )


def field_beside(label: Rect, fields: list[Rect]) -> Rect | None:
    """The field a label names, from geometry alone: the nearest box right of the label on
    its row, or below it overlapping it across, not containing the label (pure)."""
    line = max(label.height, 8.0)
    best: tuple[float, Rect] | None = None
    for box in fields:
        if _contains(box, label, 0.0):
            continue
        right_of = box.left >= label.right - 2 and box.top <= label.centre.y <= box.bottom
        below = box.top >= label.bottom - 2 and box.left <= label.right and box.right >= label.left
        if right_of and box.left - label.right <= 40 * line:
            distance = box.left - label.right
        elif below and box.top - label.bottom <= 5 * line:
            distance = box.top - label.bottom
        else:
            continue
        if best is None or distance < best[0]:
            best = (distance, box)
    return best[1] if best else None


def named_by_other(label: Rect, field: Rect, others: list[Rect]) -> bool:
    """Whether another text stands between a label (its whole line) and the field found
    beside it: on the field's row between the two, or between them when the field is
    below. That text names the field, not the label (pure)."""
    if _contains(field, label, 2.0):  # the text is inside the field: nothing between
        return False
    for text in others:
        between_across = text.left >= label.right - 2 and text.right <= field.left + 2
        if between_across and text.top <= field.centre.y <= text.bottom:
            return True
        between_down = text.top >= label.bottom - 2 and text.bottom <= field.top + 2
        if between_down and text.left < field.right and text.right > field.left:
            return True
    return False


def find_field_box(gray: np.ndarray, label: Rect) -> Rect | None:
    """The input field a text label names, found by its outline: right of the label on the
    same row, or just below it. ``None`` when no field-like rectangle is there."""
    import cv2

    height, width = gray.shape[:2]
    line = max(label.height, 8.0)
    x1, y1 = int(max(0, label.left - line)), int(max(0, label.top - line * 1.5))
    x2, y2 = int(min(width, label.right + 40 * line)), int(min(height, label.bottom + line * 5))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    crop = gray[y1:y2, x1:x2]
    edges = cv2.Canny(crop, 50, 150)
    enclosing = _field_boxes(edges, x1, y1, line)
    around = [b for b in enclosing if _contains(b, label, 2.0) and b.height <= line * 3]
    if around:  # the text sits inside a field (a placeholder or its value): that field
        return min(around, key=lambda b: b.width * b.height)
    # a label flush on its field: its glyphs would merge with the field's outline
    lx1, ly1 = int(max(0, label.left + 1 - x1)), int(max(0, label.top + 1 - y1))
    lx2, ly2 = int(label.right - 1 - x1), int(label.bottom - 1 - y1)
    if lx2 > lx1 and ly2 > ly1:
        edges[ly1:ly2, lx1:lx2] = 0
    return field_beside(label, _field_boxes(edges, x1, y1, line))


def _field_boxes(edges: np.ndarray, x1: int, y1: int, line: float) -> list[Rect]:
    """Closed, field-shaped outlines in an edge map (frame pixels: offset by x1, y1)."""
    import cv2

    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes = []
    for contour in contours:
        bx, by, bw, bh = cv2.boundingRect(contour)
        if not (line * 1.1 <= bh <= line * 4 and bw >= max(3 * bh, 4 * line)):
            continue
        if cv2.contourArea(contour) < 0.6 * bw * bh:  # an outline, not a stroke of text
            continue
        inside = edges[by + 3 : by + bh - 3, bx + 3 : bx + bw - 3]
        if inside.size and (inside > 0).mean() > MAX_INSIDE_EDGES:  # a word's blob of ink
            continue
        boxes.append(Rect(float(bx + x1), float(by + y1), float(bw), float(bh)))
    return boxes


def field_box_at(gray: np.ndarray, x: float, y: float, line: float = 12.0) -> Rect | None:
    """The smallest field-shaped closed outline around the point (x, y) (frame pixels):
    the field a click at that point went into; None when none is drawn there."""
    import cv2

    height, width = gray.shape[:2]
    x1, y1 = int(max(0, x - 50 * line)), int(max(0, y - 5 * line))
    x2, y2 = int(min(width, x + 50 * line)), int(min(height, y + 5 * line))
    if x2 - x1 < 8 or y2 - y1 < 8:
        return None
    edges = cv2.Canny(gray[y1:y2, x1:x2], 50, 150)
    around = [
        b
        for b in _field_boxes(edges, x1, y1, line)
        if b.left < x < b.right and b.top < y < b.bottom
    ]
    return min(around, key=lambda b: b.width * b.height) if around else None
