"""Reading order, headings and control shapes from boxes and pixels (pure functions).

Reading order is a variant of recursive XY-cut: boxes are grouped into bands (runs of
vertically overlapping boxes), neighbouring bands that share an empty vertical strip (a
gutter) form a section, and a section whose two sides do not line up row by row is read
column by column; everything else is read top to bottom, then left to right.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Sequence

import numpy as np

from guiagent.core.geometry import Rect

_MAX_DEPTH = 4


def median_height(rects: Sequence[Rect]) -> float:
    heights = [r.height for r in rects if r.height > 0]
    return statistics.median(heights) if heights else 16.0


def reading_order(
    rects: Sequence[Rect],
    min_gutter: float | None = None,
    max_band_gap: float | None = None,
) -> list[int]:
    """Indices of ``rects`` in reading order.

    ``min_gutter``: the narrowest empty vertical strip that separates columns (default
    1.5 median text heights, at least 16 px); ``max_band_gap``: the largest vertical gap
    between rows of one column section (default 2.5 median heights).
    """
    if not rects:
        return []
    line = median_height(rects)
    gutter = min_gutter if min_gutter is not None else max(16.0, 1.5 * line)
    band_gap = max_band_gap if max_band_gap is not None else 2.5 * line
    return _order(list(range(len(rects))), rects, gutter, band_gap, 0)


def bands(indices: Sequence[int], rects: Sequence[Rect]) -> list[list[int]]:
    """Group boxes into horizontal bands of vertically overlapping boxes, top to bottom."""
    ordered = sorted(indices, key=lambda i: (rects[i].top, rects[i].left))
    out: list[list[int]] = []
    bottom = float("-inf")
    for i in ordered:
        r = rects[i]
        # overlap must be real: boxes that merely touch start a new band
        if out and r.top < bottom - min(2.0, r.height / 4):
            out[-1].append(i)
            bottom = max(bottom, r.bottom)
        else:
            out.append([i])
            bottom = r.bottom
    return out


def gutters(
    indices: Sequence[int], rects: Sequence[Rect], min_gutter: float
) -> list[tuple[float, float]]:
    """Empty vertical strips at least ``min_gutter`` wide strictly inside the boxes' extent."""
    spans = sorted((rects[i].left, rects[i].right) for i in indices)
    if not spans:
        return []
    out: list[tuple[float, float]] = []
    reach = spans[0][1]
    for left, right in spans[1:]:
        if left - reach >= min_gutter:
            out.append((reach, left))
        reach = max(reach, right)
    return out


def _bottom(indices: Sequence[int], rects: Sequence[Rect]) -> float:
    return max(rects[i].bottom for i in indices)


def _order(
    indices: list[int], rects: Sequence[Rect], gutter: float, band_gap: float, depth: int
) -> list[int]:
    sections: list[list[int]] = []
    for band in bands(indices, rects):
        if sections and depth < _MAX_DEPTH:
            last = sections[-1]
            near = min(rects[i].top for i in band) - _bottom(last, rects) <= band_gap
            if near and gutters(last + band, rects, gutter):
                last.extend(band)
                continue
        sections.append(list(band))
    out: list[int] = []
    for section in sections:
        cuts = gutters(section, rects, gutter) if depth < _MAX_DEPTH else []
        if cuts and _side_by_side(section, rects, cuts) and not _rows_align(section, rects, cuts):
            for column in _split(section, rects, cuts):
                out.extend(_order(column, rects, gutter, band_gap, depth + 1))
        else:
            for band in bands(section, rects):
                out.extend(_left_to_right(band, rects))
    return out


def _split(
    indices: list[int], rects: Sequence[Rect], cuts: list[tuple[float, float]]
) -> list[list[int]]:
    columns: list[list[int]] = [[] for _ in range(len(cuts) + 1)]
    for i in indices:
        centre = rects[i].centre.x
        column = sum(1 for start, _ in cuts if centre > start)
        columns[column].append(i)
    return [c for c in columns if c]


