"""The browser loop's capture at the floor: Chromium's JPEG is sent and recorded as captured
only when redaction touches no pixel; a password field, secret text, a declared secret or a
zoom take the lossless full-resolution path, and what leaves the process is redacted.

Real headless Chromium; the model is the fake server."""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from guiagent.agent.config import AgentConfig
from guiagent.agent.frames import encoded_allowed, needs_full_pixels
from guiagent.agent.loop import Agent
from guiagent.core.env import EncodedImage, Frame
from guiagent.core.geometry import Rect
from guiagent.core.redact import Redactor
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

API_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8I9j0K1l2"
PLAIN_PAGE = (
    "data:text/html,<body style='margin:0;font:40px sans-serif'>"
    "<button id=b style='width:600px;height:300px;font:60px sans-serif'"
    " onclick='this.textContent=++n'>0</button><script>var n=0</script></body>"
)
PASSWORD_PAGE = (
    "data:text/html,<body style='margin:20px;font:20px sans-serif'>"
    "<button id=b onclick='this.textContent=++n'>0</button><script>var n=0</script>"
    "<p><input id=pw type=password value=hunter2hunter2 style='width:300px;height:40px'></p>"
    "</body>"
)
KEY_PAGE = (
    "data:text/html,<body style='margin:20px;font:20px sans-serif'>"
    "<button id=b onclick='this.textContent=++n'>0</button><script>var n=0</script>"
    f"<p id=key>{API_KEY}</p></body>"
)


