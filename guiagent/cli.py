"""The ``guiagent`` command line. Exit codes: 0 done, 1 task or test failed, 2 usage or configuration error."""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import re
import sys
import time
from pathlib import Path
from typing import Any

from loguru import logger

from guiagent import __version__
from guiagent.cliparse import (
    Parser,
    UsageError,
    check_display,
    check_positive,
    check_url,
    cli_console,
    first_line,
    parse_region,
    parse_size,
    pause_gc_for_startup,
    startup_done,
)


@functools.cache
def _console() -> Any:
    """The output console, made on first output (`guiagent --help` imports no rich)."""
    return cli_console()


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


# the model reply bounds, as AgentConfig's defaults (not imported here: the CLI starts fast)
MAX_REPLY_BYTES = 8 * 1024 * 1024
MAX_TOOL_CALLS = 16

# subcommand -> module in guiagent.commands exposing add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "run the bundled demo on the embedded default (no GPU, no model server)"),
    "scenario": ("scenario", "run scripted UI test scenarios (YAML)"),
    "replay": ("replay", "replay a recorded run (strict, heal or verify)"),
    "report": ("report", "write a recording's HTML report"),
    "export": ("export", "export a recording as GIF, MP4 or scenario YAML"),
    "fake-model": (
        "fake_model",
        "a stand-in model on loopback to try the agent loop without a GPU",
    ),
    "calibrate": ("calibrate", "find out which coordinate convention a served model uses"),
    "eval": ("eval", "ScreenSpot-style grounding evaluation and dataset making"),
    "serve": ("serve", "start a Step3-VL server (SGLang or vLLM) and wait until it is healthy"),
    "narrate": ("narrate", "describe the screen for accessibility, and announce changes"),
    "skills": ("skills", "list and show skills"),
    "console": ("console", "the live web console"),
    "bench": ("bench", "run the benchmarks and print a table"),
    "docs": ("docs", "write the scenario and policy reference (docs/*.md) from the schemas"),
}


