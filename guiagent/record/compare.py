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


def difference(expected: Image.Image, actual: Image.Image) -> float:
    """Normalised mean absolute difference of two crops on grayscale: 0 identical, 1 opposite.

    When the sizes differ (a HiDPI change, a crop clipped at the screen edge, a region
    captured in CSS pixels) both are compared at the smaller size, so neither is upscaled.
    """
    if actual.size != expected.size:
        size = (min(expected.width, actual.width), min(expected.height, actual.height))
        if expected.size != size:
            expected = expected.resize(size, Image.Resampling.BOX)
        if actual.size != size:
            actual = actual.resize(size, Image.Resampling.BOX)
    return float(np.mean(np.abs(gray(expected) - gray(actual))) / 255.0)


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
