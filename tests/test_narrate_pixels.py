"""Pixel narration worth listening to: xcalc (Athena widgets, no accessibility tree) read
under Xvfb row by row with every key named; and the pure parts (grids numbered row by
row, OCR slips on key labels undone, nameless fields named after their label)."""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from guiagent.core.geometry import Rect
from guiagent.narrate.narrator import Narrator
from guiagent.narrate.pixels import label_fields, number_grid, role_in_box, snap_label
from guiagent.narrate.schema import Item

XCALC_KEYS = [
    ["1/x", "x²", None, "CE/C", "AC"],  # None: a glyph the font draws as "ö`"
    ["INV", "sin", "cos", "tan", "DRG"],
    ["e", "EE", "log", "ln", "y^x"],
    ["not", "and", "or", "xor", "trunc"],
    ["P", "x!", "(", ")", "base"],
    ["shl", "D", "E", "F", "shr"],
    ["mod", "A", "B", "C", ","],
    ["STO", "7", "8", "9", "*"],
    ["RCL", "4", "5", "6", "-"],
    ["SUM", "1", "2", "3", "+"],
    ["EXC", "0", ".", "+/-", "="],
]


def test_xcalc_read_row_by_row_every_key_named(
    x_display: Any, desktop_env: Any, async_runner: Any
) -> None:
    env = {**os.environ, **x_display.env}
    # a pointer left over a key by an earlier test highlights it (Xaw draws a hover border)
    subprocess.run(["xdotool", "mousemove", "5", "5"], env=env, check=True, timeout=10)
    xcalc = subprocess.Popen(["xcalc", "-geometry", "+300+120"], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", "^Calculator$"],
                env=env, capture_output=True, text=True,
            )  # fmt: skip
            if found.stdout.split():
                break
            time.sleep(0.1)
        time.sleep(0.5)  # let it draw
        narrator = Narrator(desktop_env, reader="pixels", pixel_controls=True)
        narration = async_runner.run(narrator.narrate(), timeout=180)
    finally:
        xcalc.kill()
        xcalc.wait(5)
    keypad = next(r for r in narration.regions if r.kind == "buttons")
    assert keypad.title == "11 rows"
    grid: list[list[Item]] = [[] for _ in range(11)]
    for item in keypad.items:
        assert item.role == "button" and item.row is not None and item.label, item
        grid[item.row - 1].append(item)
    assert [len(row) for row in grid] == [5] * 11  # every key, row by row
    assert [[i.column for i in row] for row in grid] == [[1, 2, 3, 4, 5]] * 11
    assert all(row[k].box[0] < row[k + 1].box[0] for row in grid for k in range(4))
    known = [(want, row[c].label) for row, wants in zip(grid, XCALC_KEYS, strict=True)
             for c, want in enumerate(wants) if want is not None]  # fmt: skip
    right = sum(1 for want, got in known if want == got)
    assert right / len(known) >= 0.9, [(w, g) for w, g in known if w != g]
    lines = narration.text.splitlines()
    assert "row 2, INV, button" in lines and "row 8, STO, button" in lines
    assert all(i.source == "ocr" for i in narration.items())


def _button(label: str, x: float, y: float) -> Item:
    return Item(role="button", label=label, box=[x, y, 40, 24])


def test_grid_numbered_row_by_row_single_row_left_alone() -> None:
    keys = [_button(f"{r}{c}", 10 + 45 * c, 10 + 30 * r) for r in range(3) for c in range(4)]
    toolbar = [_button(name, 10 + 60 * k, 300) for k, name in enumerate(["Save", "Open", "Quit"])]
    numbered = number_grid(keys + toolbar)
    assert [(i.row, i.column) for i in numbered[:4]] == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert numbered[11].row == 3 and numbered[11].column == 4
    assert all(i.row is None for i in numbered[12:])  # one row is not a grid
    assert numbered[4].spoken() == "row 2, 10, button"


def test_ocr_slips_on_key_labels_undone() -> None:
    assert [snap_label(t) for t in ["109", "1n", "cOS", "（", "。", "mod", "SIN", "10"]] == [
        "log", "ln", "cos", "(", ".", "mod", "sin", "10",
    ]  # fmt: skip


def test_roles_from_shape_and_text() -> None:
    box = Rect(0, 0, 80, 24)
    assert role_in_box(box, Rect(28, 6, 24, 12)) == "button"  # short, centred
    assert role_in_box(Rect(0, 0, 200, 24), Rect(4, 6, 40, 12)) == "textbox"  # at the left
    fields = label_fields(
        [
            Item(role="text", label="Name", box=[10, 10, 40, 16]),
            Item(role="textbox", label="", box=[60, 6, 160, 24]),
        ]
    )
    assert fields[1].label == "Name"
