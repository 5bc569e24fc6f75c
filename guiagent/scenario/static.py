"""A small static file server for scenarios whose target URL is a relative path."""

from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from loguru import logger


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.trace("static: " + format, *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


# how often the serving thread looks for a stop request (the default 0.5 s delays every exit)
SHUTDOWN_POLL_S = 0.05


class StaticServer:
    """Serves ``root`` on 127.0.0.1 (a free port) from a daemon thread: ``with StaticServer(d) as s``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> StaticServer:
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=functools.partial(self._server.serve_forever, poll_interval=SHUTDOWN_POLL_S),
            name="guiagent-static",
            daemon=True,
        )
        self._thread.start()
        logger.debug("serving {} at {}", self.root, self.base_url)
        return self

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("static server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def url_for(self, path: str) -> str:
        return urljoin(self.base_url, quote(path.lstrip("/"), safe="/?&=#%"))

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> StaticServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def is_absolute_url(url: str) -> bool:
    return bool(urlsplit(url).scheme)


def find_served_root(url: str, start: Path) -> Path:
    """The directory to serve a relative ``url`` from: the nearest ancestor of ``start`` holding it.

    A scenario in ``scenarios/`` naming ``guiagent/demo/webapp/index.html`` is served from
    the project root; one naming ``page.html`` beside it is served from its own folder.
    """
    relative = urlsplit(url).path.lstrip("/")
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / relative).exists():
            return folder
    return start
