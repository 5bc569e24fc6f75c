"""Pure image comparisons used by replay: crop difference scores and template matching."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image


def gray(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float32)


def crop(image: Image.Image, box: tuple[int, int, int, int] | list[int]) -> Image.Image:
    x1, y1, x2, y2 = box
    return image.crop((max(0, x1), max(0, y1), min(image.width, x2), min(image.height, y2)))


def difference(expected: Image.Image, actual: Image.Image, mask: np.ndarray | None = None) -> float:
    """Normalised mean absolute difference of two crops on grayscale: 0 identical, 1 opposite.

    When the sizes differ (a HiDPI change, a crop clipped at the screen edge, a region
    captured in CSS pixels) both are compared at the smaller size, so neither is upscaled.
    ``mask`` (bool, ``expected``'s height x width) keeps only the pixels where it is True
    (e.g. leaves out what the recorder blacked out); an empty mask compares nothing: 0.
    """
    if actual.size != expected.size:
        size = (min(expected.width, actual.width), min(expected.height, actual.height))
        if expected.size != size:
            expected = expected.resize(size, Image.Resampling.BOX)
            if mask is not None:
                mask = (
                    np.asarray(
                        Image.fromarray(mask.astype(np.uint8) * 255).resize(
                            size, Image.Resampling.NEAREST
                        )
                    )
                    > 127
                )
        if actual.size != size:
            actual = actual.resize(size, Image.Resampling.BOX)
    delta = np.abs(gray(expected) - gray(actual))
    if mask is not None:
        if not mask.any():
            return 0.0
        delta = delta[mask]
    return float(np.mean(delta) / 255.0)


def unmasked(size: tuple[int, int], offset: tuple[int, int], boxes: list[list[int]]) -> np.ndarray:
    """A (height, width) bool mask of a crop at ``offset`` in its frame: False inside any of
    ``boxes`` ([x, y, w, h], frame pixels), True elsewhere."""
    width, height = size
    mask = np.ones((height, width), dtype=bool)
    for x, y, w, h in boxes:
        x1, y1 = max(0, x - offset[0]), max(0, y - offset[1])
        x2, y2 = min(width, x + w - offset[0]), min(height, y + h - offset[1])
        if x2 > x1 and y2 > y1:
            mask[y1:y2, x1:x2] = False
    return mask


def template_match(
    haystack: Image.Image, needle: Image.Image, scale: float = 1.0
) -> tuple[float, tuple[float, float]] | None:
    """Best normalised correlation of ``needle`` in ``haystack``: (score -1..1, top-left).

    ``scale`` resizes the needle first (recorded at another device pixel ratio). A flat
    needle (no texture) has no defined correlation: None.
    """
    if scale != 1.0:
        needle = needle.resize(
            (max(1, round(needle.width * scale)), max(1, round(needle.height * scale)))
        )
    hay, ndl = gray(haystack), gray(needle)
    if ndl.shape[0] > hay.shape[0] or ndl.shape[1] > hay.shape[1] or float(ndl.std()) < 1.0:
        return None
    result = cv2.matchTemplate(hay, ndl, cv2.TM_CCOEFF_NORMED)
    _, best, _, loc = cv2.minMaxLoc(result)
    return (float(best), (float(loc[0]), float(loc[1])))


def normalise_text(text: str) -> str:
    return " ".join(text.casefold().split())
