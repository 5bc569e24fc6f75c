"""The command line's parser class, checks of user input (one-line errors, exit code 2) and console.

Every option's help shows its default; a parse error is one line, not the usage block.
The checks here are pure: they turn what a user typed into values or a :class:`UsageError`.
Every command prints through :func:`cli_console`, so a message is one line whatever the width.
"""

from __future__ import annotations

import argparse
import gc
import re
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn
from urllib.parse import urlsplit

if TYPE_CHECKING:  # rich is imported on first output (`guiagent --help` imports no rich)
    from rich.console import Console, RenderableType


def cli_console(*, stderr: bool = False) -> Console:
    """The console every command prints through.

    It never hard-wraps a line (a long path stays one line off a terminal, where rich would
    wrap at 80 columns), never turns ``:id:`` into an emoji and never colours numbers or
    paths on its own. Markup stays on for the command's own styling: user text printed with
    it must go through ``rich.markup.escape`` (or be printed with ``markup=False``).
    """
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, emoji=False, highlight=False)


def print_wide(console: Console, renderable: RenderableType) -> None:
    """Print a table as wide as it needs off a terminal (no squeezing to 80 columns)."""
    if not console.is_terminal:
        wide = console.options.update(max_width=10_000)
        console.width = max(console.width, console.measure(renderable, options=wide).maximum)
    console.print(renderable)


class UsageError(ValueError):
    """Bad input on the command line: printed as one line, exit code 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help unless its text already says the default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        said = ("(default", "default:", "%(default)")
        if any(s in text.lower() for s in said) or not action.option_strings:
            return text
        default = action.default
        if default is None or default is False or default == [] or default == argparse.SUPPRESS:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with :class:`HelpFormatter` (also for every subparser) and one-line errors."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


URL_SCHEMES = {
    "--start-url": ("http", "https", "file", "data", "about"),
    "--browser-cdp": ("http", "https", "ws", "wss"),
    "--browser-ws": ("ws", "wss"),
    "--model-url": ("http", "https"),
}


def check_url(option: str, value: str) -> str:
    """``value`` when it is a URL of a scheme ``option`` takes; else a UsageError saying what to give."""
    schemes = URL_SCHEMES[option]
    scheme = urlsplit(value).scheme.lower()
    if not scheme or len(scheme) == 1 or value.startswith(("/", "./", "../", "~")):
        if option == "--start-url" and (Path(value).expanduser().exists() or "/" in value):
            file_url = Path(value).expanduser().resolve().as_uri()
            raise UsageError(f"--start-url wants a URL, not a file path: use {file_url}")
        raise UsageError(f"{option} wants a URL such as {schemes[0]}://HOST:PORT/, got {value!r}")
    if scheme not in schemes:
        raise UsageError(
            f"{option} takes {', '.join(s + '://' for s in schemes)} URLs, got {value!r}"
        )
    if scheme not in ("file", "data", "about") and not urlsplit(value).netloc:
        raise UsageError(f"{option} {value!r} names no host")
    return value


def parse_size(option: str, value: str) -> tuple[int, int]:
    """``WxH`` (positive integers) as a pair."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", value)
    if not match or int(match[1]) <= 0 or int(match[2]) <= 0:
        raise UsageError(f"{option} wants WIDTHxHEIGHT in pixels such as 1280x800, got {value!r}")
    return int(match[1]), int(match[2])


def check_display(value: str) -> str:
    """An X display name (``:N``, ``:N.S`` or ``host:N``) that an X server answers on."""
    if not re.fullmatch(r"[\w.\-/]*:\d+(\.\d+)?", value):
        raise UsageError(f"--display wants an X display such as :1, got {value!r}")
    from guiagent.envs.display import display_reachable

    if not display_reachable(value):
        raise UsageError(
            f"--display {value}: no X server answers there "
            "(start one, or leave --display out to get a fresh Xvfb)"
        )
    return value


def parse_region(value: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or parts[2] <= 0 or parts[3] <= 0:
        raise UsageError(f"--redact-region wants X,Y,W,H (numbers, W and H > 0), got {value!r}")
    return parts  # type: ignore[return-value]


def check_positive(option: str, value: float | None) -> None:
    if value is not None and value <= 0:
        raise UsageError(f"{option} must be positive, got {value}")


def first_line(exc: BaseException) -> str:
    """An exception as one line: Playwright's "Call log" and API prefix dropped."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\w+\.\w+: ", "", text)


_gc_paused_for_startup = False


def pause_gc_for_startup() -> None:
    """The ``guiagent`` process starts: no cyclic garbage collection while it imports
    (a quarter of the import time of a scenario run goes to collections that find nothing)."""
    global _gc_paused_for_startup
    if gc.isenabled():
        gc.disable()
        _gc_paused_for_startup = True


def startup_done() -> None:
    """The modules a command needs are loaded: collect again, skipping what is loaded."""
    global _gc_paused_for_startup
    if _gc_paused_for_startup:
        _gc_paused_for_startup = False
        gc.freeze()
        gc.enable()