def _side_by_side(
    indices: list[int], rects: Sequence[Rect], cuts: list[tuple[float, float]]
) -> bool:
    """Neighbouring columns share some height (a staircase of boxes is not columns)."""
    columns = _split(indices, rects, cuts)
    spans = [(min(rects[i].top for i in c), max(rects[i].bottom for i in c)) for c in columns]
    return all(min(a[1], b[1]) - max(a[0], b[0]) > 0 for a, b in itertools.pairwise(spans))


def _rows_align(indices: list[int], rects: Sequence[Rect], cuts: list[tuple[float, float]]) -> bool:
    """A table or form (label beside field), not columns: every side has the same rows."""
    columns = _split(indices, rects, cuts)
    if len(columns) < 2:
        return True
    row_sets = [bands(c, rects) for c in columns]
    count = len(row_sets[0])
    if count < 2 or any(len(rows) != count for rows in row_sets):
        return False
    for rows in zip(*row_sets, strict=True):
        tops = [min(rects[i].top for i in row) for row in rows]
        bottoms = [max(rects[i].bottom for i in row) for row in rows]
        if max(tops) >= min(bottoms):  # some pair of cells does not overlap vertically
            return False
    return True


def _left_to_right(band: list[int], rects: Sequence[Rect]) -> list[int]:
    """Within a band: lines by centre, each left to right (stacked small boxes stay in order)."""
    ordered = sorted(band, key=lambda i: (rects[i].centre.y, rects[i].left))
    lines: list[list[int]] = []
    for i in ordered:
        if lines:
            anchor = rects[lines[-1][0]]
            if abs(rects[i].centre.y - anchor.centre.y) <= max(anchor.height, rects[i].height) / 2:
                lines[-1].append(i)
                continue
        lines.append([i])
    return [i for line in lines for i in sorted(line, key=lambda j: rects[j].left)]


# --- headings ----------------------------------------------------------------------------

_ASCENDERS = set("bdfhiklt!?/\\|'\"#$%&@()[]{}")
_DESCENDERS = set("gjpqy,;()[]{}|")


def font_size(text: str, ink_height: float) -> float:
    """Estimate a line's font size (em) from its ink height, allowing for which letters
    reach the cap line and below the baseline ("Name" and "gap" differ in ink, not font)."""
    letters = [c for c in text if not c.isspace()]
    tall = any(c in _ASCENDERS or c.isupper() or c.isdigit() for c in letters)
    deep = any(c in _DESCENDERS for c in letters)
    top = 0.72 if tall else 0.52
    bottom = 0.21 if deep else 0.0
    return ink_height / (top + bottom)


def heading_levels(sizes: Sequence[float], h1: float = 1.5, h2: float = 1.2) -> list[int | None]:
    """Heading level per line from its font size relative to the median: ``h1`` and ``h2``
    are the ratios from which a line counts as a level 1 or level 2 heading."""
    if not sizes:
        return []
    median = statistics.median(sizes)
    out: list[int | None] = []
    for size in sizes:
        ratio = size / median if median > 0 else 1.0
        out.append(1 if ratio >= h1 else 2 if ratio >= h2 else None)
    return out


# --- control shapes ----------------------------------------------------------------------


def _edge_distance(
    pixels: np.ndarray, rect: Rect, side: str, background: np.ndarray, max_pad: int
) -> int | None:
    """How far from the text box, on one side, a mostly solid line of another colour runs."""
    height, width = pixels.shape[:2]
    x1, y1 = int(rect.left), int(rect.top)
    x2, y2 = int(np.ceil(rect.right)), int(np.ceil(rect.bottom))
    for d in range(2, max_pad + 1):
        if side == "left":
            x = x1 - d
            if x < 0:
                return None
            strip = pixels[y1:y2, x]
        elif side == "right":
            x = x2 - 1 + d
            if x >= width:
                return None
            strip = pixels[y1:y2, x]
        elif side == "top":
            y = y1 - d
            if y < 0:
                return None
            strip = pixels[y, x1:x2]
        else:
            y = y2 - 1 + d
            if y >= height:
                return None
            strip = pixels[y, x1:x2]
        if strip.size == 0:
            return None
        differs = np.abs(strip.astype(np.int16) - background).max(axis=1) > 16
        if differs.mean() >= 0.8:
            return d
    return None


