"""The coordinate model, with exact numbers: model space -> sent image -> frame -> screen."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guiagent.core.geometry import (
    CoordSpace,
    FrameTransform,
    OutOfImageError,
    Point,
    Rect,
    Size,
    frame_to_sent,
    model_bounds,
    model_to_sent,
    resolve_point,
    screen_to_model,
    sent_to_frame,
    sent_to_model,
    transform_for_monitor,
    transform_for_page,
)

SENT = Size(1280, 720)
FRAME = Size(1920, 1080)


# --- model space <-> sent image ------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "model", "sent"),
    [
        (CoordSpace.IMAGE, Point(640, 360), Point(640, 360)),
        (CoordSpace.NORM1000, Point(500, 500), Point(640, 360)),
        (CoordSpace.NORM1000, Point(250, 100), Point(320, 72)),
        (CoordSpace.NORM1000, Point(1000, 1000), Point(1280, 720)),
        (CoordSpace.NORM1, Point(0.5, 0.5), Point(640, 360)),
        (CoordSpace.NORM1, Point(0.25, 0.1), Point(320, 72)),
        (CoordSpace.NORM1, Point(0, 0), Point(0, 0)),
    ],
)
def test_model_to_sent_exact(space: CoordSpace, model: Point, sent: Point) -> None:
    assert model_to_sent(model, space, SENT) == sent
    back = sent_to_model(sent, space, SENT)
    assert back.x == pytest.approx(model.x, abs=1e-12)
    assert back.y == pytest.approx(model.y, abs=1e-12)


def test_model_bounds_per_space() -> None:
    assert model_bounds(CoordSpace.IMAGE, SENT) == (1280.0, 720.0)
    assert model_bounds(CoordSpace.NORM1000, SENT) == (1000.0, 1000.0)
    assert model_bounds(CoordSpace.NORM1, SENT) == (1.0, 1.0)


def test_describe_names_size_and_range() -> None:
    assert "1280x720" in CoordSpace.IMAGE.describe(SENT)
    assert "1279" in CoordSpace.IMAGE.describe(SENT)
    assert "0..1000" in CoordSpace.NORM1000.describe(SENT)
    assert "0..1" in CoordSpace.NORM1.describe(SENT)


# --- sent image <-> frame --------------------------------------------------------------------


def test_sent_to_frame_exact() -> None:
    assert sent_to_frame(Point(640, 360), SENT, FRAME) == Point(960, 540)
    assert sent_to_frame(Point(100, 50), SENT, FRAME) == Point(150, 75)
    assert frame_to_sent(Point(150, 75), SENT, FRAME) == Point(100, 50)
    # non-uniform resize (aspect not kept) scales each axis separately
    assert sent_to_frame(Point(500, 500), Size(1000, 1000), Size(1920, 1080)) == Point(960, 540)


# --- frame <-> screen ------------------------------------------------------------------------


def test_negative_origin_monitor() -> None:
    # A 1920x1080 monitor left of the primary: desktop x from -1920 to -1.
    t = transform_for_monitor(-1920, 0, 1920, 1080, Size(1920, 1080))
    assert t.scale == 1.0
    assert t.frame_to_screen(Point(0, 0)) == Point(-1920, 0)
    assert t.frame_to_screen(Point(960, 540)) == Point(-960, 540)
    assert t.frame_to_screen(Point(1919, 1079)) == Point(-1, 1079)
    assert t.screen_to_frame(Point(-960, 540)) == Point(960, 540)
    assert t.screen_rect == Rect(-1920, 0, 1920, 1080)


def test_negative_origin_above_and_left() -> None:
    t = transform_for_monitor(-1280, -800, 1280, 800, Size(1280, 800))
    assert t.frame_to_screen(Point(640, 400)) == Point(-640, -400)
    trail = resolve_point(Point(500, 500), CoordSpace.NORM1000, Size(640, 400), t)
    assert trail.sent == Point(320, 200)
    assert trail.frame == Point(640, 400)
    assert trail.screen == Point(-640, -400)


@pytest.mark.parametrize(
    ("dpr", "frame", "frame_point", "screen_point"),
    [
        (1.5, Size(1920, 1200), Point(300, 150), Point(200, 100)),
        (2.0, Size(2560, 1600), Point(300, 150), Point(150, 75)),
        (3.0, Size(3840, 2400), Point(300, 150), Point(100, 50)),
    ],
)
def test_device_pixel_ratios(
    dpr: float, frame: Size, frame_point: Point, screen_point: Point
) -> None:
    t = transform_for_page(Size(1280, 800), dpr)
    assert t.frame_size == frame
    assert t.scale == dpr
    assert t.frame_to_screen(frame_point) == screen_point
    assert t.screen_to_frame(screen_point) == frame_point
    assert t.screen_rect == Rect(0, 0, 1280, 800)


def test_dpr_whole_chain() -> None:
    # Viewport 1280x800 CSS at DPR 2: frame 2560x1600, sent at 1280x800, norm1000 answer.
    t = transform_for_page(Size(1280, 800), 2.0)
    trail = resolve_point(Point(250, 750), CoordSpace.NORM1000, Size(1280, 800), t)
    assert trail.sent == Point(320, 600)
    assert trail.frame == Point(640, 1200)
    assert trail.screen == Point(320, 600)  # CSS pixels


def test_retina_scale_derived_from_capture() -> None:
    # A 1440x900 logical monitor captured as 2880x1800 device pixels.
    t = transform_for_monitor(0, 0, 1440, 900, Size(2880, 1800))
    assert t.scale == 2.0
    assert t.frame_to_screen(Point(2880, 1800)) == Point(1440, 900)
    trail = resolve_point(Point(720, 450), CoordSpace.IMAGE, Size(1440, 900), t)
    assert trail.frame == Point(1440, 900)
    assert trail.screen == Point(720, 450)


def test_retina_second_monitor_with_offset() -> None:
    # A Retina monitor right of a 1920-wide primary.
    t = transform_for_monitor(1920, 0, 1512, 982, Size(3024, 1964))
    assert t.scale == 2.0
    assert t.frame_to_screen(Point(3024, 1964)) == Point(3432, 982)
    assert t.screen_to_frame(Point(1920 + 756, 491)) == Point(1512, 982)


def test_explicit_scale_overrides_derived() -> None:
    t = transform_for_monitor(0, 0, 1280, 800, Size(1280, 800), scale=1.25)
    assert t.scale == 1.25
    assert t.frame_to_screen(Point(1000, 500)) == Point(800, 400)


def test_bad_scale_and_size_rejected() -> None:
    with pytest.raises(ValueError, match="scale must be positive"):
        FrameTransform(Size(10, 10), scale=0)
    with pytest.raises(ValueError, match="size must be positive"):
        Size(0, 10)


# --- the whole chain ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("space", "model"),
    [
        (CoordSpace.IMAGE, Point(853.3333333333334, 480)),
        (CoordSpace.NORM1000, Point(666.6666666666666, 666.6666666666666)),
        (CoordSpace.NORM1, Point(2 / 3, 2 / 3)),
    ],
)
def test_round_trip_every_space(space: CoordSpace, model: Point) -> None:
    t = transform_for_monitor(-1920, 0, 1920, 1080, FRAME)
    trail = resolve_point(model, space, SENT, t)
    assert trail.frame.x == pytest.approx(1280, abs=1e-9)
    assert trail.frame.y == pytest.approx(720, abs=1e-9)
    assert trail.screen.x == pytest.approx(-640, abs=1e-9)
    assert trail.screen.y == pytest.approx(720, abs=1e-9)
    back = screen_to_model(trail.screen, space, SENT, t)
    assert back.x == pytest.approx(model.x, abs=1e-9)
    assert back.y == pytest.approx(model.y, abs=1e-9)
    assert trail.to_dict()["space"] == space.value


def test_trail_records_every_space() -> None:
    t = transform_for_page(Size(1280, 800), 1.5)
    trail = resolve_point(Point(100, 200), CoordSpace.IMAGE, Size(640, 400), t)
    assert trail.to_dict() == {
        "space": "image",
        "model": [100.0, 200.0],
        "sent": [100.0, 200.0],
        "frame": [300.0, 600.0],
        "screen": [200.0, 400.0],
    }


@pytest.mark.parametrize(
    ("space", "model", "name"),
    [
        (CoordSpace.IMAGE, Point(1281, 10), "image"),
        (CoordSpace.IMAGE, Point(-1, 10), "image"),
        (CoordSpace.NORM1000, Point(500, 1001), "norm1000"),
        (CoordSpace.NORM1, Point(1.2, 0.5), "norm1"),
        (CoordSpace.NORM1, Point(math.nan, 0.5), "norm1"),
    ],
)
def test_out_of_image_names_the_space(space: CoordSpace, model: Point, name: str) -> None:
    with pytest.raises(OutOfImageError) as info:
        resolve_point(model, space, SENT, FrameTransform(FRAME))
    message = str(info.value)
    assert f"{name} coordinate space" in message
    assert "1280x720" in message
    assert isinstance(info.value, ValueError)


def test_edges_within_half_pixel_tolerance_are_clamped() -> None:
    t = FrameTransform(FRAME)
    trail = resolve_point(Point(1280.4, 720.4), CoordSpace.IMAGE, SENT, t)
    assert trail.frame.x < 1920 and trail.frame.y < 1080
    assert trail.frame.x == pytest.approx(1920, abs=1e-4)
    trail = resolve_point(Point(1000, 0), CoordSpace.NORM1000, SENT, t)
    assert trail.frame.x == pytest.approx(1920, abs=1e-4)


def test_rect_geometry() -> None:
    r = Rect.from_corners(30, 40, 10, 20)
    assert r == Rect(10, 20, 20, 20)
    assert r.centre == Point(20, 30)
    assert r.contains(Point(10, 20)) and r.contains(Point(30, 40))
    assert not r.contains(Point(30.01, 30))
    assert Point(0.5, 1.5).rounded() == (1, 2)
    assert Point(0, 0).distance(Point(3, 4)) == 5


# --- property: model -> screen -> model is stable ---------------------------------------------


_sizes = st.builds(Size, st.integers(16, 4000), st.integers(16, 4000))


@settings(max_examples=150, deadline=None, database=None)
@given(
    space=st.sampled_from(list(CoordSpace)),
    sent=_sizes,
    frame=_sizes,
    scale=st.sampled_from([1.0, 1.25, 1.5, 2.0, 2.5, 3.0]),
    left=st.integers(-5000, 5000),
    top=st.integers(-3000, 3000),
    fx=st.floats(0, 1),
    fy=st.floats(0, 1),
)
def test_model_screen_model_stable_within_half_pixel(
    space: CoordSpace,
    sent: Size,
    frame: Size,
    scale: float,
    left: int,
    top: int,
    fx: float,
    fy: float,
) -> None:
    limit_x, limit_y = model_bounds(space, sent)
    model = Point(fx * limit_x, fy * limit_y)
    t = FrameTransform(frame, Point(float(left), float(top)), scale)
    trail = resolve_point(model, space, sent, t)
    back = screen_to_model(trail.screen, space, sent, t)
    # Measured in sent-image pixels, the unit the model sees. Exact but for float error,
    # except on the far edges where the screen point is kept half a point inside.
    per_point = sent.width / frame.width * scale, sent.height / frame.height * scale
    back_sent = model_to_sent(back, space, sent)
    assert abs(back_sent.x - trail.sent.x) <= (0.5 + 1e-5) * per_point[0] + 1e-6
    assert abs(back_sent.y - trail.sent.y) <= (0.5 + 1e-5) * per_point[1] + 1e-6
    # a click rounded to whole screen points lands on the surface, within half a point
    rounded = Point(*trail.screen.rounded())
    rect = t.screen_rect
    assert rect.left <= rounded.x < rect.right or rect.width <= 1
    assert rect.top <= rounded.y < rect.bottom or rect.height <= 1
    again = model_to_sent(screen_to_model(rounded, space, sent, t), space, sent)
    assert abs(again.x - back_sent.x) <= (0.5 + 1e-5) * per_point[0] + 1e-6
    assert abs(again.y - back_sent.y) <= (0.5 + 1e-5) * per_point[1] + 1e-6


@pytest.mark.parametrize(
    ("transform", "expected"),
    [
        (transform_for_monitor(-1920, 0, 1920, 1080, Size(1920, 1080)), (-1, 1079)),
        (transform_for_monitor(0, 0, 1440, 900, Size(2880, 1800)), (1439, 899)),
        (transform_for_page(Size(1280, 800), 1.5), (1279, 799)),
    ],
)
def test_far_edge_stays_on_surface(transform: FrameTransform, expected: tuple[int, int]) -> None:
    trail = resolve_point(Point(1000, 1000), CoordSpace.NORM1000, Size(1000, 600), transform)
    assert trail.screen.rounded() == expected
    assert (round(trail.screen.x), round(trail.screen.y)) == expected
