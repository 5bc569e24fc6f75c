"""Frame difference, settling, loop detection and zoom regions."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from guiagent.core.actions import Click, Key, Type, Wait
from guiagent.core.change import (
    Ladder,
    LoopDetector,
    action_key,
    frame_difference,
    settle,
    zoom_region,
)
from guiagent.core.env import Frame
from guiagent.core.geometry import Point, Rect, Size


def screen(seed: int = 0, size: tuple[int, int] = (1920, 1080)) -> Image.Image:
    """A UI-like frame: flat panels and some text-sized blocks."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, (236, 239, 244))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x, y = int(rng.integers(0, size[0] - 200)), int(rng.integers(0, size[1] - 40))
        draw.rectangle(
            (x, y, x + int(rng.integers(20, 200)), y + int(rng.integers(8, 40))),
            fill=tuple(int(c) for c in rng.integers(0, 255, 3)),
        )
    return image


def test_frame_difference_values() -> None:
    base = screen(1)
    a = Frame.from_image(base)
    assert frame_difference(a, Frame.from_image(base.copy())) == 0.0
    caret = base.copy()
    ImageDraw.Draw(caret).rectangle((700, 500, 701, 520), fill=(0, 0, 0))  # a blinking caret
    assert 0.0 < frame_difference(a, Frame.from_image(caret)) < 0.002
    half = base.copy()
    ImageDraw.Draw(half).rectangle((0, 0, 959, 1079), fill=(255, 0, 0))
    assert 0.3 < frame_difference(a, Frame.from_image(half)) <= 0.5
    assert frame_difference(a, Frame.from_image(screen(1, (1280, 720)))) == 1.0


def test_detector_with_frames_ignores_a_caret_but_not_a_new_screen() -> None:
    base = screen(4)
    caret = base.copy()
    ImageDraw.Draw(caret).rectangle((905, 301, 906, 318), fill=(0, 0, 0))
    frames = [Frame.from_image(base), Frame.from_image(caret)] * 2
    assert len({f.digest for f in frames}) == 2  # exact digests differ
    detector = LoopDetector(repeat_threshold=3)
    ladder = [detector.observe(f.digest, Click(x=5, y=5), frame=f) for f in frames]
    assert ladder == [Ladder.NONE, Ladder.NONE, Ladder.WARN, Ladder.ZOOM]
    other = Frame.from_image(screen(5))
    assert detector.observe(other.digest, Click(x=5, y=5), frame=other) == Ladder.NONE


class Source:
    """A synthetic screen: ``observe()`` returns a new Frame each call, changing while ``busy(n)``."""

    def __init__(self, busy: callable) -> None:  # type: ignore[valid-type]
        self.busy = busy
        self.calls = 0
        self.base = screen(6, (640, 400))

    async def observe(self) -> Frame:
        self.calls += 1
        image = self.base.copy()
        if self.busy(self.calls):
            draw = ImageDraw.Draw(image)
            x = (self.calls * 37) % 500
            draw.rectangle(
                (x, 100, x + 120, 220), fill=(self.calls * 53 % 255, 10, 200)
            )  # a spinner/animation
        return Frame.from_image(image)


def test_settle_returns_once_a_static_screen_stays_quiet() -> None:
    source = Source(lambda n: False)
    result = asyncio.run(settle(source.observe, quiet_ms=150, timeout_s=3, poll_ms=20))
    assert result.settled is True
    assert 140 <= result.waited_ms < 1500
    assert result.polls == source.calls >= 2


def test_settle_waits_for_an_animation_to_end() -> None:
    source = Source(lambda n: n <= 8)
    result = asyncio.run(settle(source.observe, quiet_ms=150, timeout_s=5, poll_ms=20))
    assert result.settled is True and source.calls > 8
    assert frame_difference(result.frame, Frame.from_image(source.base)) == 0.0


def test_settle_times_out_on_a_screen_that_never_stops() -> None:
    source = Source(lambda n: True)
    start = time.monotonic()
    result = asyncio.run(settle(source.observe, quiet_ms=150, timeout_s=0.6, poll_ms=20))
    elapsed = time.monotonic() - start
    assert result.settled is False
    assert 0.55 <= elapsed < 2.0 and result.waited_ms >= 550


def test_action_key_rounds_points_to_a_grid() -> None:
    assert action_key(Click(x=412, y=300)) == action_key(Click(x=413, y=301))
    assert action_key(Click(x=412, y=300)) != action_key(Click(x=480, y=300))
    assert action_key(Type(text="a")) != action_key(Type(text="b"))
    assert action_key(None) == "none"


def test_ladder_climbs_on_repeats_and_resets_on_screen_change() -> None:
    detector = LoopDetector(window=6, repeat_threshold=3)
    steps = [
        Click(x=412, y=300),
        Click(x=413, y=301),
        Click(x=411, y=299),
        Click(x=412, y=300),
        Click(x=412, y=302),
    ]
    ladder = [detector.observe("screen-a", a) for a in steps]
    assert ladder == [Ladder.NONE, Ladder.NONE, Ladder.WARN, Ladder.ZOOM, Ladder.STUCK]
    assert detector.last_point == (412, 302)
    assert "same thing (click) 5 times" in detector.warning_text()
    # the screen changed: start afresh
    assert detector.observe("screen-b", Click(x=412, y=300)) == Ladder.NONE
    assert detector.observe("screen-c", Key(keys=["enter"])) == Ladder.NONE


def test_ladder_counts_a_still_screen_across_different_actions() -> None:
    detector = LoopDetector(window=6, repeat_threshold=3, still_threshold=4)
    actions = [
        Click(x=100, y=100),
        Click(x=300, y=200),
        Type(text="x"),
        Key(keys=["tab"]),
        Wait(seconds=1),
        Click(x=9, y=9),
    ]
    ladder = [detector.observe("frozen", a) for a in actions]
    assert ladder == [Ladder.NONE, Ladder.NONE, Ladder.NONE, Ladder.WARN, Ladder.ZOOM, Ladder.STUCK]
    assert "has not changed across your last 6 actions" in detector.warning_text()
    detector.reset()
    assert (
        detector.level == Ladder.NONE and detector.observe("frozen", Click(x=1, y=1)) == Ladder.NONE
    )


def test_ladder_catches_oscillation_between_two_screens() -> None:
    detector = LoopDetector(window=6, repeat_threshold=3)
    seen = []
    for _ in range(3):
        seen.append(detector.observe("menu-open", Click(x=50, y=20)))
        seen.append(detector.observe("menu-closed", Click(x=50, y=20)))
    assert seen[:4] == [Ladder.NONE] * 4
    assert seen[4:] == [Ladder.WARN, Ladder.WARN]
    assert detector.observe("menu-open", Click(x=50, y=20)) == Ladder.ZOOM


def test_no_action_steps_do_not_count_as_a_still_screen() -> None:
    detector = LoopDetector(still_threshold=2)
    assert [detector.observe("s", None) for _ in range(2)] == [Ladder.NONE, Ladder.NONE]


def test_zoom_region_centres_and_clamps() -> None:
    size = Size(1920, 1080)
    assert zoom_region(size, Point(960, 540)) == Rect(480, 270, 960, 540)
    assert zoom_region(size, (10, 10), factor=4) == Rect(0, 0, 480, 270)
    assert zoom_region(size, (1915, 1075), factor=3) == Rect(1280, 720, 640, 360)
    with pytest.raises(ValueError, match="factor"):
        zoom_region(size, (1, 1), factor=0.5)
