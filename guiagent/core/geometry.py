"""Coordinate spaces and the pure functions between them.

Every point a model names travels model space -> sent image -> frame -> screen.
Conversions happen only here, so a wrong click can be explained from the
recorded trail alone (see :class:`PointTrail`).

- model space: what the model's numbers mean (``image`` pixels of the sent image,
  ``norm1000`` 0..1000 per axis, ``norm1`` 0..1 per axis);
- sent image: the resized frame that went into the request;
- frame: the captured pixels (device pixels);
- screen: where input events land (logical points, frame pixels / scale), expressed in
  desktop coordinates: the virtual desktop across monitors, whose origin may make a
  monitor's origin negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class CoordSpace(str, Enum):
    IMAGE = "image"
    NORM1000 = "norm1000"
    NORM1 = "norm1"

    def describe(self, sent: Size) -> str:
        if self is CoordSpace.IMAGE:
            return (
                f"pixels of the {sent.width}x{sent.height} screenshot you see, "
                f"x from 0 (left) to {sent.width - 1}, y from 0 (top) to {sent.height - 1}"
            )
        if self is CoordSpace.NORM1000:
            return (
                f"coordinates normalised to 0..1000 on each axis of the {sent.width}x{sent.height} "
                "screenshot you see (0,0 top-left, 1000,1000 bottom-right)"
            )
        return (
            f"fractions 0..1 on each axis of the {sent.width}x{sent.height} screenshot you see "
            "(0,0 top-left, 1,1 bottom-right)"
        )


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"size must be positive, got {self.width}x{self.height}")

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class Point:
    x: float
    y: float

    def rounded(self) -> tuple[int, int]:
        return (math.floor(self.x + 0.5), math.floor(self.y + 0.5))

    def distance(self, other: Point) -> float:
        return math.hypot(self.x - other.x, self.y - other.y)


@dataclass(frozen=True)
class Rect:
    """Axis-aligned box: left, top, width, height (same units as the space it lives in)."""

    left: float
    top: float
    width: float
    height: float

    @classmethod
    def from_corners(cls, x1: float, y1: float, x2: float, y2: float) -> Rect:
        left, right = sorted((x1, x2))
        top, bottom = sorted((y1, y2))
        return cls(left, top, right - left, bottom - top)

    @property
    def right(self) -> float:
        return self.left + self.width

    @property
    def bottom(self) -> float:
        return self.top + self.height

    @property
    def centre(self) -> Point:
        return Point(self.left + self.width / 2, self.top + self.height / 2)

    def contains(self, point: Point) -> bool:
        return self.left <= point.x <= self.right and self.top <= point.y <= self.bottom

    def as_xyxy(self) -> tuple[float, float, float, float]:
        return (self.left, self.top, self.right, self.bottom)


# --- model space <-> sent image -------------------------------------------------------


def model_to_sent(point: Point, space: CoordSpace, sent: Size) -> Point:
    """Read a model's numbers as a point in the sent image's pixels."""
    if space is CoordSpace.IMAGE:
        return point
    per_unit = 1000.0 if space is CoordSpace.NORM1000 else 1.0
    return Point(point.x / per_unit * sent.width, point.y / per_unit * sent.height)


def sent_to_model(point: Point, space: CoordSpace, sent: Size) -> Point:
    """Express a point of the sent image in a model space (inverse of model_to_sent)."""
    if space is CoordSpace.IMAGE:
        return point
    per_unit = 1000.0 if space is CoordSpace.NORM1000 else 1.0
    return Point(point.x / sent.width * per_unit, point.y / sent.height * per_unit)


def model_bounds(space: CoordSpace, sent: Size) -> tuple[float, float]:
    """The largest coordinate values a model may name in ``space`` (inclusive)."""
    if space is CoordSpace.IMAGE:
        return (float(sent.width), float(sent.height))
    if space is CoordSpace.NORM1000:
        return (1000.0, 1000.0)
    return (1.0, 1.0)


# --- sent image <-> frame -------------------------------------------------------------


def sent_to_frame(point: Point, sent: Size, frame: Size) -> Point:
    return Point(point.x * frame.width / sent.width, point.y * frame.height / sent.height)


def frame_to_sent(point: Point, sent: Size, frame: Size) -> Point:
    return Point(point.x * sent.width / frame.width, point.y * sent.height / frame.height)


# --- frame <-> screen -----------------------------------------------------------------


@dataclass(frozen=True)
class FrameTransform:
    """Where a frame's pixels sit on the screen.

    ``origin`` is the screen point (desktop coordinates, logical points) of the frame's
    top-left pixel; ``scale`` is device pixels per logical point (HiDPI: 2 on Retina,
    the device pixel ratio in a browser, 1 on a plain X server).
    """

    frame_size: Size
    origin: Point = Point(0.0, 0.0)
    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    def frame_to_screen(self, point: Point) -> Point:
        return Point(self.origin.x + point.x / self.scale, self.origin.y + point.y / self.scale)

    def screen_to_frame(self, point: Point) -> Point:
        return Point((point.x - self.origin.x) * self.scale, (point.y - self.origin.y) * self.scale)

    @property
    def screen_rect(self) -> Rect:
        return Rect(
            self.origin.x,
            self.origin.y,
            self.frame_size.width / self.scale,
            self.frame_size.height / self.scale,
        )


def transform_for_monitor(
    left: int, top: int, width: int, height: int, frame_size: Size, scale: float | None = None
) -> FrameTransform:
    """Build the transform for a capture of one monitor (or the whole virtual desktop).

    ``left/top/width/height`` are the monitor's rectangle in logical desktop points as the
    platform reports it (mss reports these; negative origins are allowed). When ``scale``
    is not given it is derived from the captured pixels against the logical size, which is
    how Retina captures reveal themselves (a 1440x900 monitor captured as 2880x1800).
    """
    if scale is None:
        scale = frame_size.width / width
    return FrameTransform(frame_size=frame_size, origin=Point(float(left), float(top)), scale=scale)


def transform_for_page(
    viewport_css: Size, device_pixel_ratio: float, frame_size: Size | None = None
) -> FrameTransform:
    """Transform for a browser viewport screenshot: frame in device pixels, clicks in CSS px.

    Browser zoom multiplies ``window.devicePixelRatio`` in Chromium, so the ratio the page
    reports is the one to pass; CSS ``zoom`` on an element does not move mouse coordinates.
    """
    if frame_size is None:
        frame_size = Size(
            round(viewport_css.width * device_pixel_ratio),
            round(viewport_css.height * device_pixel_ratio),
        )
    return FrameTransform(frame_size=frame_size, origin=Point(0.0, 0.0), scale=device_pixel_ratio)


# --- whole trail ----------------------------------------------------------------------


@dataclass(frozen=True)
class PointTrail:
    """A point in every space it passed through; recorded with each step."""

    model: Point
    space: CoordSpace
    sent: Point
    frame: Point
    screen: Point

    def to_dict(self) -> dict[str, object]:
        return {
            "space": self.space.value,
            "model": [self.model.x, self.model.y],
            "sent": [self.sent.x, self.sent.y],
            "frame": [self.frame.x, self.frame.y],
            "screen": [self.screen.x, self.screen.y],
        }


class OutOfImageError(ValueError):
    """The model named a point outside the image it was shown."""


def resolve_point(
    model_point: Point,
    space: CoordSpace,
    sent: Size,
    transform: FrameTransform,
    tolerance: float = 0.5,
) -> PointTrail:
    """Carry a model's point through every space to the screen, checking it is on the image."""
    sent_point = model_to_sent(model_point, space, sent)
    if not (
        -tolerance <= sent_point.x <= sent.width + tolerance
        and -tolerance <= sent_point.y <= sent.height + tolerance
    ):
        limit_x, limit_y = model_bounds(space, sent)
        raise OutOfImageError(
            f"point ({model_point.x:g}, {model_point.y:g}) is outside the image in the "
            f"{space.value} coordinate space: coordinates are "
            f"{space.describe(sent)}; x must be within 0..{limit_x:g} and y within 0..{limit_y:g}"
        )
    clamped = Point(
        min(max(sent_point.x, 0.0), sent.width - 1e-6),
        min(max(sent_point.y, 0.0), sent.height - 1e-6),
    )
    frame_point = sent_to_frame(clamped, sent, transform.frame_size)
    return PointTrail(
        model=model_point,
        space=space,
        sent=sent_point,
        frame=frame_point,
        screen=_keep_on_surface(transform.frame_to_screen(frame_point), transform),
    )


_EDGE = 0.5 + 1e-6


def _keep_on_surface(screen: Point, transform: FrameTransform) -> Point:
    """Keep a point at the right/bottom edge on the surface once rounded to whole points.

    A point on the image's far edge (norm1000 x=1000) maps to the screen rect's right edge,
    which rounds to the first point past it: on a multi-monitor desktop, the next monitor.
    """
    rect = transform.screen_rect
    x = min(screen.x, rect.right - _EDGE) if rect.width > 1 else screen.x
    y = min(screen.y, rect.bottom - _EDGE) if rect.height > 1 else screen.y
    return Point(max(x, rect.left), max(y, rect.top))


def screen_to_model(
    screen_point: Point, space: CoordSpace, sent: Size, transform: FrameTransform
) -> Point:
    """Inverse chain: where a screen point appears in model space (used by fakes and evals)."""
    frame_point = transform.screen_to_frame(screen_point)
    return sent_to_model(frame_to_sent(frame_point, sent, transform.frame_size), space, sent)
