"""Every option of every command has help text that shows its default; bench tables do not wrap."""

from __future__ import annotations

import argparse
import io

from rich.console import Console

from guiagent.cli import build_parser
from guiagent.commands.bench import print_table


def _walk(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")


def test_every_option_has_help_and_shows_its_default():
    missing = []
    commands = list(_walk(build_parser(), "guiagent"))
    assert len(commands) > 15
    for path, parser in commands:
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = "/".join(action.option_strings) or action.dest
            if not (action.help or "").strip():
                missing.append(f"{path} {name}: no help")
                continue
            default = action.default
            unset = default is None or default is False or default == []
            if action.option_strings and not unset and default != argparse.SUPPRESS:
                help_text = " ".join(
                    parser._get_formatter()._expand_help(action).split()  # as --help prints it
                )
                if "default" not in help_text.lower():
                    missing.append(f"{path} {name}: default {default!r} not shown")
    assert not missing, "\n".join(missing)


def test_bench_table_does_not_wrap_off_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=80)
    note = "a long note that would be folded into several lines on an eighty column console"
    print_table([{"area": "loop", "name": "one step", "median_ms": 12.5, "note": note}], console)
    assert any(note in line for line in out.getvalue().splitlines()), out.getvalue()
