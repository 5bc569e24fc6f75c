"""Multi-scale template matching (OpenCV ``TM_CCOEFF_NORMED``) with non-max suppression.

A template captured on one display rarely has the same size on another (HiDPI, browser
zoom), so each template is tried at several scales, the frame's known scale first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from guiagent.core.geometry import Rect

DEFAULT_SCALES: tuple[float, ...] = (1.0, 1.25, 1.5, 2.0, 0.75, 1.75, 0.5, 2.5)


class TemplateError(ValueError):
    """The template image cannot be used (missing file, unreadable, larger than the frame)."""


@dataclass(frozen=True)
class TemplateMatch:
    box: Rect  # frame pixels
    score: float  # TM_CCOEFF_NORMED, -1..1
    scale: float  # template pixels -> frame pixels


def load_template(image: str | Path | Image.Image) -> np.ndarray:
    """The template as a grayscale uint8 array; raises :class:`TemplateError` on bad input."""
    if isinstance(image, Image.Image):
        pil = image
    else:
        path = Path(image)
        if not path.is_file():
            raise TemplateError(f"template image not found: {path}")
        try:
            with Image.open(path) as opened:
                pil = opened.copy()
        except OSError as exc:
            raise TemplateError(f"cannot read template image {path}: {exc}") from exc
    gray = np.asarray(pil.convert("L"))
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        raise TemplateError(f"template too small: {gray.shape[1]}x{gray.shape[0]}")
    if float(gray.std()) < 1.0:
        raise TemplateError("template is a flat colour: it would match anywhere")
    return gray


def scale_order(
    frame_scale: float = 1.0, scales: tuple[float, ...] = DEFAULT_SCALES
) -> list[float]:
    """The scales to try, the frame's own scale first, without duplicates."""
    ordered: list[float] = []
    for scale in (frame_scale, *scales):
        if scale > 0 and all(abs(scale - s) > 1e-6 for s in ordered):
            ordered.append(scale)
    return ordered


def match_template(
    frame_gray: np.ndarray,
    template: np.ndarray,
    frame_scale: float = 1.0,
    threshold: float = 0.8,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    max_matches: int = 20,
    iou_limit: float = 0.3,
) -> list[TemplateMatch]:
    """All places the template appears, best first, overlapping duplicates suppressed.

    Every scale is searched (a 2x template also matches weakly at 1.75x; NMS keeps the
    best). A template larger than the frame at every scale raises :class:`TemplateError`.
    """
    import cv2  # OpenCV loads on first use (a DOM-only scenario never needs it)

    frame_h, frame_w = frame_gray.shape[:2]
    found: list[TemplateMatch] = []
    tried = 0
    for scale in scale_order(frame_scale, scales):
        width = round(template.shape[1] * scale)
        height = round(template.shape[0] * scale)
        if width > frame_w or height > frame_h or width < 3 or height < 3:
            continue
        tried += 1
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        scaled = (
            template
            if scale == 1.0
            else cv2.resize(template, (width, height), interpolation=interpolation)
        )
        if float(scaled.std()) < 1.0:
            continue
        result = cv2.matchTemplate(frame_gray, scaled, cv2.TM_CCOEFF_NORMED)
        result = np.nan_to_num(result, nan=-1.0, posinf=-1.0, neginf=-1.0)
        found.extend(_peaks(result, width, height, scale, threshold, max_matches))
    if tried == 0:
        raise TemplateError(
            f"template {template.shape[1]}x{template.shape[0]} is larger than the "
            f"{frame_w}x{frame_h} frame at every scale"
        )
    return non_max_suppression(found, iou_limit)[:max_matches]


def _peaks(
    result: np.ndarray, width: int, height: int, scale: float, threshold: float, limit: int
) -> list[TemplateMatch]:
    """Local maxima over threshold: take the best, blank its neighbourhood, repeat."""
    import cv2

    peaks: list[TemplateMatch] = []
    work = result.copy()
    for _ in range(limit):
        _min, best, _min_loc, (x, y) = cv2.minMaxLoc(work)
        if best < threshold:
            break
        peaks.append(
            TemplateMatch(Rect(float(x), float(y), float(width), float(height)), float(best), scale)
        )
        x1, y1 = max(0, x - width // 2), max(0, y - height // 2)
        work[y1 : y + height // 2 + 1, x1 : x + width // 2 + 1] = -1.0
    return peaks


def iou(a: Rect, b: Rect) -> float:
    x1, y1 = max(a.left, b.left), max(a.top, b.top)
    x2, y2 = min(a.right, b.right), min(a.bottom, b.bottom)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def non_max_suppression(
    matches: list[TemplateMatch], iou_limit: float = 0.3
) -> list[TemplateMatch]:
    kept: list[TemplateMatch] = []
    for match in sorted(matches, key=lambda m: m.score, reverse=True):
        if all(iou(match.box, other.box) <= iou_limit for other in kept):
            kept.append(match)
    return kept
