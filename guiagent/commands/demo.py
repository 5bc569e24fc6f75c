"""``guiagent demo``: the main job on its embedded default (no GPU, no model server).

1. The shipped scenarios (``scenarios/``) on the demo web app, the Tk app and xcalc, grounded by
   the local grounder (OCR + DOM + templates), headless and under Xvfb.
2. One natural-language task through the full agent loop on the demo web app, whose model is
   the fake server answering from the page's DOM: a stand-in for Step3-VL, and it says so.
Every run is recorded; the HTML report of the natural-language run is written.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from guiagent.cliparse import cli_console

REPO_ROOT = Path(__file__).resolve().parents[2]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        help="where the recordings go (default: runs/demo-<time> in the working directory)",
    )
    parser.add_argument("--headed", action="store_true", help="show the browser window")
    parser.add_argument(
        "--skip-scenarios", action="store_true", help="skip part 1, the shipped scenarios"
    )
    parser.add_argument(
        "--skip-task", action="store_true", help="skip part 2, the natural-language task"
    )


def run(args: argparse.Namespace) -> int:
    from guiagent.cli import main as cli_main
    from guiagent.demo.nl_demo import DEMO_TASK, run_nl_demo
    from guiagent.record import load
    from guiagent.record.report import write_report

    console = cli_console()
    out = (args.out or Path.cwd() / "runs" / f"demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    if not args.skip_scenarios:
        console.rule("1. scenarios on the local grounder (no model)")
        argv = [
            "scenario",
            "run",
            str(REPO_ROOT / "scenarios"),
            "--model",
            "local",
            "--record",
            str(out / "scenarios"),
        ]
        status |= cli_main(argv + (["--headed"] if args.headed else []))
    if not args.skip_task:
        console.rule("2. a natural-language task through the agent loop")
        console.print(f"task: {DEMO_TASK}")
        console.print(
            "[yellow]model: the fake OpenAI-compatible server answering from the page's DOM — a stand-in "
            "for Step3-VL (which needs a GPU); everything else is the real path.[/]"
        )
        result = asyncio.run(run_nl_demo(out / "task", REPO_ROOT, headless=not args.headed))
        colour = "green" if result.ok else "red"
        console.print(
            f"[{colour}]{result.status}[/] after {result.steps} steps: {result.answer or result.stop_reason}"
        )
        report = write_report(load(out / "task"))
        console.print(f"recording: {out / 'task'}", markup=False)
        console.print(f"report:    {report}", markup=False)
        status |= 0 if result.ok else 1
    console.rule("done" if status == 0 else "failed")
    console.print(f"all recordings: {out}", markup=False)
    return status
