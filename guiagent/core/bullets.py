"""Masked password text found by its look: rows of identical filled dots (``●●●●``).

:func:`find_bullet_runs` scans one image. :class:`BulletScan` scans a stream of frames (the
desktop's, one per step) and rescans only the rows that changed since the last frame: the
pixels are compared exactly (any change to any byte of a row marks it), so a password field
that appears or grows anywhere is found, and the result is what a full scan of the frame finds.
"""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from guiagent.core.geometry import Rect

MIN_RUN = 4  # dots in a row for a masked entry
MIN_SIZE = 6  # dot diameter range, frame pixels
MAX_SIZE = 32


def find_bullet_runs(
    image: Image.Image, min_run: int = MIN_RUN, min_size: int = MIN_SIZE, max_size: int = MAX_SIZE
) -> list[Rect]:
    """Rows of identical filled dots (masked password text: ``●●●●``, ``••••``), in frame pixels.

    Works on the pixels alone: connected components of dark-on-light and light-on-dark
    ink that are round, filled, equal in size, on one line and evenly spaced.
    """
    return _runs_in_gray(np.asarray(image.convert("L")), min_run, min_size, max_size)


def _runs_in_gray(gray: np.ndarray, min_run: int, min_size: int, max_size: int) -> list[Rect]:
    runs: list[Rect] = []
    dark, light = gray < 110, gray > 170
    for mask, other in ((dark, light), (light, dark)):
        dots = round_dots(mask, min_size, max_size, other)
        if len(dots) >= min_run:
            runs.extend(_dot_runs(dots, min_run))
    return runs


def round_dots(
    mask: np.ndarray, min_size: int, max_size: int, other: np.ndarray | None = None
) -> list[tuple[int, int, int, int]]:
    """Round, filled blobs of ``mask`` with empty background above and below, or (given
    ``other``, the opposite ink) inside an open field: (x, y, w, h)."""
    import cv2

    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    x, y, w, h, area = (stats[1:, i].astype(np.int64) for i in range(5))
    keep = (w >= min_size) & (w <= max_size) & (np.abs(w - h) <= 1)
    fill = area / np.maximum(w * h, 1)
    keep &= (fill >= 0.7) & (fill <= 0.92)
    return [
        (int(a), int(b), int(c), int(d))
        for a, b, c, d in zip(x[keep], y[keep], w[keep], h[keep], strict=True)
        if _clear_above_below(mask, int(a), int(b), int(c), int(d))
        or (other is not None and _in_open_field(other, int(a), int(b), int(c), int(d)))
    ]


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


def _in_open_field(other: np.ndarray, x: int, y: int, w: int, h: int) -> bool:
    """Whether the background just above or below the dot (``other``: the opposite ink)
    runs on along its row well past the dot: the inside of an entry field. A focused
    entry's dark border may sit within the dot's reach (so it is not clear above), while
    the hole of an ``o`` is capped by its own ring, about as wide as the hole."""
    reach = h // 2 + 1
    centre = x + w // 2
    for rows in (range(y - 1, max(y - reach, 0) - 1, -1), range(y + h, y + h + reach)):
        for row in rows:
            if row >= other.shape[0] or not other[row, centre]:
                continue
            # the run of background through the centre, looked at up to 3w either side
            left_part = other[row, max(centre - 3 * w, 0) : centre][::-1]
            right_part = other[row, centre : centre + 3 * w]
            to_left = int(np.argmin(left_part)) if not left_part.all() else len(left_part)
            to_right = int(np.argmin(right_part)) if not right_part.all() else len(right_part)
            if to_left + to_right >= 3 * w:
                return True
            break
    return False


def changed_rows(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Per row of two same-shape pixel arrays, whether any byte of it differs (exact)."""
    height = after.shape[0]
    a, b = before.reshape(height, -1), after.reshape(height, -1)
    if a.shape[1] % 8 == 0 and a.flags.c_contiguous and b.flags.c_contiguous:
        a, b = a.view(np.uint64), b.view(np.uint64)  # 8 bytes a comparison
    return np.asarray((a != b).any(axis=1))


def _intervals(rows: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) runs of True in a 1-D bool array."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], rows.astype(np.int8), [0]))))
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _touches(rect: Rect, spans: list[tuple[int, int]]) -> bool:
    return any(rect.top < end and rect.bottom > start for start, end in spans)


class BulletScan:
    """:func:`find_bullet_runs` over a stream of frames, rescanning only what changed.

    Rows are compared exactly with the previous frame. Around each band of changed rows,
    a *core* reaches as far as a run touched by the change can reach (a run is at most
    ``max_size + 3`` rows tall and a dot looks ``max_size // 2 + 1`` rows above and below
    itself); runs of the previous frame outside every core are kept, those inside are
    found again by scanning full-width bands a further margin around the cores (so a
    component cut at a band's edge cannot join a run in the core). Full width, because a
    run is a row of dots of any length. The result is the set a full scan finds, with one
    reservation: dots are put into rows by the first dot met within one pixel of height, so
    a ladder of same-size dots one row apart reaching from a band's edge down to a field
    could group it differently from a scan that starts at the top of the frame.
    """

    def __init__(
        self, min_run: int = MIN_RUN, min_size: int = MIN_SIZE, max_size: int = MAX_SIZE
    ) -> None:
        self.min_run, self.min_size, self.max_size = min_run, min_size, max_size
        # reach of a change: a run's height, its dots' look above/below, a component's ring
        self.core_margin = (max_size + 3) + (max_size // 2 + 1) + 2
        # cut components at a band's edge sit within max_size of it: keep them 2 rows
        # (the row tolerance) clear of any dot of a run reaching into the core
        self.band_margin = (max_size + 3) + max_size + 2
        self._last: np.ndarray | None = None
        self._runs: list[Rect] = []
        self._lock = threading.Lock()
        self.last_bands: list[tuple[int, int]] = []  # rows the last call scanned [top, bottom)

    def reset(self) -> None:
        with self._lock:
            self._last, self._runs, self.last_bands = None, [], []

    def find(self, image: Image.Image) -> list[Rect]:
        """The dot runs of ``image`` (frame pixels), scanning only rows changed since the
        image of the last call (the whole image the first time or after a size change)."""
        rgb_image = image if image.mode == "RGB" else image.convert("RGB")
        pixels = np.asarray(rgb_image)
        height = pixels.shape[0]
        with self._lock:
            last, self._last = self._last, pixels
            if last is None or last.shape != pixels.shape:
                cores = [(0, height)]
                kept: list[Rect] = []
            else:
                changed = _intervals(changed_rows(last, pixels))
                if not changed:
                    self.last_bands = []
                    return list(self._runs)
                reach = self.core_margin
                cores = _merged([(max(s - reach, 0), min(e + reach, height)) for s, e in changed])
                kept = [rect for rect in self._runs if not _touches(rect, cores)]
            grow = self.band_margin
            bands = _merged([(max(s - grow, 0), min(e + grow, height)) for s, e in cores])
            found = [*kept]
            for top, bottom in bands:
                gray = np.asarray(rgb_image.crop((0, top, pixels.shape[1], bottom)).convert("L"))
                for rect in _runs_in_gray(gray, self.min_run, self.min_size, self.max_size):
                    moved = Rect(rect.left, rect.top + top, rect.width, rect.height)
                    if _touches(moved, cores):
                        found.append(moved)
            self._runs, self.last_bands = found, bands
            return list(found)