def default_run_dir(label: str) -> Path:
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", label.lower()).strip("-")[:40] or "run"
    return Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", help="what to do, in words")
    parser.add_argument(
        "--env",
        choices=["browser", "desktop"],
        default="browser",
        help="where to act: a Chromium page or an X11 desktop",
    )
    parser.add_argument("--start-url", metavar="URL", help="browser: the page to open (a URL)")
    parser.add_argument(
        "--browser-cdp",
        metavar="URL",
        help="browser: attach to a running Chromium (CDP URL) and act on its active page",
    )
    parser.add_argument(
        "--browser-ws", metavar="URL", help="browser: connect to a `playwright run-server` endpoint"
    )
    parser.add_argument("--headed", action="store_true", help="browser: show the window")
    parser.add_argument(
        "--browser-executable",
        help="browser: Chromium to launch (default: Playwright's own, else /usr/bin/chromium); "
        "with --browser-ws the run-server must be started with --unsafe to honour it",
    )
    parser.add_argument(
        "--viewport", default="1280x800", help="browser: viewport WxH in CSS pixels"
    )
    parser.add_argument(
        "--device-scale-factor",
        type=float,
        default=1.0,
        help="browser: device pixels per CSS pixel (2 for a HiDPI page)",
    )
    parser.add_argument(
        "--display", help="desktop: X display such as :1 (default: $DISPLAY, else a new Xvfb)"
    )
    parser.add_argument(
        "--displays",
        type=int,
        metavar="N",
        help="desktop: start a fresh Xorg (dummy driver) with N monitors side by side "
        "(default: one screen; see --display-size)",
    )
    parser.add_argument(
        "--display-size",
        default="1280x800",
        metavar="WxH",
        help="desktop: size of each monitor --displays starts",
    )
    parser.add_argument(
        "--monitor", default="all", help="desktop: monitor number as mss numbers them, or 'all'"
    )
    _add_model_arguments(parser)
    parser.add_argument("--max-steps", type=int, default=30, help="stop after this many steps")
    parser.add_argument(
        "--max-seconds", type=float, help="stop after this much wall time (default: no limit)"
    )
    parser.add_argument(
        "--max-tokens", type=int, help="stop after this many model tokens (default: no limit)"
    )
    parser.add_argument(
        "--record",
        type=Path,
        help="run directory (default: runs/<time>-<task> in the working directory)",
    )
    parser.add_argument("--policy", type=Path, help="policy YAML (default: the built-in policy)")
    parser.add_argument(
        "--dry-run", action="store_true", help="execute nothing; record what would have been done"
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        help="DEPRECATED (visible in the process list): a value never sent or written; "
        "use --secrets-file, GUIAGENT_SECRET_<NAME> or --ask-secret NAME instead",
    )
    parser.add_argument(
        "--ask-secret",
        action="append",
        default=[],
        metavar="NAME",
        help="ask for the secret NAME on the terminal (not echoed) before the run (repeatable)",
    )
    parser.add_argument(
        "--secret-pattern",
        action="append",
        default=[],
        help="regex of on-screen text to black out (repeatable)",
    )
    parser.add_argument(
        "--redact-region",
        action="append",
        default=[],
        help="X,Y,W,H screen region to black out (repeatable)",
    )
    parser.add_argument(
        "--no-settle",
        action="store_true",
        help="do not wait for the screen to settle before each step",
    )
    parser.add_argument(
        "--skills",
        action="append",
        type=Path,
        default=[],
        help="more skill files or folders (repeatable)",
    )
    parser.add_argument("--no-skills", action="store_true", help="offer the model no skills")
    parser.add_argument(
        "--secrets-file",
        type=Path,
        help="YAML of secrets for skills: 'name: value' or 'name: {value, origins, windows}' "
        "binding it to origins or windows (or GUIAGENT_SECRET_<NAME>)",
    )
    parser.add_argument(
        "--hotkey", default="ctrl+alt+k", help="desktop: kill-switch key chord ('' to disable)"
    )


