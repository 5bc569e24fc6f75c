"""`guiagent calibrate --model-url URL`: find out which coordinate space a served model uses."""

from __future__ import annotations

import argparse
import asyncio
import json

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guiagent.cliparse import check_url, cli_console, print_wide
from guiagent.eval.calibrate import CalibrationReport, calibrate
from guiagent.eval.cli_support import add_model_arguments, parse_viewport, profile_from_args
from guiagent.models.budget import BudgetError
from guiagent.models.profiles import ProfileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_arguments(parser, with_space=False)
    parser.add_argument(
        "--viewport",
        default="1280x800",
        help="WIDTHxHEIGHT of the target page (default: %(default)s)",
    )
    parser.add_argument(
        "--min-accuracy",
        type=float,
        default=0.5,
        help="exit 1 when even the best hypothesis is below this accuracy (default: %(default)s)",
    )


def print_report(report: CalibrationReport, console: Console) -> None:
    best = report.best
    table = Table(
        title=f"Calibration: {len(report.answers)} targets, image sent at {report.sent[0]}x{report.sent[1]}"
    )
    for column in ("space", "box as", "hits", "accuracy", "out of range", "mean error (px)"):
        table.add_column(column, justify="left" if column in ("space", "box as") else "right")
    for h in report.hypotheses:
        if report.answer_shape != "box" and h.box_format == "xywh":
            continue  # identical to xyxy when every answer is a point
        error = "-" if h.mean_error_px is None else f"{h.mean_error_px:.1f}"
        style = "bold green" if h is best else None
        table.add_row(
            h.space.value,
            h.box_format if report.answer_shape == "box" else "-",
            f"{h.hits}/{h.total}",
            f"{h.accuracy:.0%}",
            str(h.out_of_range),
            error,
            style=style,
        )
    print_wide(console, table)
    console.print(
        f"answers: {report.shapes['point']} points, {report.shapes['box']} boxes, {report.shapes['none']} unreadable"
    )
    if not report.can_recommend:
        console.print(
            f"[red]no recommendation:[/] only {report.readable_share:.0%} of the answers held a "
            "point or a box (at least half must); is this a grounding model, and is its "
            "tool-call parser on?"
        )
        return
    shape = f" (boxes read as {best.box_format})" if report.answer_shape == "box" else ""
    console.print(f"the model answers in [bold]{best.space.value}[/bold] coordinates{shape}")
    console.print(f"use: {' '.join(report.settings())}")


def run(args: argparse.Namespace) -> int:
    from guiagent.models.openai_client import ModelClient, ModelError

    console = cli_console()
    try:
        check_url("--model-url", args.model_url)
        profile = profile_from_args(args)
        viewport = parse_viewport(args.viewport)
    except (ProfileError, ValueError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2

    async def go() -> CalibrationReport:
        async with ModelClient(
            args.model_url, model=args.model, sampling=profile.sampling
        ) as client:
            # an unreachable or unready server is configuration (exit 2, one line), found once
            # here rather than as one failed request per calibration target
            await client.health()
            return await calibrate(
                client,
                profile.max_image_tokens,
                profile.image_rule,
                viewport,
                concurrency=args.concurrency,
            )

    try:
        report = asyncio.run(go())
    except (ModelError, BudgetError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    if all(a.error for a in report.answers):
        console.print(f"[red]every request failed[/red]: {escape(str(report.answers[0].error))}")
        return 1
    if args.json:
        console.print_json(json.dumps(report.summary()))
    else:
        print_report(report, console)
    if not report.can_recommend:
        return 1
    return 0 if report.best.accuracy >= args.min_accuracy else 1
