"""The real sglang-router in front of stand-in workers, for tests and benchmarks.

::

    with FakeModelServer(...) as a, FakeModelServer(...) as b, LocalRouter([a.url, b.url]) as router:
        Agent(env, AgentConfig(model_url=router.url, ...))

The router is the ``sglang-router`` wheel (the ``scale`` extra), started as
``guiagent serve --router`` starts it, with its health checks tightened so that a killed
worker is taken out, and a restarted one taken back, within a couple of seconds.
"""

from __future__ import annotations

import signal
import subprocess
from typing import Any

import httpx

from guiagent.serve import (
    RouterOptions,
    free_port,
    start_router,
    stop,
    wait_router_ready,
)

# what the tests pass on top of `guiagent serve --router`'s defaults: quick failover
FAST_FAILOVER: dict[str, Any] = {
    "health_check_interval_s": 1,
    "health_failure_threshold": 1,
    "circuit_breaker_timeout_s": 2,
    "log_level": "error",
}


class LocalRouter:
    """sglang-router on a free loopback port, in front of ``worker_urls``."""

    def __init__(self, worker_urls: list[str], **options: Any) -> None:
        self.options = RouterOptions(
            worker_urls=worker_urls,
            host="127.0.0.1",
            port=options.pop("port", None) or free_port(),
            **{**FAST_FAILOVER, **options},
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.options.url

    def start(self, timeout_s: float = 60.0) -> LocalRouter:
        self.process = start_router(self.options)
        try:
            wait_router_ready(
                self.url,
                min_healthy=len(self.options.worker_urls),
                timeout_s=timeout_s,
                process=self.process,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            # SIGTERM: the router drains and exits (SIGINT makes its launcher print a traceback)
            stop(self.process, grace_s=5, first=signal.SIGTERM)
            self.process = None

    def workers(self) -> dict[str, bool]:
        """Worker URL -> healthy, as the router sees them now (``GET /workers``)."""
        data = httpx.get(f"{self.url}/workers", timeout=5).json()
        return {w["url"]: bool(w["is_healthy"]) for w in data.get("workers", [])}

    def __enter__(self) -> LocalRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
