"""``guiagent narrate``: say what is on the screen, and (``--watch``) what changes.

Local mode (default) needs no model: the page's full accessibility tree in a browser (CDP),
AT-SPI on the desktop, and the pixels (OCR, shapes) where an application exposes no tree
or the tree leaves something unnamed. ``--compare`` prints the pixels' narration beside
the tree's. ``--model URL`` asks a served Step3-VL for a
concise description and a grounded element list instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from loguru import logger
from rich.console import Console
from rich.markup import escape

from guiagent.cliparse import UsageError, check_display, check_url, cli_console  # one-line errors
from guiagent.core.env import SurfaceGoneError
from guiagent.core.redact import RedactionError, Redactor
from guiagent.narrate.narrator import NarrateError, Narrator, Scope
from guiagent.narrate.render import announcement_ssml, compare_text, render
from guiagent.narrate.schema import Announcement, Narration
from guiagent.narrate.speech import Speaker, SpeechError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env", choices=["browser", "desktop"], default="browser", help="what to describe"
    )
    parser.add_argument("--start-url", help="browser: the page to open")
    parser.add_argument(
        "--browser-cdp", metavar="URL", help="browser: narrate a running Chromium's active page"
    )
    parser.add_argument("--viewport", default="1280x800", help="browser: viewport WxH (CSS px)")
    parser.add_argument("--display", help="desktop: X display such as :1 (default: $DISPLAY)")
    parser.add_argument("--monitor", default="all", help="desktop: monitor number, or 'all'")
    parser.add_argument(
        "--model",
        default="local",
        help="'local' (no model: DOM, accessibility tree, OCR) or the URL of an "
        "OpenAI-compatible server such as http://127.0.0.1:30000",
    )
    parser.add_argument(
        "--reader",
        choices=["tree", "dom", "pixels"],
        default="tree",
        help="local mode reads the accessibility tree (browser: CDP, desktop: AT-SPI, with "
        "pixels where an application has none), the page's DOM, or the pixels alone",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="print the pixel narration beside the tree's (for testers)",
    )
    parser.add_argument(
        "--fill-model",
        metavar="URL",
        help="tree mode: name images the tree leaves unnamed and OCR cannot read with the "
        "model at this OpenAI-compatible URL",
    )
    parser.add_argument("--profile", default="step3-vl", help="model profile (model mode)")
    parser.add_argument("--api-key", help="model mode: API key of the server")
    parser.add_argument(
        "--max-words", type=int, default=60, help="model mode: longest description, in words"
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument("--region", metavar="X,Y,W,H", help="narrate only this screen region")
    scope.add_argument(
        "--under-pointer", action="store_true", help="desktop: what the pointer is on"
    )
    scope.add_argument("--focused", action="store_true", help="the focused window or element")
    parser.add_argument(
        "--format", choices=["text", "ssml", "json"], default="text", help="output format"
    )
    parser.add_argument("--out", type=Path, help="write here instead of the terminal")
    parser.add_argument("--speak", action="store_true", help="speak with espeak-ng (or pyttsx3)")
    parser.add_argument(
        "--speak-wav",
        type=Path,
        metavar="DIR",
        help="with --speak: write each utterance as a WAV file in DIR (no sound device)",
    )
    parser.add_argument("--voice", help="speech voice (espeak-ng -v)")
    parser.add_argument("--rate", type=int, default=175, help="speech rate, words per minute")
    parser.add_argument("--watch", action="store_true", help="keep watching; announce changes")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="watch: least seconds between announcements"
    )
    parser.add_argument("--duration", type=float, help="watch: stop after this many seconds")
    parser.add_argument(
        "--private",
        action="append",
        default=[],
        metavar="X,Y,W,H",
        help="screen region never read, written or sent (repeatable)",
    )
    parser.add_argument(
        "--private-window",
        action="append",
        default=[],
        metavar="TITLE",
        help="window (title, glob or re:regex) never read (repeatable)",
    )
    parser.add_argument(
        "--secret",
        action="append",
        default=[],
        help="DEPRECATED (visible in the process list): a value never spoken or written; "
        "use --secrets-file, GUIAGENT_SECRET_<NAME> or --ask-secret NAME instead",
    )
    parser.add_argument(
        "--secrets-file",
        type=Path,
        help="YAML of secrets ('name: value' or 'name: {value, ...}'): never spoken or written "
        "(also GUIAGENT_SECRETS_FILE and GUIAGENT_SECRET_<NAME>)",
    )
    parser.add_argument(
        "--ask-secret",
        action="append",
        default=[],
        metavar="NAME",
        help="ask for the secret NAME on the terminal (not echoed) before narrating (repeatable)",
    )


class _Output:
    """Where narrations and announcements go: the terminal or a file, and the speaker."""

    def __init__(self, args: argparse.Namespace, console: Console, speaker: Speaker | None):
        self.args = args
        self.console = console
        self.speaker = speaker
        self.fmt: str = args.format
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text("", encoding="utf-8")

    def _write(self, text: str) -> None:
        if self.args.out is not None:
            with self.args.out.open("a", encoding="utf-8") as f:
                f.write(text + "\n")
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    async def narration(self, narration: Narration) -> None:
        self._write(render(narration, self.fmt))  # type: ignore[arg-type]
        if self.speaker is not None:
            if self.fmt == "ssml":
                await self.speaker.say(render(narration, "ssml"), ssml=True)
            else:
                await self.speaker.say(render(narration, "text"))

    async def comparison(self, tree: Narration, pixels: Narration) -> None:
        if self.fmt == "json":
            data = {"tree": tree.model_dump(mode="json"), "pixels": pixels.model_dump(mode="json")}
            self._write(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            self._write(compare_text(tree, pixels))
        if self.speaker is not None:
            await self.speaker.say(render(tree, "text"))

    async def announce(self, announcements: list[Announcement]) -> None:
        if self.fmt == "json":
            for a in announcements:
                self._write(json.dumps(a.model_dump(mode="json"), ensure_ascii=False))
        elif self.fmt == "ssml":
            self._write(announcement_ssml(announcements))
        else:
            for a in announcements:
                self._write(a.text)
        if self.speaker is not None:  # the newest announcement cuts off the last one
            await self.speaker.say(". ".join(a.text for a in announcements))


def _scope(args: argparse.Namespace) -> Scope:
    if args.region:
        return Scope.parse_region(args.region)
    if args.under_pointer:
        return Scope(kind="pointer")
    if args.focused:
        return Scope(kind="focused")
    return Scope()


def _viewport(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise NarrateError(f"--viewport expects WxH such as 1280x800, got {text!r}") from exc
    return width, height


def _check(args: argparse.Namespace) -> None:
    if args.env == "browser" and not (args.start_url or args.browser_cdp):
        raise NarrateError("the browser needs --start-url URL (or --browser-cdp URL)")
    if args.env == "browser" and args.under_pointer:
        raise NarrateError("--under-pointer needs --env desktop: a page has no pointer to follow")
    if args.interval < 0 or args.max_words < 1:
        raise NarrateError("--interval must be >= 0 and --max-words >= 1")
    if args.speak_wav and not args.speak:
        raise NarrateError("--speak-wav goes with --speak")
    if args.compare and (args.watch or args.model != "local" or args.reader == "pixels"):
        raise NarrateError(
            "--compare sets a tree (or DOM) narration beside the pixels': "
            "not with --watch, --model or --reader pixels"
        )
    for option, value in (("--start-url", args.start_url), ("--browser-cdp", args.browser_cdp)):
        if value and args.env == "browser":
            check_url(option, value)
    if args.env == "desktop" and args.display:
        check_display(args.display)


def _open_env(args: argparse.Namespace) -> Any:
    if args.env == "desktop":
        from guiagent.envs.desktop import DesktopEnv

        return DesktopEnv(display=args.display, monitor=args.monitor)
    from guiagent.envs.browser import BrowserEnv

    return BrowserEnv(
        start_url=args.start_url, cdp_url=args.browser_cdp, viewport=_viewport(args.viewport)
    )


def secret_values(args: argparse.Namespace) -> list[str]:
    """Every value narration must never speak or write: the same sources as `guiagent run`."""
    from guiagent.cli import ask_secret
    from guiagent.skills.model import SecretStore, SkillError

    if args.secret:
        logger.warning(
            "--secret VALUE is deprecated: the value is visible to every user in the process "
            "list; use --secrets-file, GUIAGENT_SECRET_<NAME> or --ask-secret NAME"
        )
    try:
        asked = {name: ask_secret(name) for name in args.ask_secret}
        store = SecretStore(asked, file=args.secrets_file)
    except (SkillError, ValueError) as exc:
        raise UsageError(str(exc)) from exc
    return [*args.secret, *store.known_values()]


async def _main(args: argparse.Namespace, console: Console, secrets: list[str]) -> int:
    scope = _scope(args)
    redactor = Redactor(
        regions=[Scope.parse_region(r).rect for r in args.private],  # type: ignore[misc]
        window_titles=args.private_window,
        secrets=secrets,
    )
    speaker = (
        Speaker(voice=args.voice, rate=args.rate, wav_dir=args.speak_wav) if args.speak else None
    )
    output = _Output(args, console, speaker)
    env = _open_env(args)
    client: Any = None
    clients: list[Any] = []
    narrators: list[Narrator] = []
    filler: Any = None
    try:
        describer = None
        if args.model != "local":
            from guiagent.models.openai_client import ModelClient
            from guiagent.models.profiles import get_profile
            from guiagent.narrate.model import ModelDescriber

            profile = get_profile(args.profile)
            client = ModelClient(args.model, api_key=args.api_key)
            await client.health()  # fail fast, before opening a browser or a display
            describer = ModelDescriber(client, profile, max_words=args.max_words)
        if args.fill_model:
            from guiagent.models.openai_client import ModelClient
            from guiagent.models.profiles import get_profile
            from guiagent.narrate.model import ModelDescriber

            fill_client = ModelClient(args.fill_model, api_key=args.api_key)
            clients.append(fill_client)
            await fill_client.health()
            filler = ModelDescriber(fill_client, get_profile(args.profile))
        await env.start()
        narrator = Narrator(
            env, redactor=redactor, model=describer, reader=args.reader,
            pixel_model=filler, pixel_controls=True,
        )  # fmt: skip
        narrators.append(narrator)
        if args.compare:
            pixels = Narrator(env, redactor=redactor, reader="pixels", pixel_controls=True)
            narrators.append(pixels)
            await output.comparison(await narrator.narrate(scope), await pixels.narrate(scope))
        elif not args.watch:
            await output.narration(await narrator.narrate(scope))
        else:
            from guiagent.narrate.watch import Watcher

            watcher = Watcher(narrator, scope, min_interval_s=args.interval)
            await output.narration(await watcher.start())
            await watcher.run(output.announce, duration_s=args.duration)
        if speaker is not None:
            await speaker.wait()
        return 0
    finally:
        if speaker is not None:
            await speaker.close()
        for each in narrators:
            await each.aclose()
        if client is not None:
            await client.aclose()
        for each in clients:
            await each.aclose()
        await env.close()


def run(args: argparse.Namespace) -> int:
    console = cli_console(stderr=True)
    try:
        _check(args)
        secrets = secret_values(args)
        return asyncio.run(_main(args, cli_console(), secrets))
    except (NarrateError, RedactionError, SpeechError, UsageError) as exc:
        console.print(f"[red]narrate:[/red] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt:
        return 0
    except SurfaceGoneError as exc:
        console.print(f"[red]narrate: the screen went away:[/red] {escape(str(exc))}")
        return 1
    except Exception as exc:
        from guiagent.models.openai_client import ModelError, ModelServerUnreachable
        from guiagent.models.profiles import ProfileError
        from guiagent.narrate.model import ModelNarrationError

        if isinstance(exc, (ModelServerUnreachable, ProfileError)):
            console.print(f"[red]narrate:[/red] {escape(str(exc))}")
            return 2
        if isinstance(exc, (ModelError, ModelNarrationError)):
            console.print(f"[red]narrate: the model failed:[/red] {escape(str(exc))}")
            return 1
        logger.exception("narrate failed")
        raise
