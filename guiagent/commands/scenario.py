"""``guiagent scenario``: run, check and describe YAML UI test scenarios.

    guiagent scenario run PATH... [--env browser|desktop] [--model local|URL] [--record DIR]
                          [--var NAME=VALUE] [--workers N] [--headed] [--base-url URL] [--json FILE]
    guiagent scenario check PATH...        validate files only (file:line: step N messages)
    guiagent scenario schema [--out FILE]  write the JSON Schema for editors

``--workers N`` runs N scenarios at a time as asyncio tasks in this process: browser
scenarios share one Chromium (one context each); desktop scenarios then each get their
own Xvfb (DesktopEnv drives a display other than pyautogui's with xdotool), so parallel
desktop scenarios never see each other's windows. With one worker, desktop scenarios run
on ``$DISPLAY`` (or a fresh Xvfb when it is unset).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from rich.markup import escape

from guiagent.cliparse import UsageError, check_url, cli_console, startup_done

console = cli_console()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="scenario_command", metavar="{run,check,schema}")
    run_p = sub.add_parser("run", help="run scenario files or directories of them")
    run_p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    run_p.add_argument(
        "--env", choices=["browser", "desktop"], help="only run scenarios of this surface"
    )
    run_p.add_argument(
        "--model",
        default="local",
        help="'local' (default: OCR/DOM grounding; ai steps fail) or a model server URL",
    )
    run_p.add_argument(
        "--record", metavar="DIR", help="recordings root (default: runs/ in the working directory)"
    )
    run_p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a variable (repeatable)",
    )
    run_p.add_argument(
        "--workers", type=int, default=1, help="scenarios run at the same time (default 1)"
    )
    run_p.add_argument(
        "--skills",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="more skill files or folders for use: steps (repeatable; also looked up: skills/ "
        "beside each scenario and in its project root)",
    )
    run_p.add_argument("--headed", action="store_true", help="show the browser window")
    run_p.add_argument("--base-url", help="serve relative target URLs from here instead")
    attach = run_p.add_mutually_exclusive_group()
    attach.add_argument(
        "--browser-cdp",
        metavar="URL",
        help="run browser scenarios in a running Chromium (its DevTools URL), on its active page",
    )
    attach.add_argument(
        "--browser-ws", metavar="URL", help="run browser scenarios in a `playwright run-server`"
    )
    run_p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    check_p = sub.add_parser("check", help="validate scenario files without running them")
    check_p.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or directories")
    check_p.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="value of a scenario variable (repeatable)",
    )
    schema_p = sub.add_parser("schema", help="write the scenario JSON Schema")
    schema_p.add_argument("--out", help="file to write (default: print it)")


def parse_vars(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--var expects NAME=VALUE, got {item!r}")
        out[name.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    command = getattr(args, "scenario_command", None)
    if command == "schema":
        return _schema(args)
    if command == "check":
        return _check(args)
    if command == "run":
        return _run(args)
    console.print("usage: guiagent scenario {run,check,schema} ... (see --help)")
    return 2


def _schema(args: argparse.Namespace) -> int:
    from guiagent.scenario.schema import json_schema, write_json_schema

    if args.out:
        console.print(f"wrote {write_json_schema(args.out)}", markup=False)
    else:
        console.print_json(json.dumps(json_schema()))
    return 0


def _load_all(paths: list[str], variables: dict[str, str]) -> tuple[list[Any], list[str]]:
    from guiagent.scenario.schema import ScenarioError, find_scenarios, load_scenario

    scenarios, problems = [], []
    files = find_scenarios(list(paths))
    for raw in paths:
        if not Path(raw).exists():
            problems.append(f"{raw}: no such file or directory")
    for path in files:
        if not path.exists():
            continue
        try:
            scenarios.append(load_scenario(path, variables))
        except ScenarioError as exc:
            problems.extend(exc.problems)
    return scenarios, problems


def _check(args: argparse.Namespace) -> int:
    try:
        variables = parse_vars(args.var)
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    scenarios, problems = _load_all(args.paths, variables)
    for scenario in scenarios:
        console.print(
            f"[green]ok[/green] {escape(str(scenario.path))} ({len(scenario.steps)} steps)"
        )
    for problem in problems:
        console.print(f"[red]error[/red] {escape(problem)}")
    return 2 if problems or not scenarios else 0


def _print_result(result: Any) -> None:
    colour = {"passed": "green", "failed": "red", "error": "red"}[result.status]
    console.print(
        f"[bold {colour}]{result.status.upper()}[/bold {colour}] {escape(result.name)} "
        f"[dim]({escape(str(result.path))}, {result.ms / 1000:.1f} s)[/dim]"
    )
    if result.error:
        console.print(f"  [red]{escape(result.error)}[/red]")
    for step in result.steps:
        mark = {"passed": "[green]✓[/green]", "failed": "[red]✗[/red]", "skipped": "[dim]-[/dim]"}[
            step.status
        ]
        timing = (
            f"[dim]{step.ms:.0f} ms[/dim]" if step.status != "skipped" else "[dim]skipped[/dim]"
        )
        console.print(f"  {mark} {escape(step.label)} {timing}")
        if step.error:
            console.print(f"      [red]{escape(step.error)}[/red]")
        if step.frame_path:
            console.print(f"      [dim]frame: {escape(step.frame_path)}[/dim]")
    if result.run_dir:
        console.print(f"  [dim]recording: {escape(result.run_dir)}[/dim]")


def _agent_factory(model: str | None) -> Any:
    """``ai:`` steps get what ``guiagent run`` gets (the agent loop loads only for a model)."""
    if not model or model == "local":
        return None
    from guiagent.app import model_agent_factory

    return model_agent_factory(model)


def _run(args: argparse.Namespace) -> int:
    from guiagent.scenario.session import ScenarioSession, SessionOptions

    if args.workers < 1:
        console.print("[red]--workers must be at least 1[/red]")
        return 2
    try:
        variables = parse_vars(args.var)
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        return 2
    missing = [p for p in args.skills if not p.exists()]
    if missing:
        console.print(
            f"[red]error[/red] --skills {escape(str(missing[0]))}: no such file or folder"
        )
        return 2
    scenarios, problems = _load_all(args.paths, variables)
    for problem in problems:
        console.print(f"[red]error[/red] {escape(problem)}")
    if args.env:
        skipped = [s for s in scenarios if s.env != args.env]
        scenarios = [s for s in scenarios if s.env == args.env]
        for s in skipped:
            console.print(f"[dim]deselected {escape(str(s.path))} ({s.env})[/dim]")
    if not scenarios:
        console.print("[red]no scenario to run[/red]")
        return 2
    for option, value in (("--browser-cdp", args.browser_cdp), ("--browser-ws", args.browser_ws)):
        if value is not None:
            check_url(option, value)
    if (args.browser_cdp or args.browser_ws) and args.workers > 1:
        raise UsageError("--browser-cdp/--browser-ws share one browser: run with --workers 1")
    options = SessionOptions(
        browser_cdp=args.browser_cdp,
        browser_ws=args.browser_ws,
        record_dir=Path(args.record) if args.record else None,
        base_url=args.base_url,
        headless=not args.headed,
        own_displays=args.workers > 1,
        agent_factory=_agent_factory(args.model),
        skill_paths=list(args.skills),
    )
    started = time.perf_counter()

    async def main() -> list[Any]:
        async with ScenarioSession(options) as session:
            await session.prepare(scenarios)  # Chromium starts while the step engine loads
            startup_done()
            return await session.run_many(scenarios, workers=args.workers, on_result=_print_result)

    results = asyncio.run(main())
    elapsed = time.perf_counter() - started
    passed = sum(r.ok for r in results)
    failed = len(results) - passed
    steps = sum(len(r.steps) for r in results)
    colour = "green" if not failed and not problems else "red"
    console.print(
        f"[bold {colour}]{passed} passed, {failed} failed[/bold {colour}]"
        + (f", {len(problems)} invalid file(s)" if problems else "")
        + f" [dim]({len(results)} scenarios, {steps} steps, {elapsed:.1f} s)[/dim]"
    )
    dirs = sorted({str(Path(r.run_dir).parent) for r in results if r.run_dir})
    if dirs:
        console.print(f"recordings in {', '.join(dirs)}")
    if args.json:
        Path(args.json).write_text(
            json.dumps([r.model_dump() for r in results], indent=2), encoding="utf-8"
        )
    if problems:
        return 2
    return 0 if failed == 0 else 1
