"""``guiagent bench``: run every benchmark and print one table (figures, not assertions)."""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import time
from pathlib import Path
from typing import Any

from loguru import logger
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guiagent.cliparse import cli_console, print_wide

# benchmark modules in guiagent.bench, in the order they run
AREAS = (
    "loop",
    "capture",
    "parser",
    "client",
    "grounding",
    "hits",
    "scenario",
    "replay",
    "safety",
    "secret_ocr",
    "narrate",
    "router",
    "startup",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--only", action="append", choices=AREAS, help="run only these areas (repeatable)"
    )


def machine() -> dict[str, Any]:
    import os

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


NOTE_WIDTH = 160  # the table shows this much of a note; --json keeps it whole


def short_note(note: str) -> str:
    if len(note) <= NOTE_WIDTH:
        return note
    return note[: NOTE_WIDTH - 1].rstrip() + "… (whole note in --json)"


def print_table(results: list[dict[str, Any]], console: Console) -> None:
    """One table of every figure; off a terminal it is as wide as it needs (no wrapping at 80)."""
    table = Table(title=f"guiagent bench ({machine()['cpus']} cpus, Python {machine()['python']})")
    for column in ("area", "benchmark", "median ms", "baseline ms", "ratio", "note"):
        table.add_column(column)
    for row in results:
        table.add_row(
            row["area"],
            row["name"],
            f"{row['median_ms']:.2f}",
            "" if row.get("baseline_ms") is None else f"{row['baseline_ms']:.2f}",
            "" if row.get("ratio") is None else f"{row['ratio']:.2f}",
            escape(short_note(row.get("note", ""))),
        )
    print_wide(console, table)


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    results: list[dict[str, Any]] = []
    failures = 0
    started = time.perf_counter()
    for area in args.only or AREAS:
        try:
            module = importlib.import_module(f"guiagent.bench.{area}")
        except ImportError as exc:
            console.print(f"[yellow]{area}: not available ({escape(str(exc))})[/]")
            continue
        t = time.perf_counter()
        # benchmarks provoke failures on purpose (heal refusals, killed workers): their
        # warnings would bury the table; -v shows them
        if not getattr(args, "verbose", 0):
            logger.disable("guiagent")
        try:
            rows = module.run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            failures += 1
            console.print(f"[red]{area}: failed: {escape(repr(exc))}[/]")
            continue
        finally:
            logger.enable("guiagent")
        for row in rows:
            row["area"] = area
        results.extend(rows)
        console.print(f"[dim]{area}: {len(rows)} figures in {time.perf_counter() - t:.1f} s[/]")
    print_table(results, console)
    console.print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return 1 if failures else 0
