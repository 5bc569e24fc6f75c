"""``guiagent replay RUN``: re-execute a recording (strict or heal) or verify it."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from rich.markup import escape

from guiagent.agent.policy import Policy, PolicyError
from guiagent.agent.replay_act import executor_act
from guiagent.cliparse import cli_console
from guiagent.core.env import Frame
from guiagent.core.killswitch import KillSwitch
from guiagent.record.replay import (
    DEFAULT_THRESHOLD,
    ModelFallback,
    ReplayError,
    ReplayReport,
    rebase_url,
    replay,
)
from guiagent.record.trajectory import RecordingError, Run, load


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", type=Path, help="the run directory")
    parser.add_argument(
        "--mode",
        choices=["strict", "heal", "verify"],
        default="strict",
        help="strict: same points, fail on a changed screen; heal: re-locate moved targets; "
        "verify: check the recording against its frames without acting",
    )
    parser.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="value of a typed variable"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="scale the recorded pauses (0: as fast as possible)",
    )
    parser.add_argument("--env", choices=["browser", "desktop"], help="default: the run's surface")
    parser.add_argument(
        "--start-url", help="browser: page to open (default: the URL of the first step)"
    )
    parser.add_argument(
        "--base-url",
        help="browser: open the recorded page on this server instead (e.g. http://localhost:8000:"
        " the recorded path is kept, scheme/host/port replaced)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=DEFAULT_THRESHOLD,
        help="largest screen difference accepted (0..1)",
    )
    parser.add_argument(
        "--save-healed",
        type=Path,
        metavar="DIR",
        help="heal: write the healed run as a new recording",
    )
    parser.add_argument("--out", type=Path, help="where replay.json and difference crops go")
    parser.add_argument("--headed", action="store_true", help="browser: show the window")
    parser.add_argument(
        "--policy",
        type=Path,
        help="judge every replayed action by this policy YAML (default: no policy; the kill"
        " switch, Ctrl-C, always applies)",
    )
    parser.add_argument(
        "--model",
        metavar="URL",
        help="heal: ask this model server where a target is when the recorded evidence does not decide",
    )


def _variables(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ReplayError(f"--var expects NAME=VALUE, got {item!r}")
        out[name] = value
    return out


async def _open_env(args: argparse.Namespace, run: Run) -> Any:
    surface = args.env or run.header.surface or "browser"
    if surface == "desktop":
        from guiagent.envs.desktop import DesktopEnv

        env: Any = DesktopEnv()
    else:
        from guiagent.envs.browser import BrowserEnv

        url = args.start_url or next(
            (s.meta.get("url") for s in run.steps if s.meta.get("url")), None
        )
        if not url:
            raise ReplayError("the run records no page URL: give --start-url")
        if args.base_url and not args.start_url:
            url = rebase_url(url, args.base_url)
        first = next((s for s in run.steps if s.frame_size), None)
        scale = float(((first.meta.get("transform") or {}).get("scale", 1.0)) if first else 1.0)
        viewport = (
            (round(first.frame_size[0] / scale), round(first.frame_size[1] / scale))
            if first
            else (1280, 800)
        )
        env = BrowserEnv(
            start_url=url, headless=not args.headed, viewport=viewport, device_scale_factor=scale
        )
    await env.start()
    return env


def _grounder() -> Any:
    try:
        from guiagent.grounding.local import LocalGrounder
    except ImportError:
        return None
    # frames met while healing are unrelated to each other: incremental reading buys nothing
    return LocalGrounder(incremental=False)


def _model_fallback(client: Any) -> ModelFallback:
    """The model as heal's last resort: a point on the frame for a described target."""
    from guiagent.eval.screenspot import model_grounder

    ground = model_grounder(client)

    async def ask(frame: Frame, description: str) -> tuple[float, float] | None:
        return await ground(frame.image, description)

    return ask


async def _main(args: argparse.Namespace, run: Run, killswitch: Any) -> ReplayReport:
    variables = _variables(args.var)
    if args.mode == "verify":
        return await replay(run, None, mode="verify")
    if args.model and args.mode != "heal":
        raise ReplayError("--model is used by --mode heal only")
    policy = Policy.load(args.policy) if args.policy is not None else None  # before any window
    env = await _open_env(args, run)
    client: Any = None
    try:
        if args.model:
            from guiagent.models.openai_client import ModelClient

            client = ModelClient(args.model)
        return await replay(
            run,
            env,
            mode=args.mode,
            variables=variables,
            speed=args.speed,
            threshold=args.threshold,
            # heal reads text by OCR; strict only for a desktop scenario's expected texts
            grounder=_grounder()
            if args.mode == "heal" or run.header.surface == "desktop"
            else None,
            model=_model_fallback(client) if client is not None else None,
            out_dir=args.out,
            save_healed=args.save_healed,
            act=executor_act(env, policy, killswitch),
        )
    finally:
        if client is not None:
            await client.aclose()
        await env.close()


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    try:
        recording = load(args.run)
        if args.speed < 0:
            raise ReplayError(f"--speed must be >= 0, got {args.speed}")
        killswitch = KillSwitch()
        with killswitch.install_sigint():  # Ctrl-C stops the replay between two input events
            report = asyncio.run(_main(args, recording, killswitch))
    except (RecordingError, ReplayError, PolicyError) as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", markup=True, highlight=False)
        return 2
    console.print(report.summary(), markup=False, highlight=False)
    if report.saved_healed:
        console.print(f"healed run saved to {report.saved_healed}", markup=False)
    return 0 if report.ok else 1
