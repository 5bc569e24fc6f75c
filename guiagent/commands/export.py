"""``guiagent export RUN --gif FILE | --mp4 FILE | --scenario FILE | --playwright FILE``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from guiagent.cliparse import cli_console
from guiagent.record.export import (
    ExportError,
    export_gif,
    export_mp4,
    export_playwright,
    export_scenario,
)
from guiagent.record.trajectory import RecordingError, load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="the run directory")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--gif", type=Path, metavar="FILE", help="animated GIF of the frames with click markers"
    )
    what.add_argument("--mp4", type=Path, metavar="FILE", help="MP4 video (needs ffmpeg)")
    what.add_argument(
        "--scenario", type=Path, metavar="FILE", help="scenario YAML replaying the run's steps"
    )
    what.add_argument(
        "--playwright",
        type=Path,
        metavar="FILE",
        help="plain Playwright Python script of a browser run (role/label locators)",
    )


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    try:
        recording = load(args.run)
        if args.gif:
            path = export_gif(recording, args.gif)
        elif args.mp4:
            path = export_mp4(recording, args.mp4)
        elif args.playwright:
            path = export_playwright(recording, args.playwright)
        else:
            path = export_scenario(recording, args.scenario)
    except (RecordingError, ExportError, OSError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
        return 2
    console.print(f"written {path}", markup=False, highlight=False)
    return 0
