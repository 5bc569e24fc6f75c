"""Calibration names the coordinate convention a (fake) served model answers in."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Browser

from guiagent.commands import calibrate as calibrate_command
from guiagent.core.geometry import CoordSpace, Point, Rect, Size, sent_to_model
from guiagent.eval.calibrate import (
    CalibrationReport,
    CalibrationTarget,
    answer_numbers,
    calibrate,
    calibration_targets,
    find_target,
    read_answer,
)
from guiagent.models.openai_client import ModelClient
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest
from guiagent.testing.fixtures import AsyncRunner

pytestmark = pytest.mark.browser

VIEWPORT = (1280, 800)
TARGETS = calibration_targets(VIEWPORT)


@pytest.fixture
def run_with_browser(
    async_runner: AsyncRunner, playwright_browser: Browser
) -> Callable[..., CalibrationReport]:
    """calibrate() on the session's Chromium and event loop."""

    def run(url: str, **kwargs: Any) -> CalibrationReport:
        async def go() -> CalibrationReport:
            async with ModelClient(url) as client:
                return await calibrate(
                    client, viewport=VIEWPORT, browser=playwright_browser, **kwargs
                )

        return async_runner.run(go())

    return run


def _target(request: FakeRequest) -> tuple[CalibrationTarget, float, Size]:
    target = find_target(TARGETS, request.last_user_text)
    assert target is not None, request.last_user_text
    size = request.image_size
    assert size is not None
    return target, size.width / VIEWPORT[0], size


def centre_fake(space: CoordSpace) -> Callable[[FakeRequest], FakeReply]:
    """A model that answers each target's true centre as x/y in ``space``."""

    def respond(request: FakeRequest) -> FakeReply:
        target, scale, size = _target(request)
        c = target.rect.centre
        model = sent_to_model(Point(c.x * scale, c.y * scale), space, size)
        return FakeReply(
            reasoning="The target is there.", tool_calls=[("click", {"x": model.x, "y": model.y})]
        )

    return respond


def box_fake(space: CoordSpace, fmt: str) -> Callable[[FakeRequest], FakeReply]:
    """A model that answers a box around the target, in text, as xyxy or xywh."""

    def respond(request: FakeRequest) -> FakeReply:
        target, scale, size = _target(request)
        r = target.rect
        tl = sent_to_model(Point(r.left * scale, r.top * scale), space, size)
        br = sent_to_model(Point(r.right * scale, r.bottom * scale), space, size)
        numbers = (
            [tl.x, tl.y, br.x, br.y] if fmt == "xyxy" else [tl.x, tl.y, br.x - tl.x, br.y - tl.y]
        )
        return FakeReply(content=f"The element is at [{', '.join(f'{n:.4f}' for n in numbers)}].")

    return respond


def test_targets_layout() -> None:
    assert len(TARGETS) == 14
    assert {t.kind for t in TARGETS} == {"button", "icon"}
    assert len({t.instruction for t in TARGETS}) == len(TARGETS)
    sizes = {(t.width, t.height) for t in TARGETS}
    assert len(sizes) >= 6
    for i, a in enumerate(TARGETS):
        assert (
            a.left >= 0
            and a.rect.right <= VIEWPORT[0]
            and a.top >= 0
            and a.rect.bottom <= VIEWPORT[1]
        )
        for b in TARGETS[i + 1 :]:
            overlap = not (
                a.rect.right <= b.left
                or b.rect.right <= a.left
                or a.rect.bottom <= b.top
                or b.rect.bottom <= a.top
            )
            assert not overlap, (a.label, b.label)
    # spread: targets in every quarter of the frame
    quarters = {(t.rect.centre.x > 640, t.rect.centre.y > 400) for t in TARGETS}
    assert len(quarters) == 4


@pytest.mark.parametrize("space", list(CoordSpace))
def test_calibrate_names_the_space(
    run_with_browser: Callable[..., CalibrationReport], space: CoordSpace
) -> None:
    with FakeModelServer(centre_fake(space)) as server:
        report = run_with_browser(server.url)
        requests = list(server.requests)
    assert report.coord_space is space
    assert report.best.accuracy == 1.0
    assert report.best.mean_error_px is not None and report.best.mean_error_px < 1.0
    assert report.answer_shape == "point"
    assert report.shapes == {"point": 14, "box": 0, "none": 0}
    assert report.settings() == [f"--coord-space {space.value}"]
    others = [h for h in report.hypotheses if h.space is not space]
    assert all(h.hits < report.best.hits for h in others)
    # one request per target; the prompt gives the size, never the space
    assert len(requests) == len(TARGETS)
    sent = requests[0].image_size
    assert sent is not None and report.sent == (sent.width, sent.height)
    for request in requests:
        text = request.last_user_text
        assert f"{sent.width}x{sent.height}" in text
        blob = (text + json.dumps(request.tools)).lower()
        for hint in ("1000", "0..1", "normal", "fraction", "pixels of"):
            assert hint not in blob, hint


