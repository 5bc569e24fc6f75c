"""Screen OCR with RapidOCR, cached per frame and re-read only where the screen changed.

:class:`OcrEngine` wraps one RapidOCR instance (a full read of a 1280x800 screen costs
about half a second to 1.5 s on 2 cores, so build it once and share it: see
:func:`shared_engine`). :class:`ScreenReader` keeps what was read from the last frame and,
when the next frame differs only in part, recognises just the changed regions.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
from loguru import logger
from pydantic import BaseModel, ConfigDict, field_serializer, field_validator

from guiagent.envs.base import Frame
from guiagent.geometry import Rect


class TextBox(BaseModel):
    """One line of text read from a frame; ``box`` in frame pixels, tight around the ink."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    text: str
    box: Rect
    confidence: float

    @field_validator("box", mode="before")
    @classmethod
    def _box_from_list(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) == 4:
            return Rect(*(float(v) for v in value))
        if isinstance(value, dict):
            return Rect(value["left"], value["top"], value["width"], value["height"])
        return value

    @field_serializer("box")
    def _box_to_list(self, box: Rect) -> list[float]:
        return [box.left, box.top, box.width, box.height]


# --- the engine -----------------------------------------------------------------------


class OcrEngine:
    """One RapidOCR instance tuned for screens; thread-safe (calls are serialised).

    Settings chosen for screenshots: no angle classifier (screen text is upright, and the
    classifier flips short words such as "Add"), detection at the native resolution (the
    default upscales the short side to 736 px, which makes small crops slow and blurry).
    """

    def __init__(self, text_score: float = 0.5, max_side: int = 2000) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(
            use_cls=False,
            det_limit_type="max",
            det_limit_side_len=max_side,
            text_score=text_score,
        )
        self._lock = threading.Lock()
        self.calls = 0
        self.pixels = 0

    def recognise(self, rgb: np.ndarray, offset: tuple[int, int] = (0, 0)) -> list[TextBox]:
        """Read the text lines of an RGB array; boxes are shifted by ``offset`` (x, y)."""
        height, width = rgb.shape[:2]
        if height < 4 or width < 4:
            return []
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._lock:
            self.calls += 1
            self.pixels += height * width
            result, _elapsed = self._ocr(bgr, use_cls=False)
        boxes: list[TextBox] = []
        for quad, text, score in result or []:
            text = " ".join(str(text).split())
            if not text:
                continue
            xs = [p[0] for p in quad]
            ys = [p[1] for p in quad]
            x1, y1 = max(0, int(min(xs))), max(0, int(min(ys)))
            x2, y2 = min(width, int(np.ceil(max(xs)))), min(height, int(np.ceil(max(ys))))
            if x2 - x1 < 2 or y2 - y1 < 2:
                continue
            tx1, ty1, tx2, ty2 = _tighten(rgb, x1, y1, x2, y2)
            boxes.append(
                TextBox(
                    text=text,
                    box=Rect(
                        float(tx1 + offset[0]),
                        float(ty1 + offset[1]),
                        float(tx2 - tx1),
                        float(ty2 - ty1),
                    ),
                    confidence=round(float(score), 4),
                )
            )
        return boxes