def control_shape(pixels: np.ndarray, rect: Rect) -> str | None:
    """What encloses a line of text: ``"button"`` (a box close on all four sides),
    ``"textbox"`` (close above, below and on the left, open to the right), else None.

    ``pixels`` is an RGB array of the frame, ``rect`` the text's ink box in it.
    """
    height, width = pixels.shape[:2]
    x1, y1 = max(int(rect.left), 0), max(int(rect.top), 0)
    x2, y2 = min(int(np.ceil(rect.right)), width), min(int(np.ceil(rect.bottom)), height)
    if x2 <= x1 or y2 <= y1:
        return None
    # the background is what most of a text box shows (ink covers far less than half)
    inside = pixels[y1:y2, x1:x2].reshape(-1, pixels.shape[2]).astype(np.int16)
    background = np.median(inside, axis=0)
    max_pad = int(max(12, 1.5 * rect.height))
    found = {
        side: _edge_distance(pixels, rect, side, background, max_pad)
        for side in ("left", "right", "top", "bottom")
    }
    if all(found.values()):
        return "button"
    if found["left"] and found["top"] and found["bottom"]:
        return "textbox"
    return None


def checkbox_state(pixels: np.ndarray, rect: Rect) -> str | None:
    """``"checked"`` / ``"not checked"`` when a small square box sits at the left end of a
    line of text (inside its box or just before it), else None."""
    import cv2

    height, width = pixels.shape[:2]
    h = max(rect.height, 4.0)
    x1, x2 = max(int(rect.left - 2 * h), 0), min(int(rect.left + 1.5 * h), width)
    y1, y2 = max(int(rect.top - 0.4 * h), 0), min(int(rect.bottom + 0.4 * h) + 1, height)
    if x2 - x1 < 4 or y2 - y1 < 4:
        return None
    crop = pixels[y1:y2, x1:x2].astype(np.int16)
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    ink = (np.abs(crop - np.median(border, axis=0)).max(axis=2) > 24).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    for cx, cy, cw, ch, _area in stats[1:count]:
        if not (0.4 * h <= cw <= 1.4 * h and abs(int(cw) - int(ch)) <= 2 and cw >= 7):
            continue
        box = ink[cy : cy + ch, cx : cx + cw]
        outline = np.concatenate([box[0], box[-1], box[:, 0], box[:, -1]])
        if outline.mean() < 0.85:
            continue  # a letter or a blob, not a drawn box
        inner = box[2:-2, 2:-2]
        return "checked" if inner.size and inner.mean() > 0.15 else "not checked"
    return None


def caret_at_end(pixels: np.ndarray, rect: Rect) -> bool:
    """Whether a line's box ends in a text caret: a thin full-height bar taller than the
    text before it (OCR then reads it as a trailing "l" or "|")."""
    height, width = pixels.shape[:2]
    x1, y1 = max(int(rect.left), 0), max(int(rect.top), 0)
    x2, y2 = min(int(np.ceil(rect.right)), width), min(int(np.ceil(rect.bottom)), height)
    if x2 - x1 < 6 or y2 - y1 < 6:
        return False
    crop = pixels[y1:y2, x1:x2].astype(np.int16)
    background = np.median(crop.reshape(-1, crop.shape[2]), axis=0)
    ink = np.abs(crop - background).max(axis=2) > 60
    full = ink.mean(axis=0) >= 0.9
    cols = np.flatnonzero(ink.any(axis=0))
    if cols.size == 0 or not full[cols[-1]]:
        return False
    start = cols[-1]
    while start > 0 and full[start - 1]:
        start -= 1
    if cols[-1] - start + 1 > 3:
        return False
    rest = ink[:, : max(start - 1, 0)]
    rows = np.flatnonzero(rest.any(axis=1))
    return rows.size > 0 and (rows[0] > 1 or rows[-1] < ink.shape[0] - 2)
