"""Redaction of frames (real Chromium page, real OCR) and of text."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from guiagent.core.change import settle
from guiagent.core.env import Frame
from guiagent.core.geometry import Point, Rect, Size, transform_for_page
from guiagent.core.redact import (
    PASSWORD_FIELDS_JS,
    REDACTED,
    RedactionError,
    Redactor,
)

SECRET_TOKEN = "sk-Abc123Def456Ghi789Jkl0"
PASSWORD = "hunter2secret"

PAGE = f"""<!doctype html>
<html><body style="margin:0;background:#fff;font:20px sans-serif">
<input id="pw" type="password" value="{PASSWORD}"
       style="position:absolute;left:40px;top:30px;width:200px;height:30px;background:#ffe">
<input id="user" type="text" value="alice" style="position:absolute;left:40px;top:90px;width:200px;height:30px">
<div id="tok" style="position:absolute;left:40px;top:150px;color:#222">{SECRET_TOKEN}</div>
</body></html>
"""

TEXT_NODES_JS = """
() => Array.from(document.querySelectorAll('div')).map(e => {
  const r = e.getBoundingClientRect();
  return {tag: 'div', text: e.textContent, x: r.x, y: r.y, width: r.width, height: r.height};
})
"""


def all_black(frame: Frame, box: tuple[int, int, int, int]) -> bool:
    x, y, w, h = box
    region = np.asarray(frame.image)[y : y + h, x : x + w]
    return region.size > 0 and int(region.max()) == 0


def assert_notes_hold_no_content(notes: list[Any], *contents: str) -> None:
    dumped = " ".join(n.model_dump_json() for n in notes)
    for content in contents:
        assert content not in dumped


@pytest.fixture(scope="module")
def page_capture(
    async_runner: Any, playwright_browser: Any
) -> tuple[Frame, list[dict], list[dict], dict]:
    """A 400x240 CSS px page at device scale 2: frame, password fields, text nodes, element boxes."""

    async def capture() -> tuple[Frame, list[dict], list[dict], dict]:
        context = await playwright_browser.new_context(
            viewport={"width": 400, "height": 240}, device_scale_factor=2
        )
        try:
            page = await context.new_page()
            await page.set_content(PAGE)
            png = await page.screenshot()
            dom = await page.evaluate(PASSWORD_FIELDS_JS)
            texts = await page.evaluate(TEXT_NODES_JS)
            boxes = {
                sel: await page.locator(sel).bounding_box() for sel in ("#pw", "#user", "#tok")
            }
        finally:
            await context.close()
        image = Image.open(io.BytesIO(png)).convert("RGB")
        transform = transform_for_page(Size(400, 240), 2.0, Size(image.width, image.height))
        frame = Frame(
            image=image, transform=transform, surface="browser", meta={"url": "about:blank"}
        )
        return frame, dom, texts, boxes

    return async_runner.run(capture())


def css_to_frame_box(box: dict, scale: float = 2.0) -> tuple[int, int, int, int]:
    return (
        int(box["x"] * scale),
        int(box["y"] * scale),
        int(box["width"] * scale),
        int(box["height"] * scale),
    )


def test_password_field_in_browser_is_blacked_out_at_device_scale(page_capture: Any) -> None:
    frame, dom, _, boxes = page_capture
    assert frame.size == Size(800, 480) and len(dom) == 1
    before = np.asarray(frame.image).copy()
    redacted, notes = asyncio.run(Redactor(secret_patterns=[]).redact(frame, dom=dom))
    pw_box = css_to_frame_box(boxes["#pw"])
    assert all_black(redacted, pw_box)
    assert not all_black(redacted, css_to_frame_box(boxes["#user"]))  # the text field stays
    assert [n.kind for n in notes] == ["password_field"]
    x, y, w, h = notes[0].box
    assert (
        x <= pw_box[0]
        and y <= pw_box[1]
        and x + w >= pw_box[0] + pw_box[2]
        and y + h >= pw_box[1] + pw_box[3]
    )
    assert_notes_hold_no_content(notes, PASSWORD)
    # the original frame is untouched; the copy keeps the transform and is re-hashed
    assert np.array_equal(np.asarray(frame.image), before)
    assert redacted.transform == frame.transform and redacted.digest != frame.digest
    assert redacted.meta["url"] == "about:blank"


def test_secret_text_in_dom_and_listed_region(page_capture: Any) -> None:
    frame, dom, texts, boxes = page_capture
    region = Rect(300, 200, 50, 20)  # screen points (CSS px) -> frame pixels 600,400 100x40
    redactor = Redactor(regions=[region], mask_password_fields=False)
    redacted, notes = asyncio.run(redactor.redact(frame, dom=dom + texts))
    kinds = sorted(n.kind for n in notes)
    assert kinds == ["region", "secret_text"]
    assert all_black(redacted, (600, 400, 100, 40))
    assert all_black(redacted, css_to_frame_box(boxes["#tok"]))
    assert not all_black(redacted, css_to_frame_box(boxes["#pw"]))  # masking turned off
    region_note = next(n for n in notes if n.kind == "region")
    assert region_note.box == [600, 400, 100, 40] and region_note.rule == "regions[0]"
    assert_notes_hold_no_content(notes, SECRET_TOKEN, PASSWORD)


def test_windows_by_title_with_origin_and_clipping() -> None:
    image = Image.new("RGB", (200, 100), (200, 220, 240))
    frame = Frame.from_image(image, surface="desktop")
    # a monitor whose top-left is at screen (1000, 50)
    frame = Frame(
        image=frame.image,
        transform=type(frame.transform)(Size(200, 100), Point(1000, 50), 1.0),
        surface="desktop",
    )
    windows = [
        {"title": "KeePassXC - Passwords", "x": 1010, "y": 60, "width": 30, "height": 20},
        {"title": "Calculator", "x": 1100, "y": 60, "width": 30, "height": 20},
        {
            "title": "Secret notes",
            "x": 1180,
            "y": 130,
            "width": 100,
            "height": 100,
        },  # half off-frame
    ]
    redactor = Redactor(window_titles=["keepass*", "re:^secret"], secret_patterns=[])
    redacted, notes = asyncio.run(redactor.redact(frame, windows=windows))
    assert [(n.kind, n.rule, n.box) for n in notes] == [
        ("window", "window_titles[0]", [10, 10, 30, 20]),
        ("window", "window_titles[1]", [180, 80, 20, 20]),
    ]
    assert all_black(redacted, (10, 10, 30, 20)) and all_black(redacted, (180, 80, 20, 20))
    assert np.asarray(redacted.image)[15, 105].tolist() == [200, 220, 240]  # Calculator untouched


def test_nothing_to_hide_returns_the_frame_unchanged() -> None:
    frame = Frame.from_image(Image.new("RGB", (50, 50), "white"))
    same, notes = asyncio.run(
        Redactor().redact(frame, dom=[{"type": "text", "x": 1, "y": 1, "width": 5, "height": 5}])
    )
    assert same is frame and notes == []


class SharedOcrReader:
    """The project's real RapidOCR engine (shared per process) behind read_text(frame)."""

    def __init__(self) -> None:
        from guiagent.grounding.ocr import shared_engine

        self.engine = shared_engine()
        self.calls = 0

    def read_text(self, frame: Frame) -> list[Any]:
        self.calls += 1
        return self.engine.recognise(frame.array())


