"""The bench table stays readable: long notes are cut there and kept whole in --json."""

from __future__ import annotations

import io

from rich.console import Console

from guiagent.commands.bench import NOTE_WIDTH, print_table, short_note


def test_short_note_keeps_short_notes_and_cuts_long_ones() -> None:
    assert short_note("settle 77 ms of it") == "settle 77 ms of it"
    cut = short_note("x" * 2000)
    assert cut.startswith("x" * (NOTE_WIDTH - 1))
    assert cut.endswith("(whole note in --json)")
    assert len(cut) < NOTE_WIDTH + 30


def test_table_shows_the_cut_note_and_markup_is_not_interpreted() -> None:
    out = io.StringIO()
    console = Console(file=out, width=400, color_system=None)
    rows = [
        {"area": "replay", "name": "heal", "median_ms": 1.0, "note": "[red]" + "y" * 1000},
        {"area": "loop", "name": "total", "median_ms": 2.5, "baseline_ms": 1.0, "ratio": 2.5},
    ]
    print_table(rows, console)
    text = out.getvalue()
    assert "[red]" in text  # shown literally, not taken as rich markup
    assert "y" * 1000 not in text
    assert "whole note in --json" in text
    assert "2.50" in text