class CountingBrowserEnv(BrowserEnv):
    """A real BrowserEnv that counts which capture served each frame."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jpeg_frames = 0
        self.lossless_frames = 0

    async def observe(self) -> Frame:
        self.lossless_frames += 1
        return await super().observe()

    async def observe_encoded(self, fit: Any, quality: int) -> Frame | None:
        frame = await super().observe_encoded(fit, quality)
        self.jpeg_frames += frame is not None
        return frame


def _clicks(steps: int, x: float = 100, y: float = 30):
    count = {"n": 0}

    def responder(request: FakeRequest) -> FakeReply:
        count["n"] += 1
        if count["n"] > steps:
            return FakeReply(tool_calls=[("finish", {"answer": "done"})])
        return FakeReply(tool_calls=[("click", {"x": x + count["n"], "y": y})])

    return responder


async def _run(
    browser: Any, url: str, tmp_path: Path, steps: int = 3, **config: Any
) -> tuple[Any, CountingBrowserEnv, FakeModelServer, dict[str, float]]:
    async with CountingBrowserEnv(start_url=url, browser=browser, viewport=(800, 500)) as env:
        with FakeModelServer(_clicks(steps)) as server:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server.url, record_dir=tmp_path / "run", settle=False, **config
                ),
            )
            try:
                result = await agent.run("click the counter")
            finally:
                await agent.close()
        box = await env.page.evaluate(
            "() => { const e = document.querySelector('#pw, #key');"
            " if (!e) return null; const r = e.getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
        )
    return result, env, server, box


def _sent_images(server: FakeModelServer) -> list[bytes]:
    """The image bytes of each request (one image a request)."""
    return [base64.b64decode(r.image_urls[-1].split(",", 1)[1]) for r in server.requests]


def _dark_share(image: Image.Image, box: dict[str, float]) -> float:
    """The share of near-black pixels inside the box (CSS px == frame px at DPR 1)."""
    crop = image.convert("L").crop(
        (
            int(box["x"]) + 1,
            int(box["y"]) + 1,
            int(box["x"] + box["width"]) - 1,
            int(box["y"] + box["height"]) - 1,
        )
    )
    return float((np.asarray(crop) < 30).mean())


def test_a_plain_page_is_sent_and_recorded_as_the_captured_jpeg(
    async_runner, playwright_browser, tmp_path
) -> None:
    result, env, server, _ = async_runner.run(_run(playwright_browser, PLAIN_PAGE, tmp_path))
    assert result.ok, result
    assert env.jpeg_frames >= 3 and env.lossless_frames == 0
    run = load(tmp_path / "run")
    sent = _sent_images(server)
    assert len(sent) == len(run.steps)
    for image, step in zip(sent, run.steps, strict=True):
        assert image[:2] == b"\xff\xd8"  # a JPEG
        # the very bytes the model got are what the recording keeps
        assert (tmp_path / "run" / step.frame).read_bytes() == image
        assert step.frame_size == step.sent_size == [800, 500]
        assert step.redactions == []
    # the counter changed under the clicks: the frames are live captures, not one reused
    assert len(set(sent)) > 1


def test_a_password_field_on_screen_takes_the_lossless_path_and_is_blacked_out(
    async_runner, playwright_browser, tmp_path
) -> None:
    result, env, server, box = async_runner.run(_run(playwright_browser, PASSWORD_PAGE, tmp_path))
    assert result.ok, result
    assert box is not None
    # a JPEG was captured each turn, seen to need redaction, and replaced by the lossless frame
    assert env.lossless_frames >= len(server.requests)
    run = load(tmp_path / "run")
    for data, step in zip(_sent_images(server), run.steps, strict=True):
        assert _dark_share(Image.open(io.BytesIO(data)), box) > 0.95
        recorded = Image.open(tmp_path / "run" / step.frame)
        assert _dark_share(recorded, box) > 0.95
        assert [r["kind"] for r in step.redactions] == ["password_field"]


def test_secret_text_in_the_dom_takes_the_lossless_path_and_is_blacked_out(
    async_runner, playwright_browser, tmp_path
) -> None:
    result, env, server, box = async_runner.run(_run(playwright_browser, KEY_PAGE, tmp_path))
    assert result.ok, result
    assert env.lossless_frames >= len(server.requests)
    for request in server.requests:
        assert API_KEY.encode() not in request.raw
    run = load(tmp_path / "run")
    for data, step in zip(_sent_images(server), run.steps, strict=True):
        assert _dark_share(Image.open(io.BytesIO(data)), box) > 0.95
        assert any(r["kind"] == "secret_text" for r in step.redactions)
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_declared_secrets_or_png_never_use_the_captured_jpeg(
    async_runner, playwright_browser, tmp_path
) -> None:
    # a declared secret: the final OCR pass reads the pixels about to be sent
    result, env, _, _ = async_runner.run(
        _run(playwright_browser, PLAIN_PAGE, tmp_path / "a", secrets=["opensesame-42"])
    )
    assert result.ok and env.jpeg_frames == 0 and env.lossless_frames >= 3
    result, env, server, _ = async_runner.run(
        _run(playwright_browser, PLAIN_PAGE, tmp_path / "b", image_format="png")
    )
    assert result.ok and env.jpeg_frames == 0
    assert all(data[:4] == b"\x89PNG" for data in _sent_images(server))


# --- the decisions, without a browser ---------------------------------------------------


def _frame(width: int = 200, height: int = 100) -> Frame:
    return Frame.from_image(Image.new("RGB", (width, height), "white"), surface="browser")


def _with_jpeg(frame: Frame, quality: int = 90) -> Frame:
    buffer = io.BytesIO()
    frame.image.save(buffer, format="JPEG", quality=quality)
    encoded = EncodedImage(buffer.getvalue(), "JPEG", quality, frame.image)
    return replace(frame, encoded=encoded)


def test_captured_bytes_stand_only_for_the_image_they_were_decoded_to() -> None:
    frame = _with_jpeg(_frame())
    assert frame.encoded_as("jpeg", 90) == frame.encoded_as("JPG", 90) is not None
    assert frame.encoded_as("jpeg", 80) is None and frame.encoded_as("png", 90) is None
    # a new image (a redaction, a zoom) no longer has the captured bytes
    assert replace(frame, image=frame.image.copy()).encoded_as("jpeg", 90) is None


def test_redaction_that_paints_drops_the_captured_bytes() -> None:
    frame = _with_jpeg(_frame())
    password = [
        {"tag": "input", "type": "password", "box": {"x": 10, "y": 10, "width": 50, "height": 20}}
    ]
    shown, notes = asyncio.run(Redactor().redact(frame, password))
    assert notes and shown.encoded_as("jpeg", 90) is None
    same, none = asyncio.run(
        Redactor().redact(frame, [{"tag": "p", "text": "hello", "box": [0, 0, 9, 9]}])
    )
    assert not none and same is frame and same.encoded_as("jpeg", 90) is not None


def test_full_pixels_are_needed_for_any_box_no_dom_or_a_pixel_pass() -> None:
    frame = _frame()
    plain = [{"tag": "p", "text": "hello", "box": [0, 0, 50, 20]}]
    redactor = Redactor()
    assert not needs_full_pixels(redactor, frame, plain)
    assert needs_full_pixels(redactor, frame, None)  # navigating: the bullet scan runs
    assert needs_full_pixels(
        redactor, frame, [{"tag": "input", "type": "password", "box": [0, 0, 9, 9]}]
    )
    assert needs_full_pixels(redactor, frame, [{"tag": "p", "text": API_KEY, "box": [0, 0, 9, 9]}])
    assert needs_full_pixels(Redactor(regions=[Rect(0, 0, 5, 5)]), frame, plain)
    assert needs_full_pixels(Redactor(window_titles=["Vault"]), frame, plain)
    with_secret = Redactor(secrets=["opensesame-42"], final_ocr=_SpyReader())
    assert needs_full_pixels(with_secret, frame, plain)
    config = AgentConfig()
    assert encoded_allowed(config, redactor, zoom_pending=False)
    assert not encoded_allowed(config, redactor, zoom_pending=True)
    assert not encoded_allowed(config, with_secret, zoom_pending=False)
    assert not encoded_allowed(AgentConfig(image_format="png"), redactor, zoom_pending=False)


class _SpyReader:
    def __init__(self) -> None:
        self.calls = 0

    def read_text(self, frame: Frame) -> list[Any]:
        self.calls += 1
        return []


def _bullets() -> Frame:
    image = Image.new("RGB", (240, 60), "white")
    draw = ImageDraw.Draw(image)
    for i in range(8):
        draw.ellipse((20 + i * 20, 22, 32 + i * 20, 34), fill="black")
    return Frame.from_image(image, surface="browser")


@pytest.mark.parametrize("has_dom", [True, False])
@pytest.mark.parametrize("kind", ["none", "ocr", "final", "final_declared"])
def test_reads_pixels_says_whether_redact_reads_them(has_dom: bool, kind: str) -> None:
    spy = _SpyReader()
    options: dict[str, Any] = {
        "none": {},
        "ocr": {"ocr": spy},
        "final": {"final_ocr": spy},
        "final_declared": {"final_ocr": spy, "secrets": ["opensesame-42"]},
    }[kind]
    redactor = Redactor(**options)
    frame = _bullets()  # masked text the bullet scan finds, when it runs
    dom = [{"tag": "p", "text": "hello", "box": [0, 0, 9, 9]}] if has_dom else None
    shown, notes = asyncio.run(redactor.redact(frame, dom))
    read = spy.calls > 0 or any(n.kind == "masked_text" for n in notes)
    assert redactor.reads_pixels(has_dom) == read
    if not redactor.reads_pixels(has_dom):
        assert shown is frame and notes == []
