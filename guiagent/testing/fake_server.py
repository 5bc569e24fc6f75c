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

The server runs uvicorn in a background thread on 127.0.0.1 with an ephemeral port::

    with FakeModelServer(lambda req: FakeReply(tool_calls=[("click", {"x": 1, "y": 2})])) as server:
        client = ModelClient(server.url)
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from loguru import logger
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from guiagent.core.geometry import Size
from guiagent.testing import sglang_native

Flavour = Literal["sglang", "sglang-old", "vllm", "no-tool-parser", "no-parsers"]
Fault = Literal["drop_mid_stream", "garbage", "error_in_stream", "hang", "no_done"]
FLAVOURS: tuple[str, ...] = ("sglang", "sglang-old", "vllm", "no-tool-parser", "no-parsers")
# what answers /health and /v1/models: SGLang itself, or a bare OpenAI-compatible proxy
# without /health (sglang-router itself runs for real in tests/test_router.py)
Frontend = Literal["sglang", "bare"]
FRONTENDS: tuple[str, ...] = ("sglang", "bare")
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})

DEFAULT_SERVED_MODEL = "stepfun-ai/Step3-VL-10B"
# Qwen-style <|im_end|>: what SGLang reports as matched_stop when generation ends normally
IM_END_TOKEN_ID = 151645


class FakeServerError(RuntimeError):
    """The fake server could not start, or was used wrongly."""


class FakeReply(BaseModel):
    """What the fake model answers to one request.

    ``content`` is the text after ``</think>``, ``reasoning`` the text before it;
    ``tool_calls`` are (name, arguments) pairs the model "wrote" as hermes blocks.
    """

    model_config = ConfigDict(extra="forbid")

    content: str | None = None
    reasoning: str | None = None
    # arguments as a dict, or as a raw string sent verbatim (to fake broken JSON)
    tool_calls: list[tuple[str, dict[str, Any] | str]] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    delay_s: float = Field(default=0.0, ge=0)
    status: int = 200
    error: str | None = None
    fault: Fault | None = None
    flavour: Flavour | None = None
    # how many SSE chunks go out before a drop_mid_stream/error_in_stream fault
    fault_after_chunks: int = Field(default=2, ge=0)
    # characters per streamed delta
    chunk_chars: int = Field(default=7, ge=1)
    # SSE comment lines (": keep-alive") and blank lines between chunks, as proxies send
    keepalive: bool = False


