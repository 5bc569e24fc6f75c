"""The final OCR pass for secrets, kept cheap: read only what changed, where there is ink,
outside the boxes whose text is already known."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image, ImageChops

from guiagent.core.env import Frame
from guiagent.core.geometry import Rect


@runtime_checkable
class TextReader(Protocol):
    """Anything that reads text boxes from a frame (e.g. LocalGrounder); may be sync or async."""

    def read_text(self, frame: Frame) -> Any: ...


async def read_text_with(reader: TextReader, frame: Frame) -> list[Any]:
    """``reader.read_text(frame)`` off the event loop (OCR is slow and blocking)."""
    if inspect.iscoroutinefunction(reader.read_text):
        result = await reader.read_text(frame)
    else:
        result = await asyncio.to_thread(reader.read_text, frame)
        if inspect.isawaitable(result):
            result = await result
    return list(result)


def clipped_int(rect: Rect) -> tuple[int, int, int, int]:
    """Integer [x, y, w, h] covering ``rect`` entirely (floor the start, ceil the end)."""
    x1, y1 = math.floor(rect.left), math.floor(rect.top)
    x2, y2 = math.ceil(rect.right), math.ceil(rect.bottom)
    return (x1, y1, x2 - x1, y2 - y1)


class ChangedTextScan:
    """The final OCR pass over the image about to be sent and saved, kept cheap.

    Only tiles that changed since the last checked image are read, and of those only tiles
    with ink (a flat background holds no text) outside the boxes whose text is already
    known (DOM text elements, checked as text; boxes already black). What was found in
    tiles that did not change is kept; crops seen before (a blinking caret) are not read
    again. ``reader`` reads a crop: anything with ``read_text(frame)``.
    """

    def __init__(
        self, reader: TextReader, tile: int = 16, threshold: int = 10, cache_size: int = 256
    ) -> None:
        self.reader = reader
        self.tile = tile
        self.threshold = threshold
        self.cache_size = cache_size
        self._last: Image.Image | None = None
        self._found: list[tuple[Rect, str]] = []  # (frame box, text) of the last checked image
        self._cache: dict[bytes, list[tuple[Rect, str]]] = {}
        self.last_regions: list[tuple[int, int, int, int]] = []  # what the last scan read

    def regions(self, image: Image.Image, known: Sequence[Rect] = ()) -> list[Rect]:
        """The regions of ``image`` to read (frame pixels): runs of inked tiles, grown along
        their line so a line is read whole, that hold a tile changed since the last image
        and lie outside the ``known`` boxes. Updates the reference image."""
        import cv2

        image = image if image.mode == "RGB" else image.convert("RGB")
        last, self._last = self._last, image
        t = self.tile
        w, h = image.size
        if last is None or last.size != image.size:
            top, bottom = 0, h
        else:
            # one pass in C finds whether, and in which rows, anything changed: a still
            # screen costs only this; otherwise only a band of rows is looked at
            changed_box = ImageChops.difference(last, image).getbbox()
            if changed_box is None:
                return []
            top = max((changed_box[1] // t - 2) * t, 0)
            bottom = min((-(-changed_box[3] // t) + 2) * t, h)
        band = cv2.cvtColor(np.asarray(image.crop((0, top, w, bottom))), cv2.COLOR_RGB2GRAY)
        bh_px = bottom - top
        th, tw = -(-bh_px // t), -(-w // t)
        padded = np.pad(band, ((0, th * t - bh_px), (0, tw * t - w)), mode="edge")
        # per-tile max and min: a tile-sized dilation/erosion sampled once per tile (much
        # faster than a numpy reduction over strided axes)
        kernel = np.ones((t, t), np.uint8)
        centre = slice(t // 2, None, t)
        high = cv2.dilate(padded, kernel)[centre, centre]
        low = cv2.erode(padded, kernel)[centre, centre]
        ink = (high.astype(np.int16) - low) > 40
        if last is None or last.size != image.size:
            changed = np.ones((th, tw), dtype=bool)
        else:
            old = cv2.cvtColor(np.asarray(last.crop((0, top, w, bottom))), cv2.COLOR_RGB2GRAY)
            old = np.pad(old, ((0, th * t - bh_px), (0, tw * t - w)), mode="edge")
            changed = cv2.dilate(cv2.absdiff(padded, old), kernel)[centre, centre] > self.threshold
        for rect in known:  # tiles mostly inside a known box need no reading
            x1 = math.floor(rect.left / t + 0.5)
            y1 = math.floor((rect.top - top) / t + 0.5)
            x2 = math.floor(rect.right / t + 0.5)
            y2 = math.floor((rect.bottom - top) / t + 0.5)
            if x2 > x1 and y2 > y1:
                ink[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = False
        seeds = changed & ink
        if not seeds.any():
            return []
        # words of one line join across their gaps (up to two tiles): a changed letter makes
        # its whole line be read again, so a secret typed a letter at a time is seen whole
        grown = cv2.dilate(ink.astype(np.uint8), np.ones((1, 5), np.uint8))
        _, labels, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=4)
        out = []
        for label in np.unique(labels[seeds]):
            if label == 0:
                continue
            x, y, bw, bh, _ = stats[label]
            left, y1 = max(int(x) * t - t // 2, 0), max(top + int(y) * t - t // 2, 0)
            right = min(int(x + bw) * t + t // 2, w)
            y2 = min(top + int(y + bh) * t + t // 2, h)
            out.append(Rect(left, y1, right - left, y2 - y1))
        return out

    def _unchanged(self, changed: list[Rect]) -> list[tuple[Rect, str]]:
        return [
            (box, text)
            for box, text in self._found
            if not any(_overlap(box, region) for region in changed)
        ]

    async def scan(self, image: Image.Image, known: Sequence[Rect] = ()) -> list[tuple[Rect, str]]:
        """Every (box, text) on ``image`` outside ``known`` boxes, reading only what changed."""
        regions = self.regions(image, known)
        self.last_regions = [clipped_int(r) for r in regions]
        kept = self._unchanged(regions)
        for region in regions:
            x, y, w, h = clipped_int(region)
            crop = image.crop((x, y, x + w, y + h))
            key = hashlib.blake2b(crop.tobytes(), digest_size=16).digest() + bytes(
                f"{w}x{h}", "ascii"
            )
            lines = self._cache.get(key)
            if lines is None:
                read = await read_text_with(self.reader, Frame.from_image(crop))
                lines = [(tb.box, str(tb.text)) for tb in read]
                if len(self._cache) >= self.cache_size:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[key] = lines
            kept.extend((Rect(b.left + x, b.top + y, b.width, b.height), text) for b, text in lines)
        self._found = kept
        return kept


def _overlap(a: Rect, b: Rect) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom
