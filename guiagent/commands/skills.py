"""``guiagent skills list|show NAME``: the skills guiagent can see, and one skill's declaration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from guiagent.cliparse import cli_console, print_wide
from guiagent.skills import SkillError, load_registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "show"], help="list every skill, or show one")
    parser.add_argument("name", nargs="?", help="skill name (for show)")
    parser.add_argument(
        "--skills",
        action="append",
        type=Path,
        default=[],
        help="more skill files or folders (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    try:
        registry = load_registry(args.skills)
    except SkillError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    if args.action == "list":
        table = Table(title=f"{len(registry.skills)} skills")
        for column in ("name", "parameters", "applies to", "description", "source"):
            table.add_column(column)
        for item in sorted(registry.skills.values(), key=lambda s: s.name):
            params = ", ".join(
                f"{p.name}{'' if p.required else '?'}: {p.type}" for p in item.params
            )
            where = item.applies_to.model_dump(exclude_defaults=True)
            table.add_row(
                item.name,
                params,
                json.dumps(where) if where else "anywhere",
                item.description,
                item.source,
            )
        print_wide(console, table)
        return 0
    if not args.name:
        console.print("[red]error:[/] skills show needs a NAME")
        return 2
    try:
        item = registry.get(args.name)
    except KeyError as exc:
        console.print(f"[red]error:[/] {escape(str(exc.args[0]))}")
        return 2
    console.print(
        f"[bold]{escape(item.name)}[/]  ({escape(str(item.source))})\n{escape(item.description)}"
    )
    console.print("tool parameters (JSON Schema):")
    console.print_json(json.dumps(item.parameters_schema()))
    if item.applies_to.model_dump(exclude_defaults=True):
        console.print(
            f"applies to: {item.applies_to.model_dump(exclude_defaults=True)}", markup=False
        )
    if item.steps:
        console.print("steps:")
        console.print_json(json.dumps(item.steps))
    return 0