def test_ocr_redaction_of_secrets_known_values_and_masked_text() -> None:
    image = Image.new("RGB", (640, 260), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 22)
    draw.text((20, 20), "Hello world", fill="black", font=font)
    draw.text((20, 80), f"Token: {SECRET_TOKEN}", fill="black", font=font)
    draw.text(
        (20, 140), "**********", fill="black", font=font
    )  # a masked password as drawn by toolkits
    draw.text((20, 200), PASSWORD, fill="black", font=font)
    frame = Frame.from_image(image, surface="desktop")
    reader = SharedOcrReader()
    redactor = Redactor(secrets=[PASSWORD], ocr=reader)
    redacted, notes = asyncio.run(redactor.redact(frame))
    assert reader.calls == 1
    by_kind = {n.kind: n for n in notes if n.kind != "secret_text"}
    secrets = [n for n in notes if n.kind == "secret_text"]
    assert set(by_kind) == {"masked_text"} and len(secrets) == 2
    assert {n.rule for n in secrets} == {"secrets[0]", "secret_patterns[1]"}
    for note in notes:
        assert all_black(redacted, tuple(note.box))  # type: ignore[arg-type]
    arr = np.asarray(redacted.image)
    # the token row is black where the text was, the harmless line keeps its dark text
    assert arr[85:100, 100:300].max() == 0
    assert arr[20:45, 20:140].min() < 100 and arr[20:45, 20:140].max() == 255
    assert_notes_hold_no_content(notes, PASSWORD, SECRET_TOKEN, "Token")


