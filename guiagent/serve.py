"""Start Step3-VL behind SGLang (or vLLM), wait until it is healthy, stop it cleanly.

The launch flags are those of Step3-VL's model card: ``--trust-remote-code``, the deepseek-r1 reasoning
parser (the answer's reasoning arrives separately) and the hermes tool-call parser.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import httpx
from loguru import logger
from pydantic import BaseModel, Field

DEFAULT_MODEL = "stepfun-ai/Step3-VL-10B"
Engine = Literal["sglang", "vllm"]
HealthState = Literal["starting", "loading", "warming", "ready"]


class ServeError(RuntimeError):
    """The server cannot be started here (missing engine, no GPU, it exited, it never got healthy)."""


class ServeOptions(BaseModel):
    engine: Engine = "sglang"
    model_path: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    port: int = Field(default=30000, ge=1, le=65535)
    tp: int = Field(default=1, ge=1)
    dp: int = Field(default=1, ge=1)
    context_length: int | None = Field(default=None, ge=1024)
    served_model_name: str | None = None
    extra_args: list[str] = Field(default_factory=list)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


# the same options under each engine's own names: tensor parallel, data parallel, context length
_ENGINE_FLAGS: dict[str, tuple[str, str, str]] = {
    "sglang": ("--tp", "--dp", "--context-length"),
    "vllm": ("--tensor-parallel-size", "--data-parallel-size", "--max-model-len"),
}


def build_command(options: ServeOptions, python: str = sys.executable) -> list[str]:
    """The launch command for the chosen engine (pure: no checks, no side effects)."""
    if options.engine == "sglang":
        cmd = [
            python, "-m", "sglang.launch_server",
            "--model-path", options.model_path,
            "--trust-remote-code",
            "--reasoning-parser", "deepseek-r1",
            "--tool-call-parser", "hermes",
        ]  # fmt: skip
    else:
        cmd = [
            "vllm", "serve", options.model_path,
            "--trust-remote-code",
            "--reasoning-parser", "deepseek_r1",
            "--enable-auto-tool-choice",
            "--tool-call-parser", "hermes",
        ]  # fmt: skip
    cmd += ["--host", options.host, "--port", str(options.port)]
    tp_flag, dp_flag, context_flag = _ENGINE_FLAGS[options.engine]
    if options.tp > 1:
        cmd += [tp_flag, str(options.tp)]
    if options.dp > 1:
        cmd += [dp_flag, str(options.dp)]
    if options.context_length:
        cmd += [context_flag, str(options.context_length)]
    if options.served_model_name:
        cmd += ["--served-model-name", options.served_model_name]
    return cmd + list(options.extra_args)


def check_engine(engine: Engine) -> None:
    if engine == "sglang" and importlib.util.find_spec("sglang") is None:
        raise ServeError(
            "sglang is not installed: pip install 'guiagent[serve]' (needs a CUDA GPU with 24 GB+)"
        )
    if engine == "vllm" and shutil.which("vllm") is None:
        raise ServeError("vllm is not installed: pip install vllm (needs a CUDA GPU with 24 GB+)")


def visible_gpus(env: dict[str, str] | None = None) -> list[str]:
    """GPUs the server would see: honours CUDA_VISIBLE_DEVICES, asks nvidia-smi, else /dev/nvidia*."""
    env = dict(os.environ if env is None else env)
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return []
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, env=env
            )
        except (OSError, subprocess.TimeoutExpired):
            out = None
        if out is not None and out.returncode == 0:
            gpus = [line for line in out.stdout.splitlines() if line.startswith("GPU ")]
            if visible:
                wanted = {v.strip() for v in visible.split(",")}
                gpus = [
                    g for i, g in enumerate(gpus) if str(i) in wanted or any(w in g for w in wanted)
                ]
            return gpus
    return sorted(str(p) for p in Path("/dev").glob("nvidia[0-9]*"))


def check_gpus(options: ServeOptions, env: dict[str, str] | None = None) -> list[str]:
    gpus = visible_gpus(env)
    if not gpus:
        raise ServeError(
            "no GPU is visible (nvidia-smi found none, or CUDA_VISIBLE_DEVICES hides them): Step3-VL-10B "
            "needs a CUDA GPU with 24 GB+ of memory. Run the server on a GPU machine and pass its URL "
            "to --model-url."
        )
    needed = options.tp * options.dp
    if len(gpus) < needed:
        raise ServeError(
            f"--tp {options.tp} x --dp {options.dp} needs {needed} GPUs, {len(gpus)} visible"
        )
    return gpus


def probe_health(url: str, timeout_s: float = 2.0) -> HealthState:
    """One look at the server: refused while weights load, /health 503 while warming, 200 when ready."""
    try:
        response = httpx.get(f"{url}/health", timeout=timeout_s)
    except httpx.ConnectError:
        return "loading"
    except httpx.HTTPError:
        return "starting"
    if response.status_code == 200:
        return "ready"
    if response.status_code == 404:  # an engine without /health: fall back to the model list
        try:
            return (
                "ready"
                if httpx.get(f"{url}/v1/models", timeout=timeout_s).status_code == 200
                else "warming"
            )
        except httpx.HTTPError:
            return "warming"
    return "warming"


def wait_healthy(
    url: str,
    timeout_s: float = 1800.0,
    poll_s: float = 1.0,
    process: subprocess.Popen[bytes] | None = None,
    on_state: Callable[[HealthState, float], None] | None = None,
) -> float:
    """Poll until the server is ready; returns the seconds waited. Fails fast if the process exits."""
    started = time.monotonic()
    last: HealthState | None = None
    while True:
        waited = time.monotonic() - started
        if process is not None and process.poll() is not None:
            raise ServeError(
                f"the server exited with code {process.returncode} before it was healthy (see its output above)"
            )
        state = probe_health(url)
        if state != last or on_state is not None:
            if state != last:
                logger.info("server at {}: {} after {:.0f} s", url, state, waited)
            if on_state is not None:
                on_state(state, waited)
            last = state
        if state == "ready":
            return waited
        if waited > timeout_s:
            raise ServeError(
                f"the server at {url} was not healthy after {timeout_s:.0f} s (last state: {state})"
            )
        time.sleep(poll_s)


def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    logger.info("starting: {}", " ".join(command))
    try:
        return subprocess.Popen(command, env=env, start_new_session=True)
    except FileNotFoundError as exc:
        raise ServeError(f"cannot run {command[0]!r}: {exc}") from exc


def stop(
    process: subprocess.Popen[bytes], grace_s: float = 30.0, first: signal.Signals = signal.SIGINT
) -> int:
    """Stop the server's whole process group: ``first`` (SIGINT: a clean shutdown), then
    SIGTERM (unless that was the first), then SIGKILL."""
    if process.poll() is not None:
        return process.returncode
    steps = [(first, grace_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)]
    if first == signal.SIGTERM:  # the same signal again would only wait longer
        del steps[1]
    for sig, wait_s in steps:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            return process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            logger.warning("server did not stop on {}; escalating", sig.name)
    return process.wait(timeout=5)


# --- sglang-router in front of several servers ------------------------------------------------

RouterPolicy = Literal["cache_aware", "round_robin", "random", "power_of_two"]
ROUTER_INSTALL_HINT = "pip install 'guiagent[scale]' (the sglang-router wheel; no GPU needed)"


class RouterOptions(BaseModel):
    """sglang-router (``python -m sglang_router.launch_router``) in front of running servers.

    The cache-aware policy keeps each agent on the worker that holds its prompt prefix. Its
    load balancing only steps in when the in-flight counts differ by more than
    ``balance_abs_threshold`` (SGLang's default is 64, sized for many requests per worker);
    an agent has at most one request in flight, and all agents share the same system
    prompt, which alone is over the cache threshold: with the default every agent would
    stay on the first worker. 1 spreads new agents at once and still keeps each on its
    worker (docs/SCALING.md has the measurements).
    """

    worker_urls: list[str] = Field(min_length=1)
    host: str = "127.0.0.1"
    port: int = Field(default=30010, ge=1, le=65535)
    policy: RouterPolicy = "cache_aware"
    balance_abs_threshold: int = Field(default=1, ge=0)
    balance_rel_threshold: float = Field(default=1.5, ge=1.0)
    prometheus_port: int | None = Field(default=None, ge=1, le=65535)
    health_check_interval_s: int = Field(default=5, ge=1)
    health_failure_threshold: int = Field(default=2, ge=1)
    circuit_breaker_timeout_s: int = Field(default=10, ge=1)
    log_level: Literal["debug", "info", "warn", "error"] = "warn"
    extra_args: list[str] = Field(default_factory=list)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def build_router_command(
    options: RouterOptions, python: str = sys.executable, prometheus_port: int | None = None
) -> list[str]:
    """sglang-router's launch command (pure). A worker that dies is taken out after
    ``health_failure_threshold`` failed checks ``health_check_interval_s`` apart (requests to
    it fail over at once: the router retries them on another worker), and is used again
    once its health checks pass and its circuit breaker (open after the failures) half-opens
    after ``circuit_breaker_timeout_s``."""
    port = options.prometheus_port or prometheus_port
    cmd = [
        python, "-m", "sglang_router.launch_router",
        "--worker-urls", *options.worker_urls,
        "--host", options.host, "--port", str(options.port),
        "--policy", options.policy,
        "--balance-abs-threshold", str(options.balance_abs_threshold),
        "--balance-rel-threshold", f"{options.balance_rel_threshold:g}",
        "--health-check-interval-secs", str(options.health_check_interval_s),
        "--health-failure-threshold", str(options.health_failure_threshold),
        "--health-success-threshold", "1",
        "--cb-timeout-duration-secs", str(options.circuit_breaker_timeout_s),
        "--log-level", options.log_level,
    ]  # fmt: skip
    if port is not None:
        cmd += ["--prometheus-port", str(port)]
    return cmd + list(options.extra_args)


def check_router() -> None:
    if importlib.util.find_spec("sglang_router") is None:
        raise ServeError(f"sglang-router is not installed: {ROUTER_INSTALL_HINT}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now (the router's metrics exporter panics on a taken one)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def router_readiness(url: str, timeout_s: float = 2.0) -> tuple[int, int] | None:
    """(healthy, total) workers as the router's ``/readiness`` reports them; None if it is not up."""
    try:
        response = httpx.get(f"{url}/readiness", timeout=timeout_s)
        data = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return int(data.get("healthy_workers") or 0), int(data.get("total_workers") or 0)


def wait_router_ready(
    url: str,
    min_healthy: int = 1,
    timeout_s: float = 120.0,
    poll_s: float = 0.2,
    process: subprocess.Popen[bytes] | None = None,
) -> tuple[int, int]:
    """Poll the router until ``min_healthy`` workers are registered and healthy."""
    started = time.monotonic()
    last: tuple[int, int] | None = None
    while True:
        if process is not None and process.poll() is not None:
            raise ServeError(
                f"the router exited with code {process.returncode} before it was ready (see its output above)"
            )
        state = router_readiness(url)
        if state != last:
            logger.info(
                "router at {}: {} after {:.1f} s",
                url,
                state or "not up",
                time.monotonic() - started,
            )
            last = state
        if state is not None and state[0] >= min_healthy:
            return state
        if time.monotonic() - started > timeout_s:
            seen = "not answering" if state is None else f"{state[0]} of {state[1]} workers healthy"
            raise ServeError(f"the router at {url} was not ready after {timeout_s:.0f} s ({seen})")
        time.sleep(poll_s)


def start_router(
    options: RouterOptions, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start the router in its own process group (stop it with ``stop()``)."""
    check_router()
    command = build_router_command(options, prometheus_port=free_port())
    # the router loads the workers' tokenizers from the hub when it can; it routes without them
    env = {"HF_HUB_OFFLINE": "1", **os.environ, **(env or {})}
    return start(command, env=env)
