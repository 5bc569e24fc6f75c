"""The desktop's password-dot scan rescans only the rows that changed since the last frame,
and still finds every masked entry a full scan finds: one appearing in a new place, one
growing by a dot, one that changes by a single gray level, and a real Tk entry on Xvfb."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from guiagent.core.actions import Click, Type
from guiagent.core.bullets import BulletScan, find_bullet_runs
from guiagent.core.change import settle
from guiagent.core.env import Frame
from guiagent.core.redact import Redactor

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _screen(seed: int = 3) -> Image.Image:
    """A desktop-like 1280x720 frame: panels, prose with round letters, no dots."""
    rng = random.Random(seed)
    image = Image.new("RGB", (1280, 720), (236, 238, 242))
    draw = ImageDraw.Draw(image)
    font = ImageFont.truetype(FONT, 15)
    draw.rectangle((0, 0, 1280, 36), fill=(40, 44, 52))
    for row in range(60, 700, 28):
        words = " ".join(
            rng.choice(["oooo", "Hello", "0000", "OOO", "world", "ok"]) for _ in range(9)
        )
        draw.text((20 + (row * 7) % 200, row), words, fill=(30, 30, 30), font=font)
    return image


def _dots(
    image: Image.Image, x: int, y: int, count: int, fill: tuple = (20, 20, 20)
) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((x - 8, y - 6, x + 18 * 14, y + 22), fill=(250, 250, 250), outline=(90, 90, 90))
    draw.text((x, y), "●" * count, fill=fill, font=ImageFont.truetype(FONT, 15))
    return out


def _disks(image: Image.Image, x: int, y: int, count: int, gray: int) -> Image.Image:
    """Hard-edged dots (no anti-aliasing) of one gray level on a light field."""
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((x - 8, y - 8, x + 16 * count + 8, y + 18), fill=(250, 250, 250))
    for i in range(count):
        draw.ellipse((x + 16 * i, y, x + 16 * i + 9, y + 9), fill=(gray, gray, gray))
    return out


def _key(rects: list) -> set[tuple[float, float, float, float]]:
    return {(r.left, r.top, r.width, r.height) for r in rects}


def test_incremental_scan_equals_a_full_scan_over_a_changing_stream() -> None:
    base = _screen()
    frames = [
        base,
        _dots(base, 900, 400, 3),  # three dots: not yet a masked entry
        _dots(base, 900, 400, 4),  # the fourth dot, typed in place: now it is
        _dots(_dots(base, 900, 400, 9), 300, 120, 6),  # a second field elsewhere
        _dots(_dots(base, 900, 400, 9), 300, 120, 6).transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        _dots(base, 40, 690, 5),  # at the bottom edge
        base,  # both gone
    ]
    scan = BulletScan()
    for i, image in enumerate(frames):
        assert _key(scan.find(image)) == _key(find_bullet_runs(image)), f"frame {i}"
    assert _key(BulletScan().find(frames[2])), "the fourth dot makes a masked entry"


def test_a_small_change_rescans_a_band_not_the_frame() -> None:
    base = _dots(_screen(), 900, 400, 6)
    scan = BulletScan()
    assert len(scan.find(base)) == 1
    assert scan.last_bands == [(0, base.height)]
    assert len(scan.find(base)) == 1 and scan.last_bands == []  # nothing changed: nothing read
    grown = _dots(_screen(), 900, 400, 7)
    runs = scan.find(grown)
    assert _key(runs) == _key(find_bullet_runs(grown))
    assert len(scan.last_bands) == 1
    top, bottom = scan.last_bands[0]
    assert top <= 400 and bottom >= 422 and bottom - top < base.height / 2


def test_dots_one_gray_level_darker_are_found_though_a_thumbnail_would_not_see_it() -> None:
    """Side door: a change far under any thumbnail threshold (111 -> 109 gray, just across
    the dark-ink cut) still marks its rows changed: the comparison is exact."""
    base = _screen()
    faint = _disks(base, 600, 300, 8, 111)
    dark = _disks(base, 600, 300, 8, 109)
    scan = BulletScan()
    assert find_bullet_runs(faint) == [] and scan.find(faint) == []
    found = scan.find(dark)
    assert len(found) == 1 and _key(found) == _key(find_bullet_runs(dark))


def test_redactor_masks_a_field_appearing_between_two_desktop_frames() -> None:
    redactor = Redactor(secret_patterns=[])
    base = _screen()
    plain = Frame.from_image(base, surface="desktop")
    first, notes = asyncio.run(redactor.redact(plain))
    assert notes == [] and first is plain
    shown = _dots(base, 700, 500, 10)
    redacted, notes = asyncio.run(redactor.redact(Frame.from_image(shown, surface="desktop")))
    assert [n.kind for n in notes] == ["masked_text"]
    x, y, w, h = notes[0].box
    assert x <= 702 and 498 <= y <= 512 and x + w >= 700 + 10 * 9
    assert int(np.asarray(redacted.image)[y : y + h, x : x + w].max()) == 0
    # the same frame again: the unchanged field is still masked (kept, not rescanned)
    again, notes = asyncio.run(redactor.redact(Frame.from_image(shown, surface="desktop")))
    assert [n.kind for n in notes] == ["masked_text"] and notes[0].box == [x, y, w, h]
    assert int(np.asarray(again.image)[y : y + h, x : x + w].max()) == 0


TK_ENTRY = """
import argparse, tkinter as tk
p = argparse.ArgumentParser(); p.add_argument("--title"); a = p.parse_args()
root = tk.Tk(); root.title(a.title); root.geometry("420x120+300+300"); root.configure(bg="white")
tk.Label(root, text="Password:", bg="white", font=("DejaVu Sans", 12)).place(x=10, y=20)
entry = tk.Entry(root, show="\\u25cf", font=("DejaVu Sans", 12), width=24)
entry.place(x=110, y=18); entry.focus_set()
root.mainloop()
"""


def test_real_tk_entry_typed_into_between_two_redacted_frames(
    tmp_path: Any, tk_app_factory: Any, desktop_env: Any, async_runner: Any
) -> None:
    script = tmp_path / "entry.py"
    script.write_text(TK_ENTRY)
    app = tk_app_factory(script, title="Entry test")
    redactor = Redactor(secret_patterns=[])
    before = async_runner.run(settle(desktop_env.observe, quiet_ms=250, timeout_s=10))
    _, notes = async_runner.run(redactor.redact(before.frame))
    assert [n for n in notes if n.kind == "masked_text"] == []
    wx, wy, _, _ = app.geometry()
    async_runner.run(desktop_env.act(Click(x=wx + 200, y=wy + 30)))
    async_runner.run(desktop_env.act(Type(text="hunter2secret")))
    after = async_runner.run(settle(desktop_env.observe, quiet_ms=250, timeout_s=10))
    redacted, notes = async_runner.run(redactor.redact(after.frame))
    masked = [n for n in notes if n.kind == "masked_text"]
    assert len(masked) == 1, notes
    x, y, w, h = masked[0].box
    assert wx + 100 <= x <= wx + 130 and wy + 10 <= y <= wy + 45 and w >= 60
    assert int(np.asarray(redacted.image)[y : y + h, x : x + w].max()) == 0
    assert _key(redactor._bullets.find(after.frame.image)) == _key(
        find_bullet_runs(after.frame.image)
    )