@dataclass
class FakeRequest:
    """One chat request as the fake server received it."""

    body: dict[str, Any]
    raw: bytes
    index: int
    received_at: float = field(default_factory=time.time)
    _image: Image.Image | None = field(default=None, repr=False)
    _image_done: bool = field(default=False, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages")
        return msgs if isinstance(msgs, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        return self.body.get("tools") or []

    @property
    def tool_names(self) -> list[str]:
        return [t.get("function", {}).get("name", "") for t in self.tools if isinstance(t, dict)]

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def image_urls(self) -> list[str]:
        urls = []
        for msg in self.messages:
            content = msg.get("content") if isinstance(msg, dict) else None
            if isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and part.get("type") == "image_url":
                        image_url = part.get("image_url")
                        url = image_url.get("url") if isinstance(image_url, dict) else image_url
                        if isinstance(url, str):
                            urls.append(url)
        return urls

    @property
    def image(self) -> Image.Image | None:
        """The last image of the request, decoded (data URLs only: the fake never fetches)."""
        if not self._image_done:
            self._image_done = True
            urls = [u for u in self.image_urls if u.startswith("data:")]
            if urls:
                self._image = decode_data_url(urls[-1])
        return self._image

    @property
    def image_size(self) -> Size | None:
        img = self.image
        return Size(img.width, img.height) if img is not None else None

    @property
    def last_user_text(self) -> str:
        for msg in reversed(self.messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                return message_text(msg)
        return ""


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message, whether its content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def decode_data_url(url: str) -> Image.Image:
    """``data:image/png;base64,...`` -> PIL image (loaded, so the bytes can go)."""
    try:
        header, payload = url.split(",", 1)
        if ";base64" not in header:
            raise ValueError("only base64 data URLs are supported")
        image = Image.open(io.BytesIO(base64.b64decode(payload)))
        image.load()
    except Exception as exc:
        raise ValueError(f"cannot decode image data URL ({url[:40]}...): {exc}") from exc
    return image


Responder = Callable[[FakeRequest], "FakeReply | Awaitable[FakeReply]"]


def _default_responder(request: FakeRequest) -> FakeReply:
    return FakeReply(reasoning="Nothing scripted.", content="ok")


def _hex(n: int) -> str:
    return uuid.uuid4().hex[:n]


def _json_args(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def hermes_text(name: str, arguments: dict[str, Any] | str) -> str:
    """A tool call as the model writes it with the hermes template."""
    payload = (
        f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {_json_args(arguments)}}}'
    )
    return f"<tool_call>\n{payload}\n</tool_call>"


@dataclass
class _Rendered:
    """A reply laid out the way one server flavour reports it."""

    content: str | None
    reasoning: str | None
    reasoning_key: str | None
    calls: list[dict[str, Any]]
    finish_reason: str
    matched_stop: int | str | None
    usage: dict[str, Any]
    # calls SGLang's parser found but dropped (tool not in the request)
    dropped: int = 0


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
        return Starlette(routes=routes)

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
        return JSONResponse(_error_body(flavour, status, message), status_code=status)

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
            problem = _validate_chat_body(body) or self._length_problem(fake_request)
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
            rendered = _render(reply, flavour, fake_request, self.forward_unknown_tools)
            if fake_request.stream:
                streaming_took_over = True
                return StreamingResponse(
                    self._tracked(self._sse(reply, flavour, fake_request, rendered)),
                    media_type="text/event-stream",
                )
            if reply.fault == "error_in_stream":
                return self._error(flavour, 500, reply.error or "generation aborted")
            payload = _completion_body(rendered, flavour, fake_request)
            data = json.dumps(payload, ensure_ascii=False).encode()
            if reply.fault == "drop_mid_stream":
                streaming_took_over = True
                return StreamingResponse(
                    self._tracked(_dropping(data[: len(data) // 2])),
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
        """The 400 SGLang (with --context-length) or vLLM give an output limit that cannot fit."""
        body = request.body
        asked = body.get("max_completion_tokens") or body.get("max_tokens")
        if not isinstance(asked, int) or isinstance(asked, bool):
            return None
        if self.flavour == "vllm":
            prompt = _prompt_tokens(request)
            if asked > self.max_model_len - prompt:
                return (
                    f"'max_tokens' or 'max_completion_tokens' is too large: {asked}. This model's "
                    f"maximum context length is {self.max_model_len} tokens and your request has "
                    f"{prompt} input tokens ({asked} > {self.max_model_len} - {prompt})."
                )
            return None
        if asked > self.max_model_len:
            return (
                f"max_completion_tokens is too large: {asked}.This model supports at most "
                f"{self.max_model_len} completion tokens."
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

    async def _sse(
        self, reply: FakeReply, flavour: Flavour, request: FakeRequest, rendered: _Rendered
    ) -> AsyncIterator[bytes]:
        for n, chunk in enumerate(_stream_chunks(reply, flavour, request, rendered)):
            if (
                reply.fault in ("drop_mid_stream", "error_in_stream")
                and n == reply.fault_after_chunks
            ):
                if reply.fault == "drop_mid_stream":
                    # an exception here makes uvicorn cut the connection mid-body
                    raise ConnectionAbortedError("fake server dropped the stream on purpose")
                error = _error_body(flavour, 500, reply.error or "generation aborted")
                inner = error.get("error", error)
                yield f"data: {json.dumps({'error': inner})}\n\n".encode()
                break
            if reply.keepalive:
                yield b": keep-alive\n\n\n"
            yield f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()
            await asyncio.sleep(0)
        if reply.fault != "no_done":
            yield b"data: [DONE]\n\n"


async def _dropping(head: bytes) -> AsyncIterator[bytes]:
    yield head
    raise ConnectionAbortedError("fake server dropped the response on purpose")


# --- request checks (what SGLang answers 400 to) ------------------------------------------


def _validate_chat_body(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or "role" not in msg:
            return f"messages[{i}] must be an object with a role"
        if msg["role"] not in ROLES:
            return (
                f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}, got {msg['role']!r}"
            )
        for tc in msg.get("tool_calls") or []:
            args = (tc.get("function") or {}).get("arguments") if isinstance(tc, dict) else None
            try:
                parsed = json.loads(args) if isinstance(args, str) else None
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return (
                    f"messages[{i}].tool_calls[].function.arguments must be a JSON string of an "
                    f"object, got {args!r}"
                )
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools must be a list"
        for i, tool in enumerate(tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                return f"tools[{i}] must be {{type: function, function: {{name, ...}}}}"
            problem = _schema_problem(fn.get("parameters"))
            if problem:
                return f"tools[{i}] ({fn['name']}) has invalid parameters: {problem}"
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("auto", "required", "none"):
        name = (choice.get("function") or {}).get("name") if isinstance(choice, dict) else None
        if not isinstance(name, str):
            return f"invalid tool_choice {choice!r}"
        if not tools:
            return "Tools cannot be empty if tool choice is set to a specific tool."
        if name not in [(t.get("function") or {}).get("name") for t in tools]:
            return f"Tool '{name}' not found in tools list."
    if choice == "required" and not tools:
        return "Tools cannot be empty if tool choice is set to required."
    return None


def _schema_problem(schema: Any) -> str | None:
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return "parameters must be a JSON Schema object"
    try:
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError
    except ImportError:  # jsonschema is optional: fall back to the shape check above
        return None
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc.message
    return None


# --- rendering replies as each flavour does -----------------------------------------------


def _error_body(flavour: Flavour, status: int, message: str) -> dict[str, Any]:
    err_type = "BadRequestError" if status < 500 else "InternalServerError"
    inner = {"object": "error", "message": message, "type": err_type, "param": None, "code": status}
    if flavour == "vllm":
        return {"error": {"message": message, "type": err_type, "param": None, "code": status}}
    return inner


def _raw_text(reply: FakeReply) -> str:
    """The whole generated text, as the model wrote it after the opening <think>."""
    parts = [reply.reasoning or "", "</think>", reply.content or ""]
    for name, args in reply.tool_calls:
        parts.append("\n\n" + hermes_text(name, args))
    return "".join(parts)


def _tool_content(reply: FakeReply) -> str:
    text = reply.content or ""
    for name, args in reply.tool_calls:
        text += "\n\n" + hermes_text(name, args)
    return text


def _estimate_tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _prompt_tokens(request: FakeRequest) -> int:
    prompt_text = "".join(message_text(m) for m in request.messages if isinstance(m, dict))
    return _estimate_tokens(prompt_text) + 171 * len(request.image_urls) + 8 * len(request.tools)


def _usage(reply: FakeReply, flavour: Flavour, request: FakeRequest) -> dict[str, Any]:
    prompt = _prompt_tokens(request)
    completion = _estimate_tokens(_raw_text(reply))
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": None,
    }
    if flavour != "vllm":
        usage["reasoning_tokens"] = _estimate_tokens(reply.reasoning or "")
    if reply.usage:
        usage.update(reply.usage)
        usage["total_tokens"] = reply.usage.get(
            "total_tokens", usage["prompt_tokens"] + usage["completion_tokens"]
        )
    return usage


def _render(
    reply: FakeReply, flavour: Flavour, request: FakeRequest, forward_unknown_tools: bool = True
) -> _Rendered:
    tools_on = bool(request.tools) and request.body.get("tool_choice") != "none"
    calls: list[dict[str, Any]] = []
    dropped = 0
    reasoning: str | None = reply.reasoning or None
    reasoning_key: str | None = "reasoning_content"
    if flavour == "no-parsers":
        content: str | None = _raw_text(reply)
        reasoning, reasoning_key = None, None
    elif flavour == "no-tool-parser" or not tools_on:
        content = _tool_content(reply)
    else:
        content = reply.content or ""
        known = set(request.tool_names)
        for name, args in reply.tool_calls:
            if not forward_unknown_tools and flavour != "vllm" and name not in known:
                dropped += 1
                continue
            i = len(calls)
            call_id = f"chatcmpl-tool-{_hex(32)}" if flavour == "vllm" else f"call_{_hex(24)}"
            calls.append(
                {
                    "id": call_id,
                    "index": i,
                    "type": "function",
                    "function": {"name": name, "arguments": _json_args(args)},
                }
            )
    if flavour == "vllm":
        reasoning_key = "reasoning"
    # non-streaming SGLang says tool_calls once it saw a <tool_call>, even if it dropped it
    finish = "tool_calls" if calls or (dropped and not request.stream) else "stop"
    if reply.finish_reason:
        finish = reply.finish_reason
    matched: int | str | None = IM_END_TOKEN_ID if finish == "stop" else None
    if flavour == "vllm":
        matched = None
    if flavour in ("sglang-old", "vllm") and not content:
        content = None
    if flavour == "vllm" and calls:
        content = None
    return _Rendered(
        content=content,
        reasoning=reasoning,
        reasoning_key=reasoning_key,
        calls=calls,
        finish_reason=finish,
        matched_stop=matched,
        usage=_usage(reply, flavour, request),
        dropped=dropped,
    )


def _completion_id(flavour: Flavour) -> str:
    return f"chatcmpl-{_hex(32)}" if flavour == "vllm" else uuid.uuid4().hex


def _completion_body(r: _Rendered, flavour: Flavour, request: FakeRequest) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": r.content}
    if flavour == "vllm":
        message.update({"refusal": None, "annotations": None, "audio": None, "function_call": None})
        message["tool_calls"] = r.calls  # vLLM always sends the list, empty when no call
        message["reasoning"] = r.reasoning
    else:
        message["reasoning_content"] = r.reasoning
        if r.calls or r.dropped:
            message["tool_calls"] = r.calls
        elif flavour == "sglang-old":
            message["tool_calls"] = None
    choice: dict[str, Any] = {
        "index": 0,
        "message": message,
        "logprobs": None,
        "finish_reason": r.finish_reason,
    }
    if flavour != "vllm":
        choice["matched_stop"] = r.matched_stop
    else:
        choice["stop_reason"] = None
    body: dict[str, Any] = {
        "id": _completion_id(flavour),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.body.get("model") or DEFAULT_SERVED_MODEL,
        "choices": [choice],
        "usage": r.usage,
    }
    if flavour != "vllm":
        body["metadata"] = {"weight_version": "default"}
    return body


def _pieces(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _stream_chunks(
    reply: FakeReply, flavour: Flavour, request: FakeRequest, r: _Rendered
) -> list[dict[str, Any]]:
    """The chat.completion.chunk objects of one streamed reply, in SGLang's order."""
    chunk_id = _completion_id(flavour)
    created = int(time.time())
    model = request.body.get("model") or DEFAULT_SERVED_MODEL
    vllm = flavour == "vllm"

    def delta(**fields: Any) -> dict[str, Any]:
        if vllm:  # vLLM leaves unset fields out
            return {k: v for k, v in fields.items() if v is not None}
        base: dict[str, Any] = {"role": None, "content": None, "reasoning_content": None}
        base["tool_calls"] = None
        base.update(fields)
        return base

    def chunk(d: dict[str, Any], finish: str | None = None, matched: Any = None) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}
        if not vllm:
            choice["matched_stop"] = matched
        out: dict[str, Any] = {
            "id": chunk_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        if not vllm:
            out["usage"] = None
        return out

    size = reply.chunk_chars
    chunks = [chunk(delta(role="assistant", content=""))]
    if r.reasoning:
        key = r.reasoning_key or "reasoning_content"
        chunks += [chunk(delta(**{key: piece})) for piece in _pieces(r.reasoning, size)]
    content = r.content or ""
    if r.calls and not vllm and not content:
        # SGLang streams the whitespace the model wrote before the <tool_call>
        content = "\n\n"
    chunks += [chunk(delta(content=piece)) for piece in _pieces(content, size)]
    for call in r.calls:
        name = call["function"]["name"]
        args = call["function"]["arguments"]
        head = {"id": call["id"], "index": call["index"], "type": "function"}
        head["function"] = {"name": name} if vllm else {"name": name, "arguments": ""}
        chunks.append(chunk(delta(tool_calls=[head])))
        for piece in _pieces(args, size):
            if vllm:
                frag: dict[str, Any] = {"index": call["index"], "function": {"arguments": piece}}
            else:
                frag = {
                    "id": None,
                    "index": call["index"],
                    "type": "function",
                    "function": {"name": None, "arguments": piece},
                }
            chunks.append(chunk(delta(tool_calls=[frag])))
    chunks.append(chunk(delta() if not vllm else {}, r.finish_reason, r.matched_stop))
    options = request.body.get("stream_options") or {}
    if isinstance(options, dict) and options.get("include_usage"):
        usage_chunk = chunk({})
        usage_chunk["choices"] = []
        usage_chunk["usage"] = r.usage
        chunks.append(usage_chunk)
    return chunks
