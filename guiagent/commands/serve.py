"""``guiagent serve``: build and run Step3-VL's launch command, wait for health, stop on Ctrl-C.

``guiagent serve --router --worker-url URL --worker-url URL`` starts sglang-router in front of
servers already running (docs/SCALING.md) and waits until they are healthy behind it.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from guiagent.cliparse import cli_console
from guiagent.serve import (
    DEFAULT_MODEL,
    RouterOptions,
    ServeError,
    ServeOptions,
    build_command,
    build_router_command,
    check_engine,
    check_gpus,
    start,
    start_router,
    stop,
    wait_healthy,
    wait_router_ready,
)

STATE_TEXT = {
    "starting": "starting",
    "loading": "loading weights (port not open yet)",
    "warming": "warming up (/health answers 503)",
    "ready": "ready",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--engine",
        choices=["sglang", "vllm"],
        default="sglang",
        help="the inference server to start",
    )
    parser.add_argument("--model-path", default=DEFAULT_MODEL, help="local path or hub id")
    parser.add_argument("--host", default="127.0.0.1", help="address the server listens on")
    parser.add_argument(
        "--port", type=int, help="port the server listens on (default: 30000; 30010 with --router)"
    )
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel GPUs per replica")
    parser.add_argument("--dp", type=int, default=1, help="data-parallel replicas")
    parser.add_argument(
        "--context-length", type=int, help="maximum tokens per request (default: the model's)"
    )
    parser.add_argument(
        "--served-model-name",
        help="name clients ask for (default: the engine's, from --model-path)",
    )
    parser.add_argument(
        "--health-timeout", type=float, default=1800.0, help="seconds to wait for /health"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command and exit")
    router = parser.add_argument_group("router (sglang-router in front of running servers)")
    router.add_argument(
        "--router", action="store_true", help="start sglang-router instead of a model server"
    )
    router.add_argument(
        "--worker-url",
        action="append",
        default=[],
        metavar="URL",
        help="a running model server behind the router (repeat for each)",
    )
    router.add_argument(
        "--policy",
        choices=["cache_aware", "round_robin", "random", "power_of_two"],
        default="cache_aware",
        help="how the router picks a worker (default: cache_aware)",
    )
    router.add_argument(
        "--balance-abs-threshold",
        type=int,
        default=1,
        help="cache_aware: in-flight difference that makes the router balance load (default 1)",
    )
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more engine flags")


def run(args: argparse.Namespace) -> int:
    console = cli_console()
    extra = [a for a in (args.extra or []) if a != "--"]
    if args.router:
        return run_router(args, extra, console)
    if args.worker_url:
        console.print("[red]error:[/] --worker-url needs --router")
        return 2
    options = ServeOptions(
        engine=args.engine,
        model_path=args.model_path,
        host=args.host,
        port=args.port or 30000,
        tp=args.tp,
        dp=args.dp,
        context_length=args.context_length,
        served_model_name=args.served_model_name,
        extra_args=extra,
    )
    command = build_command(options)
    if args.dry_run:
        console.print(shlex.join(command), soft_wrap=True, highlight=False)
        return 0
    try:
        check_engine(options.engine)
        gpus = check_gpus(options)
    except ServeError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    console.print(f"{len(gpus)} GPU(s) visible; starting {options.engine} on {options.url}")
    with terminate_as_interrupt():
        return _serve_until_stopped(args, options, command, console)


def _serve_until_stopped(
    args: argparse.Namespace, options: ServeOptions, command: list[str], console: Console
) -> int:
    process = start(command)
    try:
        with console.status("starting") as status:

            def show(state: str, waited: float) -> None:
                status.update(f"{STATE_TEXT.get(state, state)} ({waited:.0f} s)")

            waited = wait_healthy(
                options.url, timeout_s=args.health_timeout, process=process, on_state=show
            )
        console.print(
            f"[green]ready[/] after {waited:.0f} s: use --model-url {options.url}  (Ctrl-C stops the server)"
        )
        process.wait()
        return 0 if process.returncode == 0 else 1
    except ServeError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt:
        console.print("stopping the server")
        return 0
    finally:
        stop(process)


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager, ``kill``) ends the wait like Ctrl-C, so the server or
    router, which runs in its own process group, is stopped too instead of left running."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():  # handlers: main only
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_router(args: argparse.Namespace, extra: list[str], console: Console) -> int:
    """``--router``: sglang-router in front of the ``--worker-url`` servers, until Ctrl-C."""
    if not args.worker_url:
        console.print("[red]error:[/] --router needs at least one --worker-url of a running server")
        return 2
    try:
        options = RouterOptions(
            worker_urls=args.worker_url,
            host=args.host,
            port=args.port or 30010,
            policy=args.policy,
            balance_abs_threshold=args.balance_abs_threshold,
            extra_args=extra,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]).replace("_", "-")
        console.print(f"[red]error:[/] --{where}: {escape(str(first['msg']))}")
        return 2
    if args.dry_run:
        console.print(shlex.join(build_router_command(options)), soft_wrap=True, highlight=False)
        return 0
    with terminate_as_interrupt():
        return _route_until_stopped(args, options, console)


def _route_until_stopped(args: argparse.Namespace, options: RouterOptions, console: Console) -> int:
    try:
        process = start_router(options)
    except ServeError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    try:
        with console.status(f"waiting for {len(options.worker_urls)} worker(s) behind the router"):
            healthy, total = wait_router_ready(
                options.url,
                min_healthy=len(options.worker_urls),
                timeout_s=args.health_timeout,
                process=process,
            )
        console.print(
            f"[green]ready[/]: {healthy} of {total} workers healthy behind the router; "
            f"use --model-url {options.url}  (Ctrl-C stops the router)"
        )
        process.wait()
        return 0 if process.returncode == 0 else 1
    except ServeError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}")
        return 2
    except KeyboardInterrupt:
        console.print("stopping the router")
        return 0
    finally:
        stop(process, grace_s=5, first=signal.SIGTERM)
