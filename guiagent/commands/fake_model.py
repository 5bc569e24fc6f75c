"""``guiagent fake-model``: a stand-in model on loopback that can really drive a task (no GPU).

It speaks SGLang's OpenAI-compatible wire format (guiagent.testing.fake_server) and answers:

- by default a fixed ``finish`` (``--answer``), for wiring checks; ``--echo`` repeats what it got;
- ``--script FILE``: the replies of a YAML/JSON file, in order;
- ``--plan FILE`` with ``--cdp URL`` or ``--launch URL``: clicks on the elements a plan names,
  read from the live page over CDP (the page ``guiagent run --browser-cdp`` acts on).

``--detach`` starts it in the background and returns once it answers; ``--stop`` ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from guiagent.cliparse import UsageError, check_url, cli_console, first_line

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--script", type=Path, metavar="FILE", help="answer these replies in order (YAML or JSON)"
    )
    mode.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="DOM oracle: click/type/finish steps by CSS selector, located on the live page "
        "(needs --cdp or --launch)",
    )
    mode.add_argument(
        "--echo", action="store_true", help="finish, echoing the task and the image size received"
    )
    parser.add_argument(
        "--answer", default="done", help="the answer of the fixed finish reply (the default mode)"
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument(
        "--cdp", metavar="URL", help="DOM oracle: the Chromium (CDP URL) whose page it reads"
    )
    browser.add_argument(
        "--launch",
        metavar="URL",
        help="DOM oracle: start a headless Chromium on this page with a CDP port (see --cdp-port)",
    )
    parser.add_argument(
        "--cdp-port", type=int, default=9222, help="the CDP port of the Chromium --launch starts"
    )
    parser.add_argument(
        "--coord-space",
        choices=["image", "norm1000", "norm1"],
        default="image",
        help="DOM oracle: the space its click coordinates are in (match `run --coord-space`)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to listen on")
    parser.add_argument("--port", type=int, default=30000, help="port to listen on")
    parser.add_argument(
        "--warmup", type=float, default=0.0, help="seconds /health answers 503 at first"
    )
    life = parser.add_mutually_exclusive_group()
    life.add_argument(
        "--detach",
        action="store_true",
        help="run in the background; return once it answers (stop it with --stop)",
    )
    life.add_argument(
        "--stop", action="store_true", help="stop the detached stand-in on --port, then exit"
    )


def _pidfile(port: int) -> Path:
    root = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return root / f"guiagent-fake-model-{port}.pid"


def check_arguments(args: argparse.Namespace) -> None:
    if args.host not in LOOPBACK:
        raise UsageError(f"--host {args.host}: the stand-in listens on loopback only")
    for option in ("--port", "--cdp-port"):
        value = getattr(args, option[2:].replace("-", "_"))
        if not 0 < value < 65536:
            raise UsageError(f"{option} must be 1..65535, got {value}")
    if args.plan is not None and not (args.cdp or args.launch):
        raise UsageError("--plan needs the page to read: --cdp URL or --launch URL")
    if (args.cdp or args.launch) and args.plan is None:
        raise UsageError("--cdp and --launch serve the DOM oracle: give --plan FILE too")
    if args.cdp:
        check_url("--browser-cdp", args.cdp)
    if args.launch:
        check_url("--start-url", args.launch)
    for option, path in (("--script", args.script), ("--plan", args.plan)):
        if path is not None and not path.is_file():
            raise UsageError(f"{option} {path}: no such file")


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    if args.stop:
        return _stop(args.port, console)
    check_arguments(args)
    _load_responder_files(args)  # bad files fail here, before any detaching
    if args.detach:
        return _detach(args, console)
    try:
        asyncio.run(_serve(args, console))
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {first_line(exc)}") from exc
    return 0


def _load_responder_files(args: argparse.Namespace) -> tuple[list, list]:
    from guiagent.testing.stand_in import StandInError, load_plan, load_script

    try:
        script = load_script(args.script) if args.script else []
        plan = load_plan(args.plan) if args.plan else []
    except StandInError as exc:
        raise UsageError(str(exc)) from exc
    return script, plan


def _mode(args: argparse.Namespace) -> str:
    if args.script:
        return f"script {args.script}"
    if args.plan:
        return f"DOM oracle, plan {args.plan}"
    return "echo" if args.echo else f"fixed finish {args.answer!r}"


async def _serve(args: argparse.Namespace, console: Console) -> None:
    from guiagent.core.geometry import CoordSpace
    from guiagent.testing.dom_oracle import DomOracle
    from guiagent.testing.fake_server import FakeModelServer
    from guiagent.testing.stand_in import ScriptResponder, echo_responder, fixed_responder

    script, plan = _load_responder_files(args)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        if plan:
            page = await _oracle_page(args, stack, console)
            responder = DomOracle(page, plan, loop, CoordSpace(args.coord_space))
        elif script:
            responder = ScriptResponder(script)
        else:
            responder = echo_responder if args.echo else fixed_responder(args.answer)
        server = stack.enter_context(
            FakeModelServer(responder, host=args.host, port=args.port, warmup_s=args.warmup)
        )
        console.print(
            f"stand-in model ({_mode(args)}) at {server.url}: a fake for trying the loop, "
            "not Step3-VL; Ctrl-C stops it"
        )
        await stop.wait()


async def _oracle_page(
    args: argparse.Namespace, stack: contextlib.AsyncExitStack, console: Console
) -> Any:
    from playwright.async_api import Error as PlaywrightError

    from guiagent.envs.browser import BrowserEnv

    cdp = args.cdp
    if args.launch:
        cdp = stack.enter_context(launched_chromium(args.launch, args.cdp_port))
        console.print(f"browser: headless Chromium on {args.launch}, CDP at {cdp}")
    try:
        env = await stack.enter_async_context(BrowserEnv(cdp_url=cdp))
    except PlaywrightError as exc:
        raise UsageError(f"--cdp {cdp}: cannot attach: {first_line(exc)}") from exc
    return env.page


@contextlib.contextmanager
def launched_chromium(url: str, port: int) -> Iterator[str]:
    """A headless Chromium showing ``url`` with DevTools on ``port``; yields its CDP URL."""
    from guiagent.envs.browser import CHROMIUM_ARGS, chromium_executable

    exe = chromium_executable()
    if exe is None:
        raise UsageError("--launch: no Chromium found (run scripts/setup.sh)")
    profile = tempfile.TemporaryDirectory(prefix="guiagent-fake-model-")
    proc = subprocess.Popen(
        [exe, "--headless", f"--remote-debugging-port={port}", f"--user-data-dir={profile.name}",
         "--window-size=1280,800", *CHROMIUM_ARGS, url],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if re.search(r"DevTools listening on ws://", line):
                break
            if not line and proc.poll() is not None:
                raise UsageError(f"--launch: Chromium exited (is port {port} free?)")
        else:
            raise UsageError("--launch: Chromium did not open its DevTools port in 30 s")
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        profile.cleanup()


def _child_argv(args: argparse.Namespace) -> list[str]:
    argv = ["fake-model", "--host", args.host, "--port", str(args.port)]
    argv += ["--answer", args.answer, "--warmup", str(args.warmup)]
    argv += ["--coord-space", args.coord_space, "--cdp-port", str(args.cdp_port)]
    for option, value in (("--script", args.script), ("--plan", args.plan)):
        if value is not None:
            argv += [option, str(Path(value).resolve())]
    for option, value in (("--cdp", args.cdp), ("--launch", args.launch)):
        if value:
            argv += [option, value]
    return argv + (["--echo"] if args.echo else [])


def _detach(args: argparse.Namespace, console: Console) -> int:
    pidfile = _pidfile(args.port)
    log = Path(tempfile.gettempdir()) / f"guiagent-fake-model-{args.port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "guiagent.cli", *_child_argv(args)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
    url = f"http://{args.host}:{args.port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            lines = log.read_text(errors="replace").strip().splitlines() or ["no output"]
            raise UsageError(f"the stand-in model did not start: {lines[-1]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                break
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        raise UsageError(f"the stand-in model did not answer at {url} within 60 s (log: {log})")
    pidfile.write_text(str(proc.pid))
    console.print(f"stand-in model ({_mode(args)}) at {url}, in the background (pid {proc.pid})")
    if args.launch:
        console.print(
            f"browser: headless Chromium on {args.launch}, CDP at http://127.0.0.1:{args.cdp_port}"
        )
    console.print(f"stop it with: guiagent fake-model --stop --port {args.port}   (log: {log})")
    return 0


def _stop(port: int, console: Console) -> int:
    pidfile = _pidfile(port)
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        raise UsageError(
            f"no detached stand-in model on port {port} ({pidfile} not found)"
        ) from None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # ProcessLookupError once it is gone
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    pidfile.unlink(missing_ok=True)
    console.print(f"stopped the stand-in model on port {port}")
    return 0
