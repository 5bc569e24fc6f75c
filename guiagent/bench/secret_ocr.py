"""Benchmark: the final OCR pass for secrets (:class:`ChangedTextScan`), per step.

When secrets are known, the image sent to the model and saved is read once more, but only
where it changed since the last checked frame, only where there is ink, and (in a
browser) outside the boxes whose text the DOM already gave. Figures per step, after the
first frame (reported on its own: everything is new then):

- unchanged: the next frame is identical (a still screen);
- caret blink: a caret toggles (two states, both read before: the crop cache answers);
- typing: one more character in a text line (that line is read again).

On the page, the typed field's value is DOM text, so typing costs no OCR there; on the
desktop it does. Target: under 30 ms median when little changed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from guiagent.core.geometry import Rect
from guiagent.core.redact import ChangedTextScan


def _font(size: int) -> Any:
    try:
        return ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default(size=size)


def _screen(width: int, height: int, typed: str, caret: bool) -> tuple[Image.Image, list[Rect]]:
    """A window of text lines and a text field; returns the image and its text-line boxes."""
    image = Image.new("RGB", (width, height), (246, 247, 249))
    draw = ImageDraw.Draw(image)
    font = _font(16)
    lines: list[Rect] = []
    for i, y in enumerate(range(80, height - 200, 56)):
        text = f"Item {i}: an ordinary line of text on the screen"
        draw.text((60, y), text, fill=(30, 30, 30), font=font)
        lines.append(Rect(56, y - 4, 16 * len(text) * 0.55 + 8, 28))
    field = (60, height - 140, 660, height - 104)
    draw.rectangle(field, outline=(120, 120, 120), fill="white")
    draw.text((field[0] + 8, field[1] + 8), typed, fill=(0, 0, 0), font=font)
    if caret:
        x = field[0] + 10 + draw.textlength(typed, font=font)
        draw.line((x, field[1] + 6, x, field[3] - 6), fill=(0, 0, 0), width=1)
    return image, lines


def _steps(width: int, height: int, dom: bool, reader: Any, repeat: int) -> dict[str, float]:
    scan = ChangedTextScan(reader)

    def step(typed: str, caret: bool, with_field: bool = False) -> float:
        image, lines = _screen(width, height, typed, caret)
        known = lines + ([Rect(60, height - 140, 600, 36)] if with_field else []) if dom else []
        started = time.perf_counter()
        asyncio.run(scan.scan(image, known))
        return (time.perf_counter() - started) * 1000

    first = step("", False)
    unchanged = [step("", False) for _ in range(repeat)]
    blink = [step("", n % 2 == 0) for n in range(repeat)]
    word = "correct horse battery staple"
    typing = [step(word[: n + 1], False, with_field=True) for n in range(repeat)]
    return {
        "first": first,
        "unchanged": statistics.median(unchanged),
        "blink": statistics.median(blink),
        "typing": statistics.median(typing),
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    from guiagent.agent.untrusted import LazyLocalReader

    repeat = 4 if quick else 12
    reader = LazyLocalReader()
    results: list[dict[str, Any]] = []
    for label, (width, height), dom in (
        ("desktop 1920x1080", (1920, 1080), False),
        ("page 1280x800", (1280, 800), True),
    ):
        figures = _steps(width, height, dom, reader, repeat)
        for case in ("unchanged", "blink", "typing"):
            results.append(
                {
                    "name": f"secret OCR pass, {label}, {case}",
                    "median_ms": figures[case],
                    "baseline_ms": figures["first"],
                    "ratio": figures[case] / figures["first"] if figures["first"] else None,
                    "note": "baseline: the first frame (all of it read)",
                }
            )
    return results
