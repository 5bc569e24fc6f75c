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
from PIL import Image

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
        self._last: np.ndarray | None = None
        self._found: list[tuple[Rect, str]] = []  # (frame box, text) of the last checked image
        self._cache: dict[bytes, list[tuple[Rect, str]]] = {}
        self.last_regions: list[tuple[int, int, int, int]] = []  # what the last scan read

    def regions(self, image: Image.Image, known: Sequence[Rect] = ()) -> list[Rect]:
        """The regions of ``image`` to read (frame pixels): runs of inked tiles, grown along
        their line so a line is read whole, that hold a tile changed since the last image
        and lie outside the ``known`` boxes. Updates the reference image."""
        import cv2

        gray = np.asarray(image.convert("L"))
        t = self.tile
        h, w = gray.shape
        th, tw = -(-h // t), -(-w // t)
        padded = np.pad(gray, ((0, th * t - h), (0, tw * t - w)), mode="edge")
        tiles = padded.reshape(th, t, tw, t)
        ink = (tiles.max(axis=(1, 3)).astype(np.int16) - tiles.min(axis=(1, 3))) > 40
        if self._last is None or self._last.shape != padded.shape:
            changed = np.ones((th, tw), dtype=bool)
        else:
            diff = cv2.absdiff(padded, self._last)
            changed = diff.reshape(th, t, tw, t).max(axis=(1, 3)) > self.threshold
        self._last = padded
        for rect in known:  # tiles mostly inside a known box need no reading
            x1, y1 = math.floor(rect.left / t + 0.5), math.floor(rect.top / t + 0.5)
            x2, y2 = math.floor(rect.right / t + 0.5), math.floor(rect.bottom / t + 0.5)
            if x2 > x1 and y2 > y1:
                ink[max(y1, 0) : y2, max(x1, 0) : x2] = False
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
            left, top = max(int(x) * t - t // 2, 0), max(int(y) * t - t // 2, 0)
            right = min(int(x + bw) * t + t // 2, w)
            bottom = min(int(y + bh) * t + t // 2, h)
            out.append(Rect(left, top, right - left, bottom - top))
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
