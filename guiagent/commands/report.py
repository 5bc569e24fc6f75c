"""``guiagent report RUN``: write a recording's HTML report."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from guiagent.cliparse import cli_console
from guiagent.record.report import write_report
from guiagent.record.trajectory import RecordingError, load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="the run directory")
    parser.add_argument("--out", type=Path, help="HTML file to write (default: RUN/report.html)")


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    try:
        path = write_report(load(args.run), args.out)
    except RecordingError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return 2
    console.print(f"report written to {path}", markup=False, highlight=False)
    return 0
