"""Benchmarks for narration: the pure parts' speed (reading order of a busy screen against
the plain row sort OCR uses, change detection, SSML rendering), and, run on its own
(``python -m guiagent.bench.narrate``), the accuracy of pixel-only narration scored
against the accessibility tree on real pages in Chromium and real GTK applications
under Xvfb: recall of named interactive elements, role accuracy, reading-order agreement
(Kendall tau)."""

from __future__ import annotations

import random
import statistics
import sys
import time
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from guiagent.bench import median_ms
from guiagent.core.geometry import Rect
from guiagent.grounding.ocr import TextBox
from guiagent.grounding.ocr import reading_order as row_order
from guiagent.narrate.layout import reading_order
from guiagent.narrate.narrator import finish
from guiagent.narrate.render import to_ssml
from guiagent.narrate.schema import Item, Narration, Region
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


# --- accuracy: pixel-only narration scored against the accessibility tree -------------------

INTERACTIVE = {
    "button", "link", "textbox", "password", "checkbox", "radio", "combobox", "switch",
    "slider", "spinbutton", "tab", "menuitem", "menu", "option",
}  # fmt: skip
_ROLE_CLASS = {
    "password": "textbox",
    "spinbutton": "textbox",
    "switch": "checkbox",
    "menu": "menuitem",
}
_FIELDS = {"textbox", "combobox", "slider"}
PAGES_DIR = Path(__file__).with_name("narrate_pages")
REPO = Path(__file__).resolve().parents[2]


def _norm(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _similar(a: str, b: str) -> bool:
    a, b = _norm(a), _norm(b)
    if not a or not b:
        return False
    if a == b or (min(len(a), len(b)) >= 4 and (a in b or b in a)):
        return True
    return SequenceMatcher(a=a, b=b).ratio() >= 0.8


def _role_class(role: str) -> str:
    return _ROLE_CLASS.get(role, role)


def match_items(tree: list[Item], pixels: list[Item]) -> list[tuple[int, int]]:
    """(tree index, pixel index) of each named interactive tree item found in the pixels:
    a pixel item with a similar label near it, or an interactive pixel item inside its
    box (a field the pixels name by what it holds)."""
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for t, want in enumerate(tree):
        if want.role not in INTERACTIVE or not want.label:
            continue
        reach = max(want.box[2], want.box[3], 80.0)
        padded = Rect(want.box[0] - 4, want.box[1] - 4, want.box[2] + 8, want.box[3] + 8)

        def near(p: int, want: Item = want, reach: float = reach) -> bool:
            return pixels[p].centre.distance(want.centre) <= reach

        named = [
            p
            for p in range(len(pixels))
            if p not in used and _similar(pixels[p].label, want.label) and near(p)
        ]
        inside = [p for p in range(len(pixels)) if p not in used and pixels[p].role in INTERACTIVE
                  and padded.contains(pixels[p].centre)]  # fmt: skip
        by_name = sorted(named, key=lambda p: pixels[p].centre.distance(want.centre))
        # a field is the box itself (the pixels name it by what it holds), not its label
        found = (inside or by_name) if _role_class(want.role) in _FIELDS else (by_name or inside)
        if found:
            used.add(found[0])
            pairs.append((t, found[0]))
    return pairs


def kendall_tau(order: list[int]) -> float:
    """Kendall's tau between 0..n-1 and ``order`` (1: same order, -1: reversed)."""
    n = len(order)
    if n < 2:
        return 1.0
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if order[i] < order[j])
    pairs = n * (n - 1) // 2
    return (2 * concordant - pairs) / pairs


def score(tree: Narration, pixels: Narration) -> dict[str, Any]:
    """Recall of the tree's named interactive elements in the pixel narration, role
    accuracy over those found, and reading-order agreement (Kendall tau) among them."""
    t_items, p_items = tree.items(), pixels.items()
    wanted = [i for i in t_items if i.role in INTERACTIVE and i.label]
    pairs = match_items(t_items, p_items)
    right = sum(1 for t, p in pairs if _role_class(t_items[t].role) == _role_class(p_items[p].role))
    missed = [t_items[t].spoken() for t in range(len(t_items))
              if t_items[t] in wanted and t not in {a for a, _ in pairs}]  # fmt: skip
    return {
        "elements": len(wanted),
        "found": len(pairs),
        "recall": len(pairs) / len(wanted) if wanted else 1.0,
        "role_accuracy": right / len(pairs) if pairs else 0.0,
        "kendall_tau": kendall_tau([p for _, p in sorted(pairs)]),
        "missed": missed,
        "wrong_roles": [
            f"{t_items[t].label}: {t_items[t].role} -> {p_items[p].role}"
            for t, p in pairs
            if _role_class(t_items[t].role) != _role_class(p_items[p].role)
        ],
    }


