"""``guiagent console``: the live web console (watch, pause, approve, ask, replay)."""

from __future__ import annotations

import argparse
import asyncio
import socket
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from guiagent.cliparse import cli_console
from guiagent.console.app import ConsoleServer, is_loopback
from guiagent.console.runs import ConsoleError, RunManager


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    parser.add_argument("--port", type=int, default=7860, help="port of the web console")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host; every request must then carry the printed token",
    )
    parser.add_argument(
        "--recordings",
        type=Path,
        default=Path("runs"),
        metavar="DIR",
        help="where runs are recorded and listed (default: runs/ in the working directory)",
    )
    parser.add_argument("--model-url", help="default model server for runs and questions")
    parser.add_argument(
        "--allow-file-urls",
        action="store_true",
        help="allow file:, chrome: and view-source: start URLs (refused by default: a run "
        "would show local files to whoever holds the console's token)",
    )


async def _serve(
    server: ConsoleServer, sock: socket.socket, console: Console, recordings: Path
) -> None:
    serving = asyncio.ensure_future(server.serve(sock))
    while not server.server.started:
        if serving.done():
            await serving  # raises what stopped it (uvicorn exits when it cannot bind)
            return
        await asyncio.sleep(0.02)
    # printed once bound, so --port 0 shows the real port
    console.print(
        f"guiagent console on {server.url()}  (recordings in {recordings}; Ctrl+C to stop)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    await serving


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    if not 0 <= args.port <= 65535:
        console.print(
            f"[red]error:[/red] --port must be 0..65535, got {args.port}",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    manager = RunManager(
        args.recordings, default_model_url=args.model_url, allow_file_urls=args.allow_file_urls
    )
    try:
        server = ConsoleServer(manager, args.host, args.port, allow_remote=args.allow_remote)
    except ConsoleError as exc:
        console.print(
            f"[red]error:[/red] {escape(str(exc.message))}", highlight=False, soft_wrap=True
        )
        return 2
    if not is_loopback(args.host):
        console.print(
            f"[yellow]The console is reachable from the network on {args.host}.[/yellow] "
            f"Every request needs this token:\n  {server.token}",
            highlight=False,
            soft_wrap=True,
        )
    try:
        sock = server.bind()
    except OSError as exc:  # port taken, address not available
        console.print(
            f"[red]error:[/red] cannot serve on {args.host}:{args.port}: {exc.strerror or exc}",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    try:
        asyncio.run(_serve(server, sock, console, args.recordings))
    except KeyboardInterrupt:
        pass
    except SystemExit as exc:  # uvicorn exits when it cannot start
        console.print(
            f"[red]error:[/red] cannot serve on {args.host}:{args.port}: {exc}",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    return 0 if server.server.started else 2
