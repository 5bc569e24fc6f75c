"""The stall detector judges change where it matters: near the last target (#18).

Typing different words into a field and a counter that changes on every click are progress
and must never be stopped; a true no-op repeated still warns, zooms, then stops.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw
from test_loop_safety import _run

from guiagent.agent.sensing import text_near_reader
from guiagent.core.actions import Click, Key, Type
from guiagent.core.change import Ladder, LoopDetector, frame_difference
from guiagent.core.env import Frame
from guiagent.envs.browser import BrowserEnv
from guiagent.testing.dom_oracle import OracleStep

PAGE = "tests/apps/stall_cases.html"
FAINT = "tests/apps/stall_faint.html"
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


# --- text read near the target (#18): a change of text there is progress -----------------


class _Reader:
    """A text reader per frame that says what it was asked, so a test sees when it runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, tuple[float, float]]] = []

    def for_frame(self, n: int, text: str | None) -> Any:
        def read(point: tuple[float, float]) -> str | None:
            self.calls.append((n, point))
            return text

        return read


def test_text_that_changes_near_the_target_is_progress_when_pixels_see_none() -> None:
    frame = _screen("hello")  # the very same pixels every step
    reader = _Reader()
    with_text, pixels_only = LoopDetector(), LoopDetector()
    ladder, blind = [], []
    for n in range(6):
        action = Click(x=340, y=515)
        ladder.append(with_text.observe(frame.digest, action, frame, reader.for_frame(n, f"{n}")))
        blind.append(pixels_only.observe(frame.digest, action, frame))
    assert ladder == [Ladder.NONE] * 6
    assert blind[-1] is Ladder.STUCK
    assert reader.calls and all(point == (340.0, 515.0) for _, point in reader.calls)


def test_the_same_text_near_the_target_still_climbs_the_ladder() -> None:
    detector, reader = LoopDetector(), _Reader()
    frames = [_screen("hello", caret=n % 2 == 0) for n in range(5)]
    ladder = [
        detector.observe(f.digest, Click(x=340, y=515), f, reader.for_frame(n, " hello\n"))
        for n, f in enumerate(frames)
    ]
    assert ladder == [Ladder.NONE, Ladder.NONE, Ladder.WARN, Ladder.ZOOM, Ladder.STUCK]


def test_an_unreadable_or_failing_text_is_no_evidence() -> None:
    def broken(point: tuple[float, float]) -> str:
        raise RuntimeError("the reader fell over")

    for reader in (lambda point: None, broken):
        detector = LoopDetector()
        frame = _screen("hello")
        ladder = [detector.observe(frame.digest, Click(x=340, y=515), frame, reader)]
        for _ in range(4):
            ladder.append(detector.observe(frame.digest, Click(x=340, y=515), frame, reader))
        assert ladder[-1] is Ladder.STUCK


def test_the_text_is_read_only_when_the_pixels_see_no_change() -> None:
    detector, reader = LoopDetector(), _Reader()
    typed = ""
    steps: list[tuple[Frame, Any]] = [(_screen(), Click(x=500, y=300))]
    for word in WORDS:
        steps.append((_screen(typed, caret=True), Type(text=word)))
        typed += word + " "
    for n, (frame, action) in enumerate(steps):
        assert detector.observe(frame.digest, action, frame, reader.for_frame(n, "same")) is (
            Ladder.NONE
        )
    # only the first Type's frame differs from the click's by no more than the caret: the one
    # comparison the pixels call "no change" reads both frames; new words are seen in pixels
    assert sorted({n for n, _ in reader.calls}) == [0, 1]


def test_a_faint_counter_is_progress_by_the_pages_text(
    async_runner: Any, playwright_browser: Any, static_server: Any
) -> None:
    """Real Chromium: a counter 13 gray levels from the page changes on every click. The
    pixels near the button do not show it; the DOM text read there does."""

    async def clicks() -> tuple[list[Ladder], list[Ladder], list[str]]:
        with_text, pixels_only = LoopDetector(), LoopDetector()
        ladder, blind, counts = [], [], []
        async with BrowserEnv(
            start_url=static_server.url_for(FAINT), browser=playwright_browser
        ) as env:
            box = await env.page.locator("#faint").bounding_box()
            assert box is not None
            click = Click(x=box["x"] + box["width"] / 2, y=box["y"] + box["height"] / 2)
            for _ in range(6):
                frame, dom = await env.observe(), await env.dom_elements()
                reader = text_near_reader(frame, dom, None)
                ladder.append(with_text.observe(frame.digest, click, frame, reader))
                blind.append(pixels_only.observe(frame.digest, click, frame))
                await env.page.click("#faint")
                counts.append(await env.page.inner_text("#count"))
        return ladder, blind, counts

    ladder, blind, counts = async_runner.run(clicks(), timeout=120)
    assert counts == ["1", "2", "3", "4", "5", "6"]  # the clicks did count
    assert Ladder.STUCK in blind  # pixels alone would have stopped this run
    assert ladder == [Ladder.NONE] * 6


def test_a_browser_run_on_a_faint_counter_is_not_stuck(
    async_runner: Any, playwright_browser: Any, static_server: Any, tmp_path: Any
) -> None:
    plan = [OracleStep(kind="click", selector="#faint") for _ in range(8)]
    plan += [OracleStep(kind="finish", text="done")]
    result, _, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(FAINT), plan, tmp_path, max_steps=20),
        timeout=300,
    )
    assert result.status == "finished", result.stop_reason