BENCH_PAGES = (
    ("demo web app", REPO / "guiagent/demo/webapp/index.html"),
    ("report page", REPO / "tests/apps/narrate_layout.html"),
    ("checkout (table, form, iframe)", REPO / "tests/apps/narrate_ax.html"),
    ("settings (sidebar, form)", PAGES_DIR / "settings.html"),
    ("store (toolbar, card grid)", PAGES_DIR / "store.html"),
    ("web calculator (keypad)", PAGES_DIR / "keypad.html"),
)


async def _page_scores() -> list[dict[str, Any]]:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.narrate.narrator import Narrator

    rows: list[dict[str, Any]] = []
    for name, path in BENCH_PAGES:
        env = BrowserEnv(start_url=path.as_uri(), viewport=(1280, 800))
        await env.start()
        try:
            tree = await Narrator(env, reader="tree").narrate()
            started = time.perf_counter()
            pixels = await Narrator(env, reader="pixels", pixel_controls=True).narrate()
            elapsed = (time.perf_counter() - started) * 1000
        finally:
            await env.close()
        rows.append(
            {"surface": "browser", "name": name, "pixel_ms": elapsed, **score(tree, pixels)}
        )
    return rows


ZENITY_FORM = [
    "zenity", "--forms", "--title=Sign up", "--text=Your details", "--add-entry=Name",
    "--add-entry=Email", "--add-password=Password", "--add-combo=Plan", "--combo-values=Free|Pro",
]  # fmt: skip
DESKTOP_APPS = (
    ("zenity form (GTK 3)", ZENITY_FORM, "Sign up"),
    ("galculator (GTK 3)", ["galculator"], "galculator"),
)


async def _desktop_scores() -> list[dict[str, Any]]:
    import os
    import subprocess

    from guiagent.envs.atspi import AccessibilityBus
    from guiagent.envs.desktop import DesktopEnv
    from guiagent.envs.display import XvfbDisplay
    from guiagent.narrate.narrator import Narrator

    rows: list[dict[str, Any]] = []
    with XvfbDisplay((1280, 800)) as display, AccessibilityBus(display.display) as bus:
        env = {**os.environ, **display.env, **bus.env}
        desktop = DesktopEnv(display=display.display, failsafe=False)
        await desktop.start()
        try:
            for name, argv, title in DESKTOP_APPS:
                app = subprocess.Popen(
                    argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                try:
                    await _wait_window(title, env)
                    tree_narrator = Narrator(desktop, atspi_env=bus.env)
                    tree = await tree_narrator.narrate()
                    await tree_narrator.aclose()
                    started = time.perf_counter()
                    pixels = await Narrator(desktop, reader="pixels", pixel_controls=True).narrate()
                    elapsed = (time.perf_counter() - started) * 1000
                finally:
                    app.kill()
                    app.wait(5)
                rows.append(
                    {"surface": "desktop", "name": name, "pixel_ms": elapsed, **score(tree, pixels)}
                )
        finally:
            await desktop.close()
    return rows


async def _wait_window(title: str, env: dict[str, str], timeout_s: float = 30.0) -> None:
    import asyncio
    import subprocess

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
                               env=env, capture_output=True, text=True)  # fmt: skip
        if found.stdout.split():
            await asyncio.sleep(1.5)  # let it draw and register on the accessibility bus
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"no window {title!r}")


def accuracy() -> list[dict[str, Any]]:
    """Pixel-only narration scored against the tree on the bench pages and desktop apps."""
    import asyncio

    async def both() -> list[dict[str, Any]]:
        return await _page_scores() + await _desktop_scores()

    return asyncio.run(both())


def _summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    found = sum(r["found"] for r in rows)
    return {
        "recall": found / max(sum(r["elements"] for r in rows), 1),
        "role_accuracy": sum(r["role_accuracy"] * r["found"] for r in rows) / max(found, 1),
        "kendall_tau_median": statistics.median(r["kendall_tau"] for r in rows),
    }


def main() -> None:
    """``python -m guiagent.bench.narrate [--json PATH]``: the accuracy table."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = accuracy()
    lines = [
        f"{'surface':8} {'page or app':34} {'found':>7} {'recall':>7} {'roles':>6} {'tau':>6} {'pixel s':>8}"
    ]
    for r in rows:
        lines.append(
            f"{r['surface']:8} {r['name']:34} {r['found']:>3}/{r['elements']:<3} {r['recall']:>7.0%} "
            f"{r['role_accuracy']:>6.0%} {r['kendall_tau']:>6.2f} {r['pixel_ms'] / 1000:>8.1f}"
        )
    total = _summary(rows)
    lines.append(
        f"all: recall {total['recall']:.0%}, role accuracy {total['role_accuracy']:.0%}, "
        f"median Kendall tau {total['kendall_tau_median']:.2f}"
    )
    sys.stdout.write("\n".join(lines) + "\n")
    for r in rows:
        if r["missed"] or r["wrong_roles"]:
            sys.stdout.write(f"{r['name']}: missed {r['missed']}; roles {r['wrong_roles']}\n")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": total}, indent=2))


if __name__ == "__main__":
    main()
