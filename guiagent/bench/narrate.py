"""Benchmarks for narration's pure parts: reading order of a busy screen (against the plain
row sort OCR uses), change detection between two narrations, and SSML rendering."""

from __future__ import annotations

import random
from typing import Any

from guiagent.bench import median_ms
from guiagent.core.geometry import Rect
from guiagent.grounding.ocr import TextBox
from guiagent.grounding.ocr import reading_order as row_order
from guiagent.narrate.layout import reading_order
from guiagent.narrate.narrator import finish
from guiagent.narrate.render import to_ssml
from guiagent.narrate.schema import Item, Region
from guiagent.narrate.watch import diff_narrations


def _screen(lines: int, seed: int = 7) -> list[Rect]:
    """Two columns of ragged text lines under a heading, with a button row below."""
    rng = random.Random(seed)
    rects = [Rect(40, 20, 900, 32)]
    for column, left in enumerate((40, 700)):
        y = 80.0 + column * 6
        for _ in range(lines // 2):
            rects.append(Rect(left, y, rng.uniform(200, 560), 16))
            y += 22 + (12 if rng.random() < 0.2 else 0)
    bottom = max(r.bottom for r in rects) + 60
    rects += [Rect(40 + 120 * i, bottom, 90, 24) for i in range(4)]
    return rects


def run(quick: bool = False) -> list[dict[str, Any]]:
    repeat = 5 if quick else 30
    rects = _screen(200 if quick else 400)
    boxes = [TextBox(text=f"line {i}", box=r, confidence=1.0) for i, r in enumerate(rects)]
    ours = median_ms(lambda: reading_order(rects), repeat, warmup=False)
    plain = median_ms(lambda: row_order(boxes), repeat, warmup=False)
    items = [
        Item(role="text", label=f"line {i}", box=[r.left, r.top, r.width, r.height])
        for i, r in enumerate(rects)
    ]
    old = finish([Region(kind="body", items=items)], "image", 0)
    changed = list(items)
    changed[len(changed) // 2] = changed[len(changed) // 2].model_copy(update={"label": "new"})
    new = finish([Region(kind="body", items=changed)], "image", 0)
    return [
        {
            "name": f"narrate.reading_order ({len(rects)} boxes, columns)",
            "median_ms": ours,
            "baseline_ms": plain,
            "ratio": ours / plain if plain else None,
            "note": "baseline: OCR's row sort, which interleaves columns",
        },
        {
            "name": f"narrate.diff_narrations ({len(items)} items, one changed)",
            "median_ms": median_ms(lambda: diff_narrations(old, new), repeat, warmup=False),
        },
        {
            "name": f"narrate.to_ssml ({len(items)} items)",
            "median_ms": median_ms(lambda: to_ssml(old), repeat, warmup=False),
        },
    ]