def _add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:30000")
    parser.add_argument(
        "--model", dest="model_name", help="served model name (default: asked from /v1/models)"
    )
    parser.add_argument("--api-key", help="bearer token for the model server (default: none sent)")
    parser.add_argument(
        "--profile",
        default="step3-vl",
        help="model profile (step3-vl, qwen2.5-vl, ui-tars-1.5, or a YAML file)",
    )
    parser.add_argument(
        "--coord-space",
        choices=["image", "norm1000", "norm1"],
        help="how the model's numbers are read (default: the profile's)",
    )
    parser.add_argument(
        "--max-image-tokens",
        type=int,
        help="image budget in visual tokens (default: the profile's)",
    )
    parser.add_argument("--stream", action="store_true", help="stream replies over SSE")
    parser.add_argument(
        "--pacore",
        type=int,
        default=0,
        metavar="K",
        help="PaCoRe: K parallel rollouts and a synthesis",
    )
    parser.add_argument(
        "--ground-votes",
        type=int,
        default=1,
        metavar="N",
        help="sample N answers, take the densest cluster",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per model request")
    parser.add_argument(
        "--max-reply-bytes",
        type=int,
        default=MAX_REPLY_BYTES,
        metavar="N",
        help="refuse a model reply (body or stream) larger than N bytes: the run fails, named",
    )
    parser.add_argument(
        "--max-tool-calls",
        type=int,
        default=MAX_TOOL_CALLS,
        metavar="N",
        help="refuse a model reply with more than N tool calls: the run fails, named",
    )


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; only the ``only`` subcommand's module is imported (fast start;
    none for ``guiagent --help``)."""
    parser = Parser(prog="guiagent", description="Operate graphical interfaces like a person.")
    parser.add_argument("--version", action="version", version=f"guiagent {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log lines (-v info, -vv debug)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_arguments(
        sub.add_parser("run", help="run a natural-language task in a browser or on the desktop")
    )
    for name, (module, help_text) in COMMANDS.items():
        if name != only:  # a placeholder: `guiagent --help` imports no command module
            sub.add_parser(name, help=help_text, add_help=False)
            continue
        mod = importlib.import_module(f"guiagent.commands.{module}")
        mod.add_arguments(sub.add_parser(name, help=help_text))
    return parser


def _config_from_args(args: argparse.Namespace):  # -> AgentConfig
    from guiagent.agent.config import AgentConfig

    regions = [parse_region(text) for text in args.redact_region]
    return AgentConfig(
        model_url=args.model_url,
        model_name=args.model_name,
        api_key=args.api_key,
        profile=args.profile,
        coord_space=args.coord_space,
        max_image_tokens=args.max_image_tokens,
        stream=args.stream,
        pacore=args.pacore,
        ground_votes=args.ground_votes,
        request_timeout_s=args.timeout,
        max_reply_bytes=args.max_reply_bytes,
        max_tool_calls=args.max_tool_calls,
        max_steps=args.max_steps,
        max_seconds=args.max_seconds,
        max_tokens=args.max_tokens,
        settle=not args.no_settle,
        dry_run=args.dry_run,
        policy_path=args.policy,
        secrets=args.secret,
        secret_patterns=args.secret_pattern,
        redact_regions=regions,
        record_dir=args.record or default_run_dir(args.task),
    )


def check_run_arguments(args: argparse.Namespace) -> None:
    """Everything about ``guiagent run``'s input that can be checked before starting: UsageError."""
    for option in ("--start-url", "--browser-cdp", "--browser-ws", "--model-url"):
        value = getattr(args, option[2:].replace("-", "_"))
        if value:
            check_url(option, value)
    parse_size("--viewport", args.viewport)
    parse_size("--display-size", args.display_size)
    for option in ("--device-scale-factor", "--max-steps", "--max-seconds", "--max-tokens"):
        check_positive(option, getattr(args, option[2:].replace("-", "_")))
    check_positive("--timeout", args.timeout)
    check_positive("--max-tool-calls", args.max_tool_calls)
    if args.max_reply_bytes < 1024:
        raise UsageError(f"--max-reply-bytes must be at least 1024, got {args.max_reply_bytes}")
    for text in args.redact_region:
        parse_region(text)
    if not (str(args.monitor).isdigit() or args.monitor in ("all", "primary")):
        raise UsageError(
            f"--monitor wants a number (1, 2...), 'all' or 'primary', got {args.monitor!r}"
        )
    for option, path in (("--policy", args.policy), ("--secrets-file", args.secrets_file)):
        if path is not None and not path.is_file():
            raise UsageError(f"{option} {path}: no such file")
    if args.env == "browser":
        if not (args.start_url or args.browser_cdp or args.browser_ws):
            raise UsageError(
                "--env browser needs --start-url URL, --browser-cdp URL or --browser-ws URL"
            )
        if sum(bool(v) for v in (args.browser_cdp, args.browser_ws)) > 1:
            raise UsageError("give --browser-cdp or --browser-ws, not both")
        if args.displays is not None:
            raise UsageError("--displays is for --env desktop")
        return
    if args.displays is not None:
        if not 1 <= args.displays <= 16:
            raise UsageError(f"--displays wants 1 to 16 monitors, got {args.displays}")
        if args.display:
            raise UsageError("give --display (an existing X server) or --displays N, not both")
    elif args.display:
        check_display(args.display)


def start_displays(args: argparse.Namespace, stack: contextlib.ExitStack) -> None:
    """``--displays N``: a fresh Xorg with N monitors side by side; ``args.display`` names it."""
    from guiagent.envs.display import DisplayError, XorgDummyDisplay

    width, height = parse_size("--display-size", args.display_size)
    monitors = [(width, height, i * width, 0) for i in range(args.displays)]
    try:
        xorg = stack.enter_context(XorgDummyDisplay(monitors))
    except (DisplayError, OSError) as exc:
        raise UsageError(
            f"--displays {args.displays}: cannot start Xorg: {first_line(exc)}"
        ) from exc
    args.display = xorg.display
    _console().print(
        f"display {xorg.display}: Xorg with {args.displays} monitors of {width}x{height}"
    )


