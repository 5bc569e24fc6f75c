"""The console's web app (Starlette): a JSON API, server-sent events and the static page.

Security: the console starts with a random token, printed once with its URL (as Jupyter
does); every request must carry it: ``Authorization: Bearer <token>``, ``?token=<token>``
(which also sets an HttpOnly cookie, so the page's API calls, images, event streams and
report pages carry it) or that cookie. Bound to loopback, requests must also name a
loopback host (no DNS rebinding), and state-changing requests from another origin are
refused. Files of a recording are served only as images or JSON, with a
``Content-Security-Policy`` and ``X-Content-Type-Options: nosniff``; errors are plain
JSON 4xx answers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import uvicorn
from loguru import logger
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guiagent.console.runs import ConsoleError, RunManager, RunSpec

STATIC_DIR = Path(__file__).parent / "static"
COOKIE = "guiagent_console_token"
HEARTBEAT_S = 15.0
# what a recording's files and its report may do in a browser: show pictures and styles
FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
REPORT_CSP = (
    "default-src 'none'; img-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)
SAFE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    host: str = "127.0.0.1"
    port: int = 7860
    token: str | None = None  # required on every request when set (ConsoleServer always sets one)


class ApprovalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    approve: bool


class Question(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    image_id: str | None = None
    run_id: str | None = None
    model_url: str | None = None
    local: bool = False  # answer with the local narration even when a model is set


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["strict", "heal"] = "strict"


class Guard:
    """ASGI middleware: host check on loopback, origin check on writes, token when remote."""

    def __init__(self, app: ASGIApp, token: str | None, loopback: bool) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.loopback and not is_loopback(_hostname(host)):
            await _deny(send, 403, f"host {host!r} is not a loopback name")
            return
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin and urlsplit(origin).netloc != host:
            await _deny(send, 403, "cross-origin request refused")
            return
        if self.token is None:
            await self.app(scope, receive, send)
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        from_query = (query.get("token") or [""])[0]
        auth = headers.get("authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        try:
            cookie = SimpleCookie(headers.get("cookie", ""))
            from_cookie = cookie[COOKIE].value if COOKIE in cookie else ""
        except Exception:  # a malformed Cookie header: as if there were none
            from_cookie = ""
        if not any(_same_token(c, self.token) for c in (bearer, from_query, from_cookie) if c):
            await _deny(
                send,
                401,
                "this console needs its token: open the URL printed at start "
                "(…?token=...) or send 'Authorization: Bearer <token>'",
            )
            return
        if from_query and _same_token(from_query, self.token):
            token = self.token

            async def send_with_cookie(message: Message) -> None:
                if message["type"] == "http.response.start":
                    cookie_value = f"{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
                    message.setdefault("headers", []).append(
                        (b"set-cookie", cookie_value.encode("latin-1"))
                    )
                await send(message)

            await self.app(scope, receive, send_with_cookie)
            return
        await self.app(scope, receive, send)


def _same_token(given: str, token: str) -> bool:
    """Constant-time comparison that takes any text (a non-ASCII token is just wrong)."""
    return secrets.compare_digest(
        given.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
    )


def _hostname(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1 : host_header.find("]")]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


async def _deny(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg')}")
    return "; ".join(parts)


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConsoleError(f"the request body is not valid JSON: {exc}") from exc


def create_app(manager: RunManager, settings: ConsoleSettings | None = None) -> Starlette:
    """The console app for ``manager`` (which must live on the loop that serves the app)."""
    settings = settings or ConsoleSettings()

    async def handle(request: Request, fn: Any) -> Response:
        try:
            return await fn(request)
        except ConsoleError as exc:
            return _error(exc.status, exc.message)
        except ValidationError as exc:
            return _error(422, _validation_message(exc))
        except (ValueError, UnicodeError, OSError) as exc:  # odd paths (NUL bytes...): plain 400
            logger.debug("console: bad request {}: {}", request.url.path, exc)
            return _error(400, f"bad request: {type(exc).__name__}")

    def route(path: str, fn: Any, methods: list[str]) -> Route:
        async def endpoint(request: Request) -> Response:
            return await handle(request, fn)

        return Route(path, endpoint, methods=methods)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def favicon(request: Request) -> Response:
        return Response(status_code=204)  # pages such as reports ask for one; say "none"

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "default_model_url": manager.default_model_url,
                "recordings_root": str(manager.recordings_root),
                "remote": settings.token is not None,
            }
        )

    async def list_runs(request: Request) -> Response:
        return JSONResponse(manager.list_runs())

    async def start_run(request: Request) -> Response:
        spec = RunSpec.model_validate(await _json_body(request))
        run = await manager.start(spec)
        return JSONResponse(run.summary(), status_code=201)

    async def get_run(request: Request) -> Response:
        return JSONResponse(manager.get(request.path_params["run_id"]).summary())

    async def control(request: Request) -> Response:
        run_id, verb = request.path_params["run_id"], request.path_params["verb"]
        actions = {"pause": manager.pause, "resume": manager.resume, "stop": manager.stop}
        if verb not in actions:
            return _error(404, f"unknown run action {verb!r}; use pause, resume or stop")
        return JSONResponse(actions[verb](run_id))

    async def events(request: Request) -> Response:
        run = manager.get(request.path_params["run_id"])
        after = request.headers.get("last-event-id") or request.query_params.get("after") or "-1"
        try:
            after_seq = int(after)
        except ValueError as exc:
            raise ConsoleError(f"'after' must be an event number, got {after!r}") from exc

        async def stream() -> AsyncIterator[bytes]:
            yield b"retry: 2000\n\n"
            async for event in run.channel.subscribe(after_seq, heartbeat_s=HEARTBEAT_S):
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                data = json.dumps(event, default=str)
                yield f"id: {event['seq']}\ndata: {data}\n\n".encode()
            yield f"data: {json.dumps({'kind': 'eof', 'seq': None})}\n\n".encode()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def frame(request: Request) -> Response:
        data = manager.frame(request.path_params["run_id"], request.path_params["key"])
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    async def approval(request: Request) -> Response:
        answer = ApprovalAnswer.model_validate(await _json_body(request))
        return JSONResponse(
            manager.answer(
                request.path_params["run_id"], request.path_params["approval_id"], answer.approve
            )
        )

    async def upload_image(request: Request) -> Response:
        form = await request.form(max_part_size=32 * 1024 * 1024)
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ConsoleError("send the image as a multipart file field named 'image'")
        data = await upload.read()
        return JSONResponse(await asyncio.to_thread(manager.add_image, data), status_code=201)

    async def image(request: Request) -> Response:
        data = await asyncio.to_thread(manager.image_bytes, request.path_params["image_id"])
        return Response(data, media_type="image/jpeg")

    async def ask(request: Request) -> Response:
        q = Question.model_validate(await _json_body(request))
        answer = await manager.ask(
            q.question, image_id=q.image_id, run_id=q.run_id, model_url=q.model_url, local=q.local
        )
        return JSONResponse(answer)

    async def recordings(request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(manager.recordings))

    async def replay(request: Request) -> Response:
        body = ReplayRequest.model_validate(await _json_body(request))
        run = await manager.start_replay(request.path_params["name"], body.mode)
        return JSONResponse(run.summary(), status_code=201)

    async def report(request: Request) -> Response:
        path = await manager.report(request.path_params["name"])
        return FileResponse(
            path,
            media_type="text/html",
            headers={**SAFE_HEADERS, "Content-Security-Policy": REPORT_CSP},
        )

    async def recording_file(request: Request) -> Response:
        path, media = manager.recording_file(
            request.path_params["name"], request.path_params["path"]
        )
        return FileResponse(
            path,
            media_type=media,
            headers={**SAFE_HEADERS, "Content-Security-Policy": FILE_CSP},
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await manager.close()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        route("/api/info", info, ["GET"]),
        route("/api/runs", list_runs, ["GET"]),
        route("/api/runs", start_run, ["POST"]),
        route("/api/runs/{run_id}", get_run, ["GET"]),
        route("/api/runs/{run_id}/events", events, ["GET"]),
        route("/api/runs/{run_id}/frames/{key}.jpg", frame, ["GET"]),
        route("/api/runs/{run_id}/approvals/{approval_id}", approval, ["POST"]),
        route("/api/runs/{run_id}/{verb}", control, ["POST"]),
        route("/api/images", upload_image, ["POST"]),
        route("/api/images/{image_id}.jpg", image, ["GET"]),
        route("/api/ask", ask, ["POST"]),
        route("/api/recordings", recordings, ["GET"]),
        route("/api/recordings/{name}/replay", replay, ["POST"]),
        route("/recordings/{name}/report.html", report, ["GET"]),
        route("/recordings/{name}/{path:path}", recording_file, ["GET"]),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(Guard, token=settings.token, loopback=is_loopback(settings.host))
    return app


class _Server(uvicorn.Server):
    """uvicorn's server, ending the console's event streams before it waits for connections."""

    def __init__(self, config: uvicorn.Config, manager: RunManager) -> None:
        super().__init__(config)
        self.manager = manager

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.manager.end_streams()
        await super().shutdown(sockets)


class ConsoleServer:
    """The console served by uvicorn, on the running loop (:meth:`serve`) or a thread (:meth:`start`).

    Binding outside loopback needs ``allow_remote=True``. A token is generated (unless given)
    on loopback too
    (unless given) and every request must carry it.
    """

    def __init__(
        self,
        manager: RunManager,
        host: str = "127.0.0.1",
        port: int = 7860,
        *,
        allow_remote: bool = False,
        token: str | None = None,
    ) -> None:
        if not is_loopback(host) and not allow_remote:
            raise ConsoleError(
                f"binding to {host} exposes the console to the network: pass --allow-remote "
                "(a token will be required on every request)"
            )
        if token is None:  # every console has one: any local process or page could call it
            token = secrets.token_urlsafe(24)
        self.manager = manager
        self.settings = ConsoleSettings(host=host, port=port, token=token)
        self.app = create_app(manager, self.settings)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = _Server(config, manager)
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str | None:
        return self.settings.token

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", None) or []
        for srv in servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return self.settings.port

    def base_url(self, host: str | None = None) -> str:
        """The console's address without the token (``http://host:port``)."""
        shown = host or (
            "127.0.0.1" if self.settings.host in ("0.0.0.0", "::") else self.settings.host
        )
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    def url(self, host: str | None = None) -> str:
        """The URL to open: with the token, which the console turns into a cookie."""
        base = self.base_url(host) + "/"
        return f"{base}?token={self.token}" if self.token else base

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate an API client."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def bind(self) -> socket.socket:
        """Bind the listening socket now (a clear OSError if the address is taken or absent)."""
        family = socket.AF_INET6 if ":" in self.settings.host else socket.AF_INET
        return socket.create_server((self.settings.host, self.settings.port), family=family)

    async def serve(self, sock: socket.socket | None = None) -> None:
        """Serve on the running loop until :meth:`shutdown` (on ``sock`` when given)."""
        await self.server.serve(sockets=[sock] if sock is not None else None)

    async def wait_started(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline:
                raise ConsoleError("the console did not start in time")
            await asyncio.sleep(0.01)

    def shutdown(self) -> None:
        self.server.should_exit = True

    def start(self) -> ConsoleServer:
        """Serve from a background thread with its own loop (runs live on that loop)."""
        self._thread = threading.Thread(
            target=self.server.run, name="guiagent-console", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConsoleError("the console did not start")
            time.sleep(0.01)
        logger.info("console at {}", self.url())
        return self

    def stop(self) -> None:
        self.shutdown()
        if self._thread is not None:
            self._thread.join(20)
            self._thread = None
