"""A stand-in for Step3-VL behind SGLang: an OpenAI-compatible HTTP server for tests and demos.

It speaks SGLang's wire format as SGLang's own ``serving_chat.py`` builds it (its
``entrypoints/openai/protocol.py`` and ``serving_chat.py``), plus the variants a client meets in the wild: older SGLang, vLLM, and
servers started without the tool-call or reasoning parser. A test scripts the answers
as a function of the request (``responder(request) -> FakeReply``), and can inject
faults: HTTP errors, a dropped stream, a garbage body, an error inside the stream, a
request that never answers, a stream closed without ``[DONE]``, SSE keep-alive comments.
It answers 400 where SGLang does (bad tool schema, history arguments that are not a JSON
string of an object, unknown role, bad ``tool_choice``, an output limit over the context).
It also answers SGLang's native endpoints that sglang-router asks of a worker
(``/health``, ``/server_info``, ``/model_info``, ``/get_load``: see ``sglang_native``), so
the real router can be put in front of several of them. ``latency_s`` and ``max_running``
model a GPU (each request takes that long; at most that many are generated at once, the
rest wait); ``kill()`` drops the server like a killed process. ``frontend="bare"`` is an
OpenAI-compatible proxy without ``/health``; ``forward_unknown_tools=False`` drops calls to
tools the request did not list, as SGLang does by default.

The parts live beside it and are re-exported here: ``fake_protocol`` (``FakeReply``,
``FakeRequest``, flavours), ``fake_checks`` (the 400s), ``fake_render`` (the non-streaming
body, usage, errors) and ``fake_sse`` (the SSE chunks and stream faults).

The server runs uvicorn in a background thread on 127.0.0.1 with an ephemeral port::

    with FakeModelServer(lambda req: FakeReply(tool_calls=[("click", {"x": 1, "y": 2})])) as server:
        client = ModelClient(server.url)
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn
from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guiagent.testing import sglang_native
from guiagent.testing.fake_checks import validate_chat_body
from guiagent.testing.fake_protocol import (
    DEFAULT_SERVED_MODEL,
    FLAVOURS,
    FRONTENDS,
    IM_END_TOKEN_ID,
    ROLES,
    FakeReply,
    FakeRequest,
    FakeServerError,
    Fault,
    Flavour,
    Frontend,
    Responder,
    decode_data_url,
    hermes_text,
    message_text,
)
from guiagent.testing.fake_render import completion_body, error_body, prompt_tokens, render_reply
from guiagent.testing.fake_sse import dropped_body, sse_body

__all__ = [
    "DEFAULT_SERVED_MODEL",
    "FLAVOURS",
    "FRONTENDS",
    "IM_END_TOKEN_ID",
    "ROLES",
    "FakeModelServer",
    "FakeReply",
    "FakeRequest",
    "FakeServerError",
    "Fault",
    "Flavour",
    "Frontend",
    "Responder",
    "decode_data_url",
    "hermes_text",
    "message_text",
]


async def _fastapi_error(request: Request, exc: Exception) -> Response:
    """An unknown path (404) or method (405) as SGLang's FastAPI app answers it: FastAPI's
    default handler, {"detail": ...} (SGLang's own handler takes only fastapi's subclass)."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def _default_responder(request: FakeRequest) -> FakeReply:
    return FakeReply(reasoning="Nothing scripted.", content="ok")


