"""``guiagent docs``: write docs/SCENARIOS.md and docs/POLICY.md from the schemas (``--check``:
fail when the committed files differ)."""

from __future__ import annotations

import argparse
from pathlib import Path

from guiagent.cliparse import cli_console


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 when a committed document differs from the generated one",
    )
    parser.add_argument(
        "--root",
        type=Path,
        help="the repository to write into (default: the one guiagent runs from)",
    )


def run(args: argparse.Namespace) -> int:
    from guiagent import reference_docs

    console = cli_console()
    root = args.root or reference_docs.REPO_ROOT
    if args.check:
        stale = reference_docs.stale(root)
        for name in stale:
            console.print(f"[red]{name} is out of date:[/] run `guiagent docs` and commit it")
        return 1 if stale else 0
    for path in reference_docs.write(root):
        console.print(f"wrote {path}", markup=False)
    return 0
