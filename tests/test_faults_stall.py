"""The stall detector judges change where it matters: near the last target (#18).

Typing different words into a field and a counter that changes on every click are progress
and must never be stopped; a true no-op repeated still warns, zooms, then stops.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw
from test_loop_safety import _run

from guiagent.core.actions import Click, Key, Type
from guiagent.core.change import Ladder, LoopDetector, frame_difference
from guiagent.core.env import Frame
from guiagent.testing.dom_oracle import OracleStep

PAGE = "tests/apps/stall_cases.html"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]


def _screen(field: str = "", count: int | None = None, caret: bool = False) -> Frame:
    image = Image.new("RGB", (1920, 1080), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((300, 280, 700, 320), fill=(255, 255, 255), outline=(0, 0, 0))
    draw.text((310, 292), field, fill=(0, 0, 0))
    if caret:
        x = 312 + 6 * len(field)
        draw.line((x, 286, x, 314), fill=(0, 0, 0), width=2)
    draw.rectangle((300, 500, 380, 530), fill=(200, 200, 255))
    if count is not None:
        draw.text((400, 510), str(count), fill=(0, 0, 0))
    return Frame.from_image(image)


def test_typing_different_words_is_progress() -> None:
    detector = LoopDetector()
    typed = ""
    frames_and_actions: list[tuple[Frame, Any]] = [(_screen(), Click(x=500, y=300))]
    for word in WORDS:
        frames_and_actions.append((_screen(typed, caret=True), Type(text=word)))
        typed += word + " "
    before = frames_and_actions[0][0]
    assert frame_difference(before, frames_and_actions[-1][0]) < 0.002  # under the old threshold
    ladder = [detector.observe(f.digest, a, frame=f) for f, a in frames_and_actions]
    assert ladder == [Ladder.NONE] * len(ladder)


def test_a_counter_that_changes_every_click_is_progress() -> None:
    detector = LoopDetector()
    ladder = [
        detector.observe(f.digest, Click(x=340, y=515), frame=f)
        for f in (_screen(count=n) for n in range(8))
    ]
    assert ladder == [Ladder.NONE] * 8


def test_distinct_key_presses_that_change_a_display_are_progress() -> None:
    detector = LoopDetector()
    ladder = []
    for n, key in enumerate("7+8=15-3*"):
        frame = _screen(field="7+8=15-3*"[:n])
        ladder.append(detector.observe(frame.digest, Key(keys=[key]), frame=frame))
    assert ladder == [Ladder.NONE] * len(ladder)


def test_a_true_noop_with_a_blinking_caret_still_climbs_the_ladder() -> None:
    detector = LoopDetector()
    frames = [_screen("hello", caret=n % 2 == 0) for n in range(5)]
    ladder = [detector.observe(f.digest, Click(x=340, y=515), frame=f) for f in frames]
    assert ladder == [Ladder.NONE, Ladder.NONE, Ladder.WARN, Ladder.ZOOM, Ladder.STUCK]


def test_a_browser_run_typing_six_words_and_counting_is_not_stuck(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Any
) -> None:
    plan = [OracleStep(kind="click", selector="#field")]
    plan += [OracleStep(kind="type", text=word + " ") for word in WORDS]
    plan += [OracleStep(kind="click", selector="#more") for _ in range(8)]
    plan += [OracleStep(kind="finish", text="done")]
    result, _, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), plan, tmp_path, max_steps=40),
        timeout=300,
    )
    assert result.status == "finished", result.stop_reason


def test_a_browser_run_clicking_a_dead_button_is_stopped_as_stuck(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Any
) -> None:
    plan = [OracleStep(kind="click", selector="#dead") for _ in range(10)]
    plan += [OracleStep(kind="finish", text="done")]
    result, server, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), plan, tmp_path, max_steps=40),
        timeout=300,
    )
    assert result.status == "stopped" and result.stop_reason.startswith("stuck")
    sent = [str(r.body["messages"]) for r in server.requests]
    assert any("Do not repeat it" in text for text in sent)
