"""``guiagent serve``: build and run Step3-VL's launch command, wait for health, stop on Ctrl-C."""

from __future__ import annotations

import argparse
import shlex

from rich.console import Console
from rich.markup import escape

from guiagent.serve import (
    DEFAULT_MODEL,
    ServeError,
    ServeOptions,
    build_command,
    check_engine,
    check_gpus,
    start,
    stop,
    wait_healthy,
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
    parser.add_argument("--port", type=int, default=30000, help="port the server listens on")
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
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more engine flags")


def run(args: argparse.Namespace) -> int:
    console = Console()
    extra = [a for a in (args.extra or []) if a != "--"]
    options = ServeOptions(
        engine=args.engine,
        model_path=args.model_path,
        host=args.host,
        port=args.port,
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