def env_spec_from_args(args: argparse.Namespace):  # -> guiagent.app.EnvSpec
    from guiagent.app import EnvSpec

    if args.env == "browser":
        width, height = parse_size("--viewport", args.viewport)
        return EnvSpec(
            kind="browser",
            start_url=args.start_url,
            cdp_url=args.browser_cdp,
            ws_endpoint=args.browser_ws,
            headless=not args.headed,
            viewport=(width, height),
            device_scale_factor=args.device_scale_factor,
            executable_path=args.browser_executable,
        )
    monitor: int | str = int(args.monitor) if str(args.monitor).isdigit() else args.monitor
    return EnvSpec(kind="desktop", display=args.display, monitor=monitor)


def run_settings_from_args(args: argparse.Namespace):  # -> guiagent.app.RunSettings
    """The run's skills, secrets and kill switch: the flags, over GUIAGENT_* variables."""
    from guiagent.app import RunSettings

    return RunSettings.from_env(
        skills=not args.no_skills,
        skill_paths=args.skills or None,
        secrets_file=args.secrets_file,
        # asked on the terminal, never on the command line
        secret_values={name: ask_secret(name) for name in args.ask_secret} or None,
        hotkey=args.hotkey,
    )


def make_environment(args: argparse.Namespace):  # -> Environment (async context manager)
    from guiagent.app import make_env

    return make_env(env_spec_from_args(args))


def environment_error(args: argparse.Namespace, exc: BaseException) -> UsageError:
    """A failure to open the environment, as one line naming the option that caused it."""
    reason = first_line(exc)
    if args.env == "desktop":
        return UsageError(
            f"cannot open the desktop {args.display or ''}: {reason}".replace("  ", " ")
        )
    if args.browser_cdp:
        return UsageError(f"--browser-cdp {args.browser_cdp}: cannot attach: {reason}")
    if args.browser_ws:
        hint = (
            ""
            if args.browser_executable
            else " (if the server has no browser of its own, pass --browser-executable"
            " and start it with --unsafe)"
        )
        return UsageError(f"--browser-ws {args.browser_ws}: {reason}{hint}")
    if args.start_url and "goto" in str(exc).split(":")[0].lower() + reason.lower():
        return UsageError(f"--start-url {args.start_url}: cannot open it: {reason}")
    return UsageError(f"cannot start the browser: {reason}")


@contextlib.asynccontextmanager
async def opened_environment(args: argparse.Namespace):  # -> AsyncIterator[Environment]
    """The started environment; a failure to start is a UsageError (one line, exit code 2)."""
    from playwright.async_api import Error as PlaywrightError

    from guiagent.core.env import SurfaceGoneError

    env = make_environment(args)
    try:
        await env.__aenter__()
    except (PlaywrightError, SurfaceGoneError, OSError, RuntimeError) as exc:
        raise environment_error(args, exc) from exc
    try:
        yield env
    finally:
        await env.__aexit__(None, None, None)


