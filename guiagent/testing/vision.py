"""Tiny "vision" for stand-in models: find a solid colour in the image a request carried."""

from __future__ import annotations

import numpy as np
from PIL import Image

from guiagent.core.geometry import Point


def centroid_of_colour(
    image: Image.Image, rgb: tuple[int, int, int], tolerance: int = 40, min_pixels: int = 20
) -> Point | None:
    """Centre (image pixels) of the pixels within ``tolerance`` (sum of channel differences) of ``rgb``."""
    pixels = np.asarray(image.convert("RGB")).astype(np.int16)
    mask = np.abs(pixels - np.array(rgb, dtype=np.int16)).sum(axis=2) < tolerance
    ys, xs = np.nonzero(mask)
    if len(xs) < min_pixels:
        return None
    return Point(float(xs.mean()) + 0.5, float(ys.mean()) + 0.5)