class FakeModelServer:
    """OpenAI-compatible fake of Step3-VL served by SGLang, in a background thread."""

    def __init__(
        self,
        responder: Responder | None = None,
        *,
        flavour: Flavour = "sglang",
        served_model: str = DEFAULT_SERVED_MODEL,
        max_model_len: int = 32768,
        warmup_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        frontend: Frontend = "sglang",
        forward_unknown_tools: bool = False,
        latency_s: float = 0.0,
        max_running: int | None = None,
        model_path: str | None = None,
    ) -> None:
        if flavour not in FLAVOURS:
            raise FakeServerError(f"unknown flavour {flavour!r}; one of {', '.join(FLAVOURS)}")
        if frontend not in FRONTENDS:
            raise FakeServerError(f"unknown frontend {frontend!r}; one of {', '.join(FRONTENDS)}")
        if latency_s < 0 or (max_running is not None and max_running < 1):
            raise FakeServerError("latency_s must be >= 0 and max_running >= 1 (or None)")
        self.frontend: Frontend = frontend
        # SGLang drops a parsed call to a tool the request did not list unless
        # SGLANG_FORWARD_UNKNOWN_TOOLS is set; True (forward) keeps such calls visible to tests
        self.forward_unknown_tools = forward_unknown_tools
        self.responder: Responder = responder or _default_responder
        self.flavour: Flavour = flavour
        self.served_model = served_model
        self.model_path = model_path or served_model
        # a GPU: every chat request takes latency_s (on top of the reply's delay_s), and at
        # most max_running of them are generated at once; the others wait their turn
        self.latency_s = latency_s
        self.max_running = max_running
        self._gpu: asyncio.Semaphore | None = None
        self.waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.max_model_len = max_model_len
        self.warmup_s = warmup_s
        self.host = host
        self._port = port
        self.requests: list[FakeRequest] = []
        self.health_checks = 0
        self.in_flight = 0
        self.max_concurrency = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started_at = 0.0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._thread_error: BaseException | None = None

    # --- construction helpers -------------------------------------------------------------

    @classmethod
    def scripted(cls, replies: Sequence[FakeReply], **kwargs: Any) -> FakeModelServer:
        """A server answering the given replies in order; past the end it answers 500."""
        queue = list(replies)
        lock = threading.Lock()

        def responder(request: FakeRequest) -> FakeReply:
            with lock:
                if queue:
                    return queue.pop(0)
            return FakeReply(
                status=500, error=f"fake server script exhausted after {len(replies)} replies"
            )

        return cls(responder, **kwargs)

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._socket is None:
            raise FakeServerError("the fake model server is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def request_count(self) -> int:
        return len(self.requests)

    @property
    def last_request(self) -> FakeRequest:
        if not self.requests:
            raise FakeServerError("the fake model server has received no chat request")
        return self.requests[-1]

    def reset_stats(self) -> None:
        """Forget recorded requests and the concurrency high-water mark (between tests)."""
        with self._lock:
            self.requests.clear()
            self.health_checks = 0
            self.max_concurrency = self.in_flight

    def start(self) -> FakeModelServer:
        if self._thread is not None:
            raise FakeServerError("the fake model server is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # asyncio sets TCP_NODELAY only on sockets made with proto=IPPROTO_TCP (uvicorn's own
        # bind does): without it the reply waits for the client's delayed ACK (~40 ms)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.host, self._port))
        self._socket = sock
        # a restart after stop() or kill() comes back on the same port, as a restarted server
        self._port = int(sock.getsockname()[1])
        self._stopping.clear()
        self._gpu = None
        config = uvicorn.Config(
            self._app(),
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._started_at = time.monotonic()
        self._thread = threading.Thread(target=self._serve, name="fake-model-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._thread_error is not None or not self._thread.is_alive():
                raise FakeServerError(f"fake model server failed to start: {self._thread_error}")
            if time.monotonic() > deadline:
                raise FakeServerError("fake model server did not start within 10 s")
            time.sleep(0.005)
        logger.info("fake model server (stand-in for Step3-VL) at {}", self.url)
        return self

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._socket]))
        except BaseException as exc:  # surfaced by start()
            self._thread_error = exc
        finally:
            loop.close()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None

    def kill(self) -> None:
        """Drop dead, as a killed process does: open connections are reset mid-request and
        the port refuses new ones at once (``stop()`` instead finishes what is in flight)."""
        server, loop = self._server, self._loop
        if server is None or self._thread is None or loop is None:
            return
        self._stopping.set()

        def drop() -> None:
            for listener in getattr(server, "servers", []):
                listener.close()
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()
            server.force_exit = True
            server.should_exit = True

        loop.call_soon_threadsafe(drop)
        self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._thread = None
        self._server = None
        logger.info("fake model server at {} killed", self.url)

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeModelServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    # --- HTTP ---------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        routes = [
            Route("/v1/models", self._models, methods=["GET"]),
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
        ]
        if self.frontend != "bare":
            routes += [
                Route("/health", self._health, methods=["GET"]),
                Route("/health_generate", self._health, methods=["GET"]),
            ]
        if self.frontend != "bare" and self.flavour != "vllm":
            # SGLang's native API, as sglang-router asks it of a worker (vLLM has none of it)
            routes += [
                Route(path, self._native, methods=["GET"])
                for path in (
                    "/server_info",
                    "/get_server_info",
                    "/model_info",
                    "/get_model_info",
                    "/get_load",
                )
            ]
        return Starlette(routes=routes, exception_handlers={HTTPException: _fastapi_error})

    def end_warmup(self) -> None:
        """Make /health answer 200 from now on (tests: no race against the clock)."""
        self.warmup_s = 0.0

    def _warming(self) -> bool:
        return time.monotonic() - self._started_at < self.warmup_s

    async def _health(self, request: Request) -> Response:
        with self._lock:
            self.health_checks += 1
        if self._warming() or self._stopping.is_set():
            return Response(status_code=503)
        return Response(status_code=200)

    async def _native(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            running, waiting = self.in_flight - self.waiting, self.waiting
        if path.endswith("model_info"):
            return JSONResponse(sglang_native.model_info(self.model_path))
        if path.endswith("server_info"):
            return JSONResponse(
                sglang_native.server_info(
                    self.model_path,
                    self.served_model,
                    host=self.host,
                    port=self.port,
                    context_length=self.max_model_len,
                    running=running,
                )
            )
        return JSONResponse(sglang_native.load(running, waiting, tokens=running * 1000))

    async def _models(self, request: Request) -> Response:
        created = int(time.time())
        owner = "vllm" if self.flavour == "vllm" else "sglang"
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": self.served_model,
                        "object": "model",
                        "created": created,
                        "owned_by": owner,
                        "root": self.served_model,
                        "max_model_len": self.max_model_len,
                    }
                ],
            }
        )

    def _error(self, flavour: Flavour, status: int, message: str) -> JSONResponse:
        return JSONResponse(error_body(flavour, status, message), status_code=status)

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        with self._lock:
            self.in_flight += 1
            self.max_concurrency = max(self.max_concurrency, self.in_flight)
        streaming_took_over = False
        try:
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("the request body must be a JSON object")
            except ValueError as exc:
                return self._error(self.flavour, 400, f"invalid JSON body: {exc}")
            with self._lock:
                fake_request = FakeRequest(body=body, raw=raw, index=len(self.requests))
                self.requests.append(fake_request)
            problem = validate_chat_body(body) or self._length_problem(fake_request)
            if problem:
                return self._error(self.flavour, 400, problem)
            reply = await self._generate(fake_request)
            if isinstance(reply, Response):
                return reply
            flavour: Flavour = reply.flavour or self.flavour
            if reply.fault == "hang":
                while not self._stopping.is_set() and not await request.is_disconnected():
                    await asyncio.sleep(0.02)
                return self._error(flavour, 503, "fake server shutting down")
            if reply.status >= 400:
                return self._error(
                    flavour, reply.status, reply.error or f"fake error {reply.status}"
                )
            if reply.fault == "garbage":
                return Response(
                    b"<html><body>502 Bad Gateway</body></html>\x00\xff not json",
                    status_code=200,
                    media_type="application/json"
                    if not fake_request.stream
                    else "text/event-stream",
                )
            rendered = render_reply(reply, flavour, fake_request, self.forward_unknown_tools)
            if fake_request.stream:
                streaming_took_over = True
                return StreamingResponse(
                    self._tracked(sse_body(reply, flavour, fake_request, rendered)),
                    media_type="text/event-stream",
                )
            if reply.fault == "error_in_stream":
                return self._error(flavour, 500, reply.error or "generation aborted")
            payload = completion_body(rendered, flavour, fake_request)
            data = json.dumps(payload, ensure_ascii=False).encode()
            if reply.fault == "drop_mid_stream":
                streaming_took_over = True
                return StreamingResponse(
                    self._tracked(dropped_body(data[: len(data) // 2])),
                    media_type="application/json",
                )
            return Response(data, media_type="application/json")
        finally:
            if not streaming_took_over:
                with self._lock:
                    self.in_flight -= 1

    async def _generate(self, request: FakeRequest) -> FakeReply | Response:
        """The responder's reply after the time it takes, in one of the GPU's slots if limited."""
        if self.max_running is None:
            return await self._respond(request)
        if self._gpu is None:  # made on the server's own loop
            self._gpu = asyncio.Semaphore(self.max_running)
        with self._lock:
            self.waiting += 1
        try:
            await self._gpu.acquire()
        finally:
            with self._lock:
                self.waiting -= 1
        try:
            return await self._respond(request)
        finally:
            self._gpu.release()

    async def _respond(self, request: FakeRequest) -> FakeReply | Response:
        try:
            reply = self.responder(request)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:
            logger.exception("fake model server responder failed")
            return self._error(self.flavour, 500, f"fake responder raised {exc!r}")
        if not isinstance(reply, FakeReply):
            return self._error(self.flavour, 500, f"fake responder returned {reply!r}")
        if self.latency_s + reply.delay_s:
            await self._sleep(self.latency_s + reply.delay_s)
        return reply

    def _length_problem(self, request: FakeRequest) -> str | None:
        """The 400 SGLang or vLLM give a prompt or an output limit that does not fit."""
        body = request.body
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(asked, bool) or not isinstance(asked, int):
            asked = None
        prompt = prompt_tokens(request)
        context = self.max_model_len
        if self.flavour == "vllm":
            if asked is not None and asked > context - prompt:
                return (
                    f"'max_tokens' or 'max_completion_tokens' is too large: {asked}. This model's "
                    f"maximum context length is {context} tokens and your request has "
                    f"{prompt} input tokens ({asked} > {context} - {prompt})."
                )
            return None
        # serving_chat.py _validate_request (the fake is always started with --context-length)
        if asked is not None and asked > context:
            return (
                f"max_completion_tokens is too large: {asked}.This model supports at most "
                f"{context} completion tokens."
            )
        # tokenizer_manager.py _validate_one_request: the prompt, then prompt plus output
        if prompt >= context:
            return (
                f"The input ({prompt} tokens) is longer than the model's context length "
                f"({context} tokens)."
            )
        if asked is not None and asked + prompt > context:
            return (
                "Requested token count exceeds the model's maximum context length of "
                f"{context} tokens. You requested a total of {asked + prompt} tokens: "
                f"{prompt} tokens from the input messages and {asked} tokens for the "
                "completion. Please reduce the number of tokens in the input messages or the "
                "completion to fit within the limit."
            )
        return None

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    async def _tracked(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            with self._lock:
                self.in_flight -= 1