async def _run_task(args: argparse.Namespace) -> int:
    from guiagent.app import build_run
    from guiagent.models.openai_client import ModelError
    from guiagent.record.trajectory import RecordingError

    check_run_arguments(args)
    config = _config_from_args(args)
    if args.secret:
        logger.warning(
            "--secret VALUE is deprecated: the value is visible to every user in the process "
            "list; use --secrets-file, GUIAGENT_SECRET_<NAME> or --ask-secret NAME"
        )
    if not config.model_url:
        _console().print(
            "[red]error:[/] --model-url is required for `guiagent run` (start one with `guiagent serve`)"
        )
        return 2
    settings = run_settings_from_args(args)
    with contextlib.ExitStack() as stack:
        if args.env == "desktop" and args.displays:
            start_displays(args, stack)  # sets args.display
        async with (
            opened_environment(args) as env,  # failing to open it is a one-line error
            build_run(config, env, settings, install_sigint=True) as run,
        ):
            if run.hotkey:
                _console().print(
                    f"kill switch: {run.hotkey}, Ctrl-C, or the pointer into a screen corner"
                )
            for note in run.notes:
                _console().print(f"[yellow]{escape(note)}[/]")
            try:
                result = await run.agent.run(args.task)
            except (ModelError, RecordingError) as exc:  # unreachable, not ready, a used run dir
                _console().print(f"[red]error:[/] {escape(_scrub(first_line(exc)))}")
                return 2
    colour = "green" if result.ok else "red"
    _console().print(
        f"[{colour}]{result.status}[/] after {result.steps} steps: {result.answer or result.stop_reason}"
    )
    if result.run_dir:
        _console().print(
            f"recording: {result.run_dir}  (report: guiagent report {result.run_dir})", markup=False
        )
    return 0 if result.ok else 1


def _scrub(text: str) -> str:
    from guiagent.core.redact import scrub

    return scrub(text)


def ask_secret(name: str) -> str:
    """A secret typed on the terminal, not echoed (a clear error without a terminal)."""
    import getpass

    if not sys.stdin.isatty():
        raise ValueError(f"--ask-secret {name}: no terminal to ask on; use GUIAGENT_SECRET_<NAME>")
    value = getpass.getpass(f"secret {name}: ")
    if not value:
        raise ValueError(f"--ask-secret {name}: empty value")
    return value


def _lazy_redacting_sink() -> Any:
    """core.redact's redacting sink, imported at the first log line (`--help` logs none)."""
    sink: Any = None

    def write(message: Any) -> None:
        nonlocal sink
        if sink is None:
            from guiagent.core.redact import redacting_sink

            sink = redacting_sink(lambda: sys.stderr)
        sink(message)

    return write


def configure_logging(verbosity: int) -> None:
    """The command line shows guiagent's own log (the library keeps it disabled: see __init__)."""
    logger.enable("guiagent")
    logger.remove()
    level = "WARNING" if verbosity == 0 else "INFO" if verbosity == 1 else "DEBUG"
    # every line (tracebacks too) passes the live runs' redaction; loguru's variable dumps
    # (diagnose) would print the task and secrets held in locals: only in debug mode
    logger.add(
        _lazy_redacting_sink(),
        level=level,
        format="<level>{level: <7}</level> {message}",
        colorize=sys.stderr.isatty(),
        diagnose=verbosity >= 2,
        backtrace=verbosity >= 2,
    )


def main(argv: list[str] | None = None) -> int:
    """The ``guiagent`` command; ``argv`` None means this process's own command line."""
    if argv is not None:
        return _main(argv)
    pause_gc_for_startup()  # until the command has loaded what it needs (startup_done)
    code = _main(sys.argv[1:])
    # the process ends now: the interpreter's last garbage collections would walk every
    # object of the libraries loaded (numpy, pydantic, Playwright: 0.3-0.5 s after a
    # scenario run); frozen objects are left to the exit (not when main is called in-process)
    gc.freeze()
    return code


def _main(argv: list[str]) -> int:
    configure_logging(0)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    # top-level help lists the subcommands without importing them (fast `guiagent --help`)
    parser = build_parser(chosen if chosen in COMMANDS else "")
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    try:
        if args.command == "run":
            import asyncio

            startup_done()
            return asyncio.run(_run_task(args))
        module = importlib.import_module(f"guiagent.commands.{COMMANDS[args.command][0]}")
        if args.command != "scenario":  # a scenario run says when its step engine is loaded
            startup_done()
        return int(module.run(args))
    except KeyboardInterrupt:
        _console().print("[yellow]interrupted[/]")
        return 1
    except (ValueError, FileNotFoundError) as exc:
        _console().print(f"[red]error:[/] {escape(_scrub(first_line(exc)))}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
