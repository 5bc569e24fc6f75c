"""Benchmark: encoding a 1920x1080 frame for the model, by format and with the budget plan.

Entries: PNG (Pillow's default level, and level 1), JPEG q90 at full size, and JPEG q90
after resizing to the default Step3-VL plan (the path the agent takes), plus planning
itself. JPEG entries carry the default PNG encode as their baseline.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from guiagent.bench import median_ms
from guiagent.core.geometry import Size
from guiagent.models.budget import DEFAULT_MAX_IMAGE_TOKENS, ImagePlan, encode_image, plan_image


def synthetic_screen(width: int = 1920, height: int = 1080) -> Image.Image:
    """A desktop-like frame: flat panels, text-like strokes, one photo-like region."""
    image = Image.new("RGB", (width, height), (236, 238, 242))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 40), fill=(40, 44, 52))
    draw.rectangle((0, 40, 280, height), fill=(250, 250, 252))
    for row in range(60, height - 20, 26):
        for col in range(300, width - 200, 180):
            draw.text((col, row), f"Item {row // 26}-{col // 180} value", fill=(30, 30, 30))
    for i in range(12):
        draw.rounded_rectangle(
            (20, 60 + i * 48, 260, 96 + i * 48), radius=6, outline=(120, 120, 140)
        )
        draw.text((36, 70 + i * 48), f"Menu entry {i}", fill=(20, 20, 20))
    rng = np.random.default_rng(7)
    photo = rng.integers(0, 255, (300, 480, 3), dtype=np.uint8)
    image.paste(Image.fromarray(photo), (1380, 600))
    return image


def _save(image: Image.Image, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, **kwargs)  # type: ignore[arg-type]
    return buffer.getvalue()


def run(quick: bool = False) -> list[dict]:
    repeats = 5 if quick else 25
    frame = synthetic_screen()
    size = Size(frame.width, frame.height)
    plan = plan_image(size, DEFAULT_MAX_IMAGE_TOKENS)
    half = ImagePlan(frame=size, sent=Size(960, 540), tokens=504, scale=0.5)
    to_720 = ImagePlan(frame=size, sent=Size(1280, 720), tokens=670, scale=2 / 3)

    png = median_ms(lambda: _save(frame, format="PNG"), repeats)
    results: list[dict] = [
        {
            "name": "png_default_1920x1080",
            "median_ms": png,
            "note": f"{len(_save(frame, format='PNG'))} bytes",
        },
        {
            "name": "png_level1_1920x1080",
            "median_ms": median_ms(lambda: _save(frame, format="PNG", compress_level=1), repeats),
        },
    ]

    def jpeg_entry(name: str, fn: Callable[[], bytes], note: str) -> dict:
        median = median_ms(fn, repeats)
        return {
            "name": name,
            "median_ms": median,
            "baseline_ms": png,
            "ratio": median / png if png else None,
            "note": f"{note}; {len(fn())} bytes",
        }

    results.append(
        jpeg_entry(
            "jpeg_q90_1920x1080", lambda: _save(frame, format="JPEG", quality=90), "full size"
        )
    )
    results.append(
        jpeg_entry(
            f"jpeg_q90_plan_{plan.sent.width}x{plan.sent.height}",
            lambda: encode_image(frame, plan),
            f"default budget {DEFAULT_MAX_IMAGE_TOKENS} tokens, bilinear resize",
        )
    )
    results.append(
        jpeg_entry("jpeg_q90_1280x720", lambda: encode_image(frame, to_720), "bilinear resize")
    )
    results.append(
        jpeg_entry(
            "jpeg_q90_960x540", lambda: encode_image(frame, half), "integer factor: reduce(2)"
        )
    )
    results.append(
        {
            "name": "plan_image_1920x1080",
            "median_ms": median_ms(lambda: plan_image(size, DEFAULT_MAX_IMAGE_TOKENS), repeats),
        }
    )
    return results