def test_redact_text_and_data() -> None:
    r = Redactor(secrets=["hunter2", "hunter2secret"])
    assert r.redact_text("typed hunter2secret then hunter2") == f"typed {REDACTED} then {REDACTED}"
    assert r.redact_text(f"key={SECRET_TOKEN}.") == f"key={REDACTED}."
    assert r.redact_text("AKIAABCDEFGHIJKLMNOP and ghp_" + "x" * 36) == f"{REDACTED} and {REDACTED}"
    assert r.redact_text("nothing here") == "nothing here"
    data = {"action": {"text": "hunter2"}, "history": ["a", "pw hunter2"], "n": 3}
    assert r.redact_data(data) == {
        "action": {"text": REDACTED},
        "history": ["a", f"pw {REDACTED}"],
        "n": 3,
    }
    r.add_secret("tops3cret")
    assert r.redact_text("x tops3cret") == f"x {REDACTED}"


def test_bad_secret_pattern_is_a_named_error() -> None:
    with pytest.raises(RedactionError, match=r"secret_patterns\[1\]"):
        Redactor(secret_patterns=["ok", "(unclosed"])


@pytest.mark.parametrize(
    ("fg", "bg"), [((20, 20, 20), (250, 250, 250)), ((235, 235, 235), (35, 38, 45))]
)
def test_masked_entries_found_by_their_bullets_without_ocr(fg: tuple, bg: tuple) -> None:
    image = Image.new("RGB", (500, 200), bg)
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 15)
    draw.text((20, 30), "Password:", fill=fg, font=font)
    draw.rectangle((120, 22, 360, 52), outline=fg)
    draw.text((128, 29), "●" * 9, fill=fg, font=font)
    draw.text((20, 120), "Hello world, oooo OOOO 0000 Mississippi...", fill=fg, font=font)
    frame = Frame.from_image(image, surface="desktop")
    redacted, notes = asyncio.run(Redactor(secret_patterns=[]).redact(frame))
    assert [n.kind for n in notes] == ["masked_text"]
    x, y, w, h = notes[0].box
    assert 120 <= x <= 132 and y >= 22 and y + h <= 52 and x + w >= 128 + 9 * 9
    assert all_black(redacted, (x, y, w, h))
    assert np.array_equal(
        np.asarray(redacted.image)[100:200], np.asarray(image)[100:200]
    )  # prose untouched
    # with a DOM to ask (a browser), the pixel heuristic stays off
    _, dom_notes = asyncio.run(Redactor(secret_patterns=[]).redact(frame, dom=[]))
    assert dom_notes == []


TK_LOGIN = """
import argparse, tkinter as tk
p = argparse.ArgumentParser(); p.add_argument("--title"); a = p.parse_args()
root = tk.Tk(); root.title(a.title); root.geometry("420x160+200+150"); root.configure(bg="white")
tk.Label(root, text="Password:", bg="white", font=("DejaVu Sans", 12)).place(x=10, y=20)
entry = tk.Entry(root, show="\\u25cf", font=("DejaVu Sans", 12), width=24)
entry.place(x=110, y=18); entry.insert(0, "hunter2secret")
tk.Label(root, text="Hello world, oooo 0000", bg="white", font=("DejaVu Sans", 12)).place(x=10, y=90)
root.mainloop()
"""


def test_real_tk_password_entry_and_window_on_xvfb(
    tmp_path: Any, tk_app_factory: Any, desktop_env: Any, async_runner: Any
) -> None:
    script = tmp_path / "login.py"
    script.write_text(TK_LOGIN)
    app = tk_app_factory(script, title="Login test")
    # wait until Tk has painted (mapped is not drawn), polling real captures
    settled = async_runner.run(settle(desktop_env.observe, quiet_ms=250, timeout_s=10))
    assert settled.settled
    frame = settled.frame
    wx, wy, ww, wh = app.geometry()
    crop = (int(wx), int(wy), int(wx + ww), int(wy + wh))
    assert np.asarray(frame.image.crop(crop)).min() < 80  # the window is on screen with dark text

    redacted, notes = asyncio.run(Redactor(secret_patterns=[]).redact(frame))
    masked = [n for n in notes if n.kind == "masked_text"]
    assert len(masked) == 1, notes
    x, y, w, h = masked[0].box
    assert wx + 100 <= x <= wx + 130 and wy + 15 <= y <= wy + 45 and w >= 60
    assert all_black(redacted, (x, y, w, h))
    label_area = (int(wx) + 10, int(wy) + 85, 200, 30)
    assert not all_black(redacted, label_area)

    windows = [{"title": app.title, "x": wx, "y": wy, "width": ww, "height": wh}]
    hidden, win_notes = asyncio.run(
        Redactor(window_titles=["Login*"], mask_password_fields=False).redact(
            frame, windows=windows
        )
    )
    assert [n.kind for n in win_notes] == ["window"]
    assert all_black(hidden, (int(wx), int(wy), int(ww), int(wh)))