def _tighten(rgb: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> tuple[int, int, int, int]:
    """Shrink a detector box (padded by its unclip ratio) to the ink it holds.

    The background is the median colour of the box's border; ink is whatever differs from
    it clearly. If nothing stands out the detector box is kept.
    """
    crop = rgb[y1:y2, x1:x2].astype(np.int16)
    border = np.concatenate([crop[0], crop[-1], crop[:, 0], crop[:, -1]])
    background = np.median(border, axis=0)
    ink = np.abs(crop - background).max(axis=2) > 60
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0 or cols.size == 0:
        return x1, y1, x2, y2
    return x1 + int(cols[0]), y1 + int(rows[0]), x1 + int(cols[-1]) + 1, y1 + int(rows[-1]) + 1


@lru_cache(maxsize=1)
def shared_engine() -> OcrEngine:
    """The process-wide engine, created on first call (never at import)."""
    logger.debug("creating the shared RapidOCR engine")
    return OcrEngine()


# --- change detection -------------------------------------------------------------------


def changed_regions(
    old: np.ndarray, new: np.ndarray, tile: int = 16, threshold: int = 24
) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x1, y1, x2, y2, frame pixels) of the changed areas between two frames.

    The per-pixel difference is reduced to a grid of ``tile``-sized cells; touching changed
    cells are grouped (8-connectivity) and each group becomes one box snapped to the grid.
    """
    if old.shape != new.shape:
        raise ValueError(f"frames differ in size: {old.shape} vs {new.shape}")
    height, width = new.shape[:2]
    delta = cv2.absdiff(np.ascontiguousarray(old), np.ascontiguousarray(new))
    if delta.ndim == 3:
        delta = np.maximum(np.maximum(delta[:, :, 0], delta[:, :, 1]), delta[:, :, 2])
    rows, cols = -(-height // tile), -(-width // tile)
    padded = np.zeros((rows * tile, cols * tile), dtype=np.uint8)
    padded[:height, :width] = delta
    # Largest change per cell, then the threshold: cheaper than thresholding every pixel.
    cells = (
        padded.reshape(rows, tile, cols * tile).max(axis=1).reshape(rows, cols, tile).max(axis=2)
    )
    grid = (cells > threshold).astype(np.uint8)
    if not grid.any():
        return []
    count, _labels, stats, _centroids = cv2.connectedComponentsWithStats(grid, connectivity=8)
    regions = []
    for index in range(1, count):
        gx, gy, gw, gh, _area = stats[index]
        regions.append(
            (
                int(gx * tile),
                int(gy * tile),
                int(min(width, (gx + gw) * tile)),
                int(min(height, (gy + gh) * tile)),
            )
        )
    return regions


def _intersects(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _union(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def merge_regions(
    regions: list[tuple[int, int, int, int]],
    old_boxes: list[TextBox],
    size: tuple[int, int],
    margin: tuple[int, int] = (24, 12),
) -> list[tuple[int, int, int, int]]:
    """Grow changed regions into crops safe to OCR on their own.

    Each region gets a margin, swallows every previously read line it touches (a line that
    changed in part must be read whole) and overlapping crops are merged, until stable.
    """
    width, height = size
    mx, my = margin
    crops = [
        (max(0, x1 - mx), max(0, y1 - my), min(width, x2 + mx), min(height, y2 + my))
        for x1, y1, x2, y2 in regions
    ]
    old = [
        (
            int(b.box.left) - 2,
            int(b.box.top) - 2,
            int(np.ceil(b.box.right)) + 2,
            int(np.ceil(b.box.bottom)) + 2,
        )
        for b in old_boxes
    ]
    changed = True
    while changed:
        changed = False
        for i, crop in enumerate(crops):
            for box in old:
                if _intersects(crop, box) and _union(crop, box) != crop:
                    grown = _union(crop, box)
                    crops[i] = (
                        max(0, grown[0]),
                        max(0, grown[1]),
                        min(width, grown[2]),
                        min(height, grown[3]),
                    )
                    crop = crops[i]
                    changed = True
        merged: list[tuple[int, int, int, int]] = []
        for crop in crops:
            for j, other in enumerate(merged):
                if _intersects(crop, other):
                    merged[j] = _union(crop, other)
                    changed = True
                    break
            else:
                merged.append(crop)
        crops = merged
    # Pad the final crops too: the detector needs some background around a line it reads.
    padded = [
        (max(0, x1 - mx), max(0, y1 - my), min(width, x2 + mx), min(height, y2 + my))
        for x1, y1, x2, y2 in crops
    ]
    return padded if padded == crops else merge_regions(padded, old_boxes, size, (0, 0))


# --- the reader -----------------------------------------------------------------------


@dataclass
class ReadStats:
    """What the last read did: ``mode`` is "cache", "full" or "partial"."""

    mode: str = ""
    crops: list[tuple[int, int, int, int]] = field(default_factory=list)
    pixels: int = 0
    full_reads: int = 0
    partial_reads: int = 0
    cache_hits: int = 0


class ScreenReader:
    """Reads frames through an :class:`OcrEngine`, caching by digest and re-reading changes.

    ``max_changed_fraction``: above this share of changed crop area a full read is cheaper.
    """

    def __init__(
        self,
        engine: OcrEngine | None = None,
        cache_size: int = 32,
        max_changed_fraction: float = 0.5,
        tile: int = 16,
    ) -> None:
        self.engine = engine if engine is not None else shared_engine()
        self.cache_size = cache_size
        self.max_changed_fraction = max_changed_fraction
        self.tile = tile
        self.stats = ReadStats()
        self._cache: OrderedDict[str, list[TextBox]] = OrderedDict()
        # The last frame read and its lines: the reference for the next partial read.
        self._last: tuple[Frame, list[TextBox]] | None = None
        self._lock = threading.Lock()

    def read(self, frame: Frame, incremental: bool = True) -> list[TextBox]:
        """All text lines of ``frame`` in reading order (top to bottom, left to right)."""
        with self._lock:
            return list(self._read(frame, incremental))

    def _read(self, frame: Frame, incremental: bool) -> list[TextBox]:
        digest = frame.digest
        cached = self._cache.get(digest)
        if cached is not None:
            self._cache.move_to_end(digest)
            self.stats.mode, self.stats.crops, self.stats.pixels = "cache", [], 0
            self.stats.cache_hits += 1
            self._last = (frame, cached)
            return cached
        rgb = frame.array()
        boxes = None
        if incremental and self._last is not None and self._last[0].size == frame.size:
            last_frame, last_boxes = self._last
            boxes = self._read_partial(rgb, last_frame.array(), last_boxes)
        if boxes is None:
            boxes = self.engine.recognise(rgb)
            height, width = rgb.shape[:2]
            self.stats.mode, self.stats.crops = "full", [(0, 0, width, height)]
            self.stats.pixels = width * height
            self.stats.full_reads += 1
        boxes = reading_order(boxes)
        self._cache[digest] = boxes
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        self._last = (frame, boxes)
        return boxes

    def _read_partial(
        self, rgb: np.ndarray, old_rgb: np.ndarray, old_boxes: list[TextBox]
    ) -> list[TextBox] | None:
        height, width = rgb.shape[:2]
        regions = changed_regions(old_rgb, rgb, tile=self.tile)
        crops = merge_regions(regions, old_boxes, (width, height))
        area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in crops)
        if area > self.max_changed_fraction * width * height:
            return None
        kept = [
            b for b in old_boxes if not any(_intersects(b.box.as_xyxy(), crop) for crop in crops)
        ]
        fresh: list[TextBox] = []
        for x1, y1, x2, y2 in crops:
            fresh.extend(self.engine.recognise(rgb[y1:y2, x1:x2], offset=(x1, y1)))
        self.stats.mode, self.stats.crops, self.stats.pixels = "partial", crops, area
        self.stats.partial_reads += 1
        logger.debug("partial OCR: {} crop(s), {} px", len(crops), area)
        return kept + fresh


def reading_order(boxes: list[TextBox]) -> list[TextBox]:
    """Sort lines top to bottom, then left to right within a row (rows by vertical overlap)."""
    ordered = sorted(boxes, key=lambda b: (b.box.centre.y, b.box.left))
    rows: list[list[TextBox]] = []
    for box in ordered:
        if rows:
            anchor = rows[-1][0].box
            if abs(box.box.centre.y - anchor.centre.y) <= max(anchor.height, box.box.height) / 2:
                rows[-1].append(box)
                continue
        rows.append([box])
    return [b for row in rows for b in sorted(row, key=lambda b: b.box.left)]
