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

from guiagent.core.env import Frame
from guiagent.core.geometry import Rect


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

    def recognise_line(self, rgb: np.ndarray) -> tuple[str, float]:
        """Recognise ``rgb`` as one line of text (no detection): (text, score)."""
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._lock:
            self.calls += 1
            self.pixels += bgr.shape[0] * bgr.shape[1]
            result, _elapsed = self._ocr(bgr, use_det=False, use_cls=False, use_rec=True)
        if not result:
            return "", 0.0
        text, score = result[0][0], result[0][1]
        return " ".join(str(text).split()), float(score)


def recognise_crops(crops: list[np.ndarray]) -> list[tuple[str, float]]:
    """Read one line from each small RGB crop (recognition only, batched): a control's
    label read again, enlarged, when the screen OCR missed or misread it."""
    if not crops:
        return []
    engine = shared_engine()
    with engine._lock:
        engine.calls += 1
        result, _elapsed = engine._ocr.text_rec(
            [np.ascontiguousarray(c[:, :, ::-1]) for c in crops]
        )
    return [(" ".join(str(text).split()), float(score)) for text, score in result]


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


Box4 = tuple[int, int, int, int]


def _clip(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Boxes (n, 4) as x1, y1, x2, y2 clipped to the frame."""
    out = boxes.astype(np.int64, copy=True).reshape(-1, 4)
    np.clip(out[:, 0::2], 0, width, out=out[:, 0::2])
    np.clip(out[:, 1::2], 0, height, out=out[:, 1::2])
    return out


def _overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) matrix: which boxes of ``a`` intersect which of ``b`` (open boxes)."""
    return (
        (a[:, None, 0] < b[None, :, 2])
        & (b[None, :, 0] < a[:, None, 2])
        & (a[:, None, 1] < b[None, :, 3])
        & (b[None, :, 1] < a[:, None, 3])
    )


def _components(boxes: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """A component label per box: boxes that intersect, directly or through others, share one."""
    parent = np.arange(len(boxes))

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    # Row chunks keep the pair matrix small for many boxes (memory stays O(chunk * n)).
    for start in range(0, len(boxes), chunk):
        rows, cols = np.nonzero(_overlap(boxes[start : start + chunk], boxes))
        rows += start
        upper = rows < cols
        for i, j in zip(rows[upper].tolist(), cols[upper].tolist(), strict=True):
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    return np.array([find(i) for i in range(len(boxes))], dtype=np.int64)


def _settle(crops: np.ndarray, old: np.ndarray, max_rounds: int) -> np.ndarray | None:
    """Grow crops over the old lines they touch and merge overlapping crops, to a fixpoint.

    Every round that is not the last swallows an old line or merges two crops, so there are
    at most len(crops) + len(old) rounds; past ``max_rounds`` it gives up (None).
    """
    alive = np.ones(len(old), dtype=bool)
    for _ in range(max_rounds):
        grew = False
        if alive.any() and len(crops):
            live = old[alive]
            hit = _overlap(crops, live)
            if hit.any():
                big = np.iinfo(np.int64).max
                crops = crops.copy()
                crops[:, 0] = np.minimum(crops[:, 0], np.where(hit, live[None, :, 0], big).min(1))
                crops[:, 1] = np.minimum(crops[:, 1], np.where(hit, live[None, :, 1], big).min(1))
                crops[:, 2] = np.maximum(crops[:, 2], np.where(hit, live[None, :, 2], -1).max(1))
                crops[:, 3] = np.maximum(crops[:, 3], np.where(hit, live[None, :, 3], -1).max(1))
                # A swallowed line lies inside its crop for good (crops only grow).
                alive[np.flatnonzero(alive)[hit.any(axis=0)]] = False
                grew = True
        labels = _components(crops)
        roots = np.unique(labels)
        if len(roots) < len(crops):
            merged = np.empty((len(roots), 4), dtype=np.int64)
            for k, root in enumerate(roots):
                members = crops[labels == root]
                merged[k] = (
                    members[:, 0].min(),
                    members[:, 1].min(),
                    members[:, 2].max(),
                    members[:, 3].max(),
                )
            crops = merged
        elif not grew:
            return crops
    return None


def merge_regions(
    regions: list[Box4],
    old_boxes: list[TextBox],
    size: tuple[int, int],
    margin: tuple[int, int] = (24, 12),
    max_rounds: int = 64,
) -> list[Box4]:
    """Grow changed regions into crops safe to OCR on their own.

    Each region gets a margin, swallows every previously read line it touches (a line that
    changed in part must be read whole) and overlapping crops are merged, until stable;
    then the crops are padded once more (the detector needs some background around a line)
    and settled again, and again while that swallows more lines (each then gets its margin). All boxes are clipped to the frame first (a line read at the very
    edge must not keep "growing" a crop past it). Each round is vectorised; if the crops
    have not settled after ``max_rounds`` rounds the whole frame is returned, which is
    always a safe crop.
    """
    width, height = size
    mx, my = margin
    whole = [(0, 0, width, height)]
    if not regions:
        return []
    pad = np.array([-mx, -my, mx, my], dtype=np.int64)
    old = _clip(
        np.array(
            [
                (
                    int(b.box.left) - 2,
                    int(b.box.top) - 2,
                    int(np.ceil(b.box.right)) + 2,
                    int(np.ceil(b.box.bottom)) + 2,
                )
                for b in old_boxes
            ],
            dtype=np.int64,
        ).reshape(-1, 4),
        width,
        height,
    )
    crops = _settle(
        _clip(np.array(regions, dtype=np.int64).reshape(-1, 4) + pad, width, height),
        old,
        max_rounds,
    )
    if crops is None:
        return whole
    for _ in range(max_rounds):
        # the padding may reach more lines, swallowed flush with the crop's edge, where the
        # detector misses them: pad again until a settle swallows nothing new
        padded = _clip(crops + pad, width, height)
        if np.array_equal(padded, crops):
            break
        settled = _settle(padded, old, max_rounds)
        if settled is None:
            return whole
        crops = settled
        if np.array_equal(settled, padded):
            break
    else:
        return whole
    return [(int(x1), int(y1), int(x2), int(y2)) for x1, y1, x2, y2 in crops.tolist()]


# --- the reader -----------------------------------------------------------------------


@dataclass
class ReadStats:
    """What the last read did: ``mode`` is "cache", "full" or "partial"; ``pixels`` is how
    many pixels the engine was given (crops, plus background bands at the frame's edges)."""

    mode: str = ""
    crops: list[tuple[int, int, int, int]] = field(default_factory=list)
    pixels: int = 0
    full_reads: int = 0
    partial_reads: int = 0
    cache_hits: int = 0


class ScreenReader:
    """Reads frames through an :class:`OcrEngine`, caching by digest and re-reading changes.

    A partial read is only tried against the previous frame of the same shape, and gives
    way to a full read (bounded work either way) when the change is too big or too scattered:

    ``max_changed_fraction``: above this share of changed area (the raw changed tiles, and
    again the crops after growing them over the lines they touch) a full read is cheaper;
    ``max_regions``: above this many separate changed regions (noise, video, a checkerboard
    of small changes) a full read is cheaper than many small crops.
    """

    def __init__(
        self,
        engine: OcrEngine | None = None,
        cache_size: int = 32,
        max_changed_fraction: float = 0.5,
        tile: int = 16,
        max_regions: int = 48,
    ) -> None:
        self.engine = engine if engine is not None else shared_engine()
        self.cache_size = cache_size
        self.max_changed_fraction = max_changed_fraction
        self.tile = tile
        self.max_regions = max_regions
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
        if incremental and self._last is not None:
            last_frame, last_boxes = self._last
            last_rgb = last_frame.array()
            # Another size or pixel layout (a crop after a full screen, RGBA after RGB):
            # nothing to diff against, read it whole.
            if last_rgb.shape == rgb.shape:
                boxes = self._read_partial(rgb, last_rgb, last_boxes)
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
        limit = self.max_changed_fraction * width * height
        regions = changed_regions(old_rgb, rgb, tile=self.tile)
        if len(regions) > self.max_regions:
            logger.debug("{} changed regions: reading the whole frame", len(regions))
            return None
        if sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in regions) > limit:
            return None
        crops = merge_regions(regions, old_boxes, (width, height))
        area = sum((x2 - x1) * (y2 - y1) for x1, y1, x2, y2 in crops)
        if area > limit:
            return None
        kept = [
            b for b in old_boxes if not any(_intersects(b.box.as_xyxy(), crop) for crop in crops)
        ]
        fresh: list[TextBox] = []
        pixels = 0  # what the engine looked at: the crops and any band added at the edges
        for x1, y1, x2, y2 in crops:
            boxes, seen = self._recognise_crop(rgb, (x1, y1, x2, y2))
            fresh.extend(boxes)
            pixels += seen
        self.stats.mode, self.stats.crops, self.stats.pixels = "partial", crops, pixels
        self.stats.partial_reads += 1
        logger.debug("partial OCR: {} crop(s), {} px", len(crops), area)
        return kept + fresh

    def _recognise_crop(
        self, rgb: np.ndarray, crop: tuple[int, int, int, int]
    ) -> tuple[list[TextBox], int]:
        """The lines in one crop (frame pixels) and how many pixels the engine was given."""
        height, width = rgb.shape[:2]
        pixels, offset = _pad_at_frame_edges(rgb, crop)
        boxes = []
        for box in self.engine.recognise(pixels, offset=offset):
            x1, y1 = max(0.0, box.box.left), max(0.0, box.box.top)
            x2, y2 = min(float(width), box.box.right), min(float(height), box.box.bottom)
            if x2 - x1 >= 2 and y2 - y1 >= 2:
                boxes.append(box.model_copy(update={"box": Rect(x1, y1, x2 - x1, y2 - y1)}))
        return boxes, pixels.shape[0] * pixels.shape[1]


EDGE_PAD = 16  # background added where a crop meets the frame's edge with ink near it
EDGE_INK = 8  # how close to the frame's edge ink must come to need that band


def _pad_at_frame_edges(
    rgb: np.ndarray, crop: tuple[int, int, int, int]
) -> tuple[np.ndarray, tuple[int, int]]:
    """The crop's pixels, with a band of its background colour added on each side where it
    meets the frame's edge and ink comes close to it (inside the frame the merge margin
    gives background; at the edge there is none, and the detector misses lines that touch
    a crop's border). Returns the array and the offset of its (0, 0) in frame pixels."""
    height, width = rgb.shape[:2]
    x1, y1, x2, y2 = crop
    pixels = rgb[y1:y2, x1:x2]
    if pixels.size == 0 or not (x1 == 0 or y1 == 0 or x2 == width or y2 == height):
        return pixels, (x1, y1)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    ink = np.abs(pixels.astype(np.int16) - background).max(axis=2) > 60
    near = EDGE_INK
    left = EDGE_PAD * bool(x1 == 0 and ink[:, :near].any())
    top = EDGE_PAD * bool(y1 == 0 and ink[:near].any())
    right = EDGE_PAD * bool(x2 == width and ink[:, -near:].any())
    bottom = EDGE_PAD * bool(y2 == height and ink[-near:].any())
    if not (left or top or right or bottom):
        return pixels, (x1, y1)
    colour = [int(v) for v in background]
    padded = cv2.copyMakeBorder(
        np.ascontiguousarray(pixels), top, bottom, left, right, cv2.BORDER_CONSTANT, value=colour
    )
    return padded, (x1 - left, y1 - top)


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