@pytest.mark.parametrize(
    ("space", "fmt"), [(CoordSpace.NORM1000, "xyxy"), (CoordSpace.IMAGE, "xywh")]
)
def test_calibrate_box_answers(
    run_with_browser: Callable[..., CalibrationReport], space: CoordSpace, fmt: str
) -> None:
    with FakeModelServer(box_fake(space, fmt)) as server:
        report = run_with_browser(server.url)
    assert report.answer_shape == "box"
    assert report.best.space is space
    assert report.best.box_format == fmt
    assert report.best.accuracy == 1.0


def test_calibrate_with_smaller_budget(run_with_browser: Callable[..., CalibrationReport]) -> None:
    with FakeModelServer(centre_fake(CoordSpace.NORM1)) as server:
        report = run_with_browser(server.url, max_image_tokens=400)
    assert report.sent[0] < 1280
    assert report.coord_space is CoordSpace.NORM1
    assert report.best.accuracy == 1.0


def test_unreadable_answers(run_with_browser: Callable[..., CalibrationReport]) -> None:
    with FakeModelServer(lambda request: FakeReply(content="I cannot tell.")) as server:
        report = run_with_browser(server.url)
    assert report.shapes["none"] == 14
    assert report.answer_shape == "none"
    assert all(h.hits == 0 and h.answered == 0 for h in report.hypotheses)


def test_answer_reading() -> None:
    assert answer_numbers({"x": "12", "y": 30}) == [12.0, 30.0]
    assert answer_numbers({"bbox": [1, 2, 3, 4]}) == [1.0, 2.0, 3.0, 4.0]
    assert answer_numbers({"point": "<point>5 6</point>"}) == [5.0, 6.0]
    assert answer_numbers({"text": "hello"}) is None
    sent = Size(1000, 500)
    assert read_answer([500, 500], CoordSpace.NORM1000, "xyxy", sent) == Point(500, 250)
    assert read_answer([0.25, 0.25, 0.75, 0.5], CoordSpace.NORM1, "xyxy", sent) == Point(500, 187.5)
    assert read_answer([10, 20, 30, 40], CoordSpace.IMAGE, "xywh", sent) == Point(25, 40)
    assert TARGETS[0].rect == Rect(
        TARGETS[0].left, TARGETS[0].top, TARGETS[0].width, TARGETS[0].height
    )


def test_calibrate_command(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="guiagent calibrate")
    calibrate_command.add_arguments(parser)
    with FakeModelServer(centre_fake(CoordSpace.NORM1000)) as server:
        assert calibrate_command.run(parser.parse_args(["--model-url", server.url])) == 0
    printed = capsys.readouterr().out
    assert "--coord-space norm1000" in printed
    assert "the model answers in norm1000 coordinates" in printed
    assert "100%" in printed and "14 points" in printed


def test_report_summary_is_json(run_with_browser: Callable[..., CalibrationReport]) -> None:
    with FakeModelServer(centre_fake(CoordSpace.IMAGE)) as server:
        report = run_with_browser(server.url)
    summary = json.loads(json.dumps(report.summary()))
    assert summary["best"] == {"space": "image", "box_format": "xyxy", "accuracy": 1.0}
    assert summary["settings"] == ["--coord-space image"]
    assert len(summary["hypotheses"]) == 6


def test_calibrate_command_errors(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="guiagent calibrate")
    calibrate_command.add_arguments(parser)
    assert (
        calibrate_command.run(parser.parse_args(["--model-url", "http://x", "--profile", "nope"]))
        == 2
    )
    assert "unknown model profile" in capsys.readouterr().out
    assert (
        calibrate_command.run(parser.parse_args(["--model-url", "http://x", "--viewport", "0x0"]))
        == 2
    )


def test_calibrate_recommends_nothing_from_unreadable_answers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="guiagent calibrate")
    calibrate_command.add_arguments(parser)
    with FakeModelServer(lambda request: FakeReply(content="ok")) as server:
        assert calibrate_command.run(parser.parse_args(["--model-url", server.url])) == 1
    printed = capsys.readouterr().out
    assert "no recommendation" in printed and "0%" in printed
    assert "--coord-space" not in printed and "the model answers in" not in printed
