"""`guiagent eval`: grounding evaluation on ScreenSpot-format data, and making such data.

guiagent eval screenspot FILE --model-url URL [--coord-space S] [--max-image-tokens N] [--limit N]
guiagent eval make-dataset URL... --out DIR [--viewport 1280x800]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from guiagent.cliparse import cli_console, print_wide
from guiagent.eval.cli_support import add_model_arguments, parse_viewport, profile_from_args
from guiagent.eval.dataset import DATASET_FILE, make_dataset
from guiagent.eval.screenspot import (
    Bucket,
    DatasetError,
    EvalReport,
    evaluate,
    load_rows,
    model_grounder,
)
from guiagent.models.budget import BudgetError
from guiagent.models.profiles import ProfileError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="eval_command", metavar="{screenspot,make-dataset}")
    sub.required = True
    spot = sub.add_parser(
        "screenspot", help="point-in-box grounding accuracy on a ScreenSpot-format file"
    )
    spot.add_argument(
        "file", type=Path, help="dataset: JSON array or JSON Lines of ScreenSpot rows"
    )
    spot.add_argument(
        "--image-dir", type=Path, default=None, help="where images are (default: the file's folder)"
    )
    spot.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows")
    spot.add_argument(
        "--bbox-format",
        choices=["xywh", "xyxy"],
        default=None,
        help="how bbox is given (default: xyxy when rows have img_size, as ScreenSpot-Pro, else xywh)",
    )
    spot.add_argument("--out", type=Path, default=None, help="write per-row results as JSON here")
    spot.add_argument(
        "--min-accuracy", type=float, default=None, help="exit 1 when accuracy is below this (0..1)"
    )
    add_model_arguments(spot)
    make = sub.add_parser(
        "make-dataset", help="render pages in headless Chromium into a ScreenSpot-format dataset"
    )
    make.add_argument(
        "urls", nargs="+", help="page URLs (http://, https://, file://) or local HTML files"
    )
    make.add_argument("--out", type=Path, required=True, help="output folder")
    make.add_argument(
        "--viewport", default="1280x800", help="WIDTHxHEIGHT in CSS pixels (default: %(default)s)"
    )
    make.add_argument(
        "--scale", type=float, default=1.0, help="device pixel ratio (default: %(default)s)"
    )


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    if args.eval_command == "make-dataset":
        return _make_dataset(args, console)
    return _screenspot(args, console)


def _make_dataset(args: argparse.Namespace, console: Console) -> int:
    try:
        viewport = parse_viewport(args.viewport)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    if args.scale <= 0:
        console.print(f"[red]error:[/red] --scale must be positive, got {args.scale}")
        return 2
    urls = []
    for url in args.urls:
        path = Path(url)
        urls.append(path.resolve().as_uri() if "://" not in url and path.exists() else url)
    try:
        rows = asyncio.run(make_dataset(urls, args.out, viewport, args.scale))
    except Exception as exc:  # a page that does not load, a browser that does not start
        console.print(f"[red]error:[/red] {type(exc).__name__}: {escape(str(exc))}")
        return 1
    kinds = {k: sum(1 for r in rows if r.data_type == k) for k in ("text", "icon")}
    console.print(
        f"wrote {len(rows)} rows ({kinds['text']} text, {kinds['icon']} icon) to {args.out / DATASET_FILE}"
    )
    return 0


def print_report(report: EvalReport, console: Console) -> None:
    table = Table(title="ScreenSpot grounding")
    for column in ("group", "n", "correct", "accuracy", "wrong format", "errors"):
        table.add_column(column, justify="left" if column == "group" else "right")

    def add(name: str, b: Bucket) -> None:
        table.add_row(
            name,
            str(b.total),
            str(b.correct),
            f"{b.accuracy:.1%}",
            str(b.wrong_format),
            str(b.errors),
        )

    add("overall", report.overall)
    for name, bucket in sorted(report.by_type.items()):
        add(f"type: {name}", bucket)
    for name, bucket in sorted(report.by_source.items()):
        add(f"source: {name}", bucket)
    print_wide(console, table)


def _screenspot(args: argparse.Namespace, console: Console) -> int:
    from guiagent.models.openai_client import ModelClient, ModelError

    if args.limit is not None and args.limit <= 0:
        console.print(f"[red]error:[/red] --limit must be positive, got {args.limit}")
        return 2
    try:
        profile = profile_from_args(args)
        rows = load_rows(args.file)
    except (ProfileError, DatasetError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    image_dir = args.image_dir or args.file.parent

    async def go() -> EvalReport:
        async with ModelClient(
            args.model_url, model=args.model, sampling=profile.sampling
        ) as client:
            grounder = model_grounder(
                client, profile.coord_space, profile.max_image_tokens, profile.image_rule
            )
            return await evaluate(
                rows, grounder, image_dir, args.limit, args.concurrency, box_format=args.bbox_format
            )

    try:
        report = asyncio.run(go())
    except (ModelError, BudgetError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        return 2
    if args.out is not None:
        args.out.write_text(
            json.dumps(
                {"summary": report.summary(), "results": [r.model_dump() for r in report.results]},
                indent=1,
            ),
            encoding="utf-8",
        )
    if args.json:
        console.print_json(json.dumps(report.summary()))
    else:
        print_report(report, console)
    if report.overall.errors == report.overall.total and report.overall.total:
        console.print(f"[red]every request failed[/red]: {escape(str(report.results[0].error))}")
        return 1
    if args.min_accuracy is not None and report.accuracy < args.min_accuracy:
        console.print(f"[red]accuracy {report.accuracy:.1%} is below {args.min_accuracy:.1%}[/red]")
        return 1
    return 0
