"""Async client for an OpenAI-compatible chat server (SGLang first, vLLM tolerated).

It copes with the shapes SGLang's and vLLM's servers produce: tool calls parsed by the server or left as
hermes text in ``content`` or in the reasoning, ``content`` as ``""`` or ``null``,
reasoning under ``reasoning_content`` or ``reasoning``, keys absent or null alike, and
the same over SSE streaming. Failures become named errors that say which URL failed.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx
from loguru import logger
from PIL import Image
from pydantic import BaseModel

from guiagent.models.errors import (
    ModelError,
    ModelHTTPError,
    ModelProtocolError,
    ModelServerNotReady,
    ModelServerUnreachable,
    ModelStreamError,
    ModelTimeout,
    allowed_output_tokens,
)
from guiagent.models.message import (
    DEFAULT_MAX_TOOL_CALLS,
    StreamEvent,
    _StreamState,
    parse_usage,
    reply_from_message,
)
from guiagent.models.reply import Completion
from guiagent.models.wire import check_chunk, check_response

# the errors and the message parsing moved to their own modules; importable from here as before
__all__ = [
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_MAX_TOOL_CALLS",
    "ModelClient",
    "ModelError",
    "ModelHTTPError",
    "ModelProtocolError",
    "ModelServerNotReady",
    "ModelServerUnreachable",
    "ModelStreamError",
    "ModelTimeout",
    "ServerInfo",
    "StreamEvent",
    "_StreamState",
    "allowed_output_tokens",
    "image_content",
    "normalise_base_url",
    "parse_usage",
    "reply_from_message",
]

SGLANG_LAUNCH = (
    "python -m sglang.launch_server --model-path stepfun-ai/Step3-VL-10B --trust-remote-code "
    "--reasoning-parser deepseek-r1 --tool-call-parser hermes --port 30000"
)
# Step3-VL's evaluation sampling: temperature 1.0, top_p 1.0, top_k off
DEFAULT_SAMPLING: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": -1,
    "max_completion_tokens": 8192,
}


class ServerInfo(BaseModel):
    base_url: str
    model: str
    models: list[str]
    max_model_len: int | None = None
    # False when the server has no /health (a bare OpenAI-compatible proxy): /v1/models decided
    health_endpoint: bool = True


# bounds on one reply: a server that sends more is broken, not thorough
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024

# SGLang may refuse the output limit twice: over --context-length alone ("at most N
# completion tokens"), then N plus the prompt over the context (its numbers are exact)
MAX_SHRINKS = 2

# statuses worth another try: server errors, and sglang-router's queue full (429) / queue timeout (408)
RETRY_STATUSES = frozenset({408, 429})


def normalise_base_url(url: str) -> str:
    """``http://h:30000/v1/`` and ``http://h:30000`` name the same server."""
    url = url.strip().rstrip("/")
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    if "://" not in url:
        url = "http://" + url
    return url


def image_content(
    image: Image.Image, fmt: Literal["JPEG", "PNG"] = "JPEG", quality: int = 90
) -> dict[str, Any]:
    """The OpenAI ``image_url`` content part carrying ``image`` as a base64 data URL."""
    fmt_up = fmt.upper()
    if fmt_up not in ("JPEG", "PNG"):
        raise ValueError(f"image format must be JPEG or PNG, got {fmt!r}")
    buf = io.BytesIO()
    if fmt_up == "JPEG":
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
        mime = "image/jpeg"
    else:
        image.save(buf, format="PNG")
        mime = "image/png"
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}


class ModelClient:
    """One model server. Create it, ``await`` its methods, ``aclose()`` it (or ``async with``)."""

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120,
        retries: int = 3,
        sampling: dict[str, Any] | None = None,
        *,
        backoff_s: float = 0.5,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        max_tool_calls: int = DEFAULT_MAX_TOOL_CALLS,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if max_reply_bytes <= 0 or max_tool_calls <= 0:
            raise ValueError("max_reply_bytes and max_tool_calls must be > 0")
        self.max_reply_bytes = max_reply_bytes
        self.max_tool_calls = max_tool_calls
        self.base_url = normalise_base_url(base_url)
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.sampling: dict[str, Any] = {**DEFAULT_SAMPLING, **(sampling or {})}
        # learnt from /v1/models; caps max_completion_tokens (SGLang answers 400 above it)
        self.max_model_len: int | None = None
        self._http: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/v1/chat/completions"

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._http is not None and self._loop is not loop:
            # an httpx client is bound to the loop that created it (sync wrappers run one
            # loop per call): start afresh rather than fail with "Event loop is closed"
            logger.debug("model client used from a new event loop; opening a new connection pool")
            self._http = None
        if self._http is None:
            self._loop = loop
            headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s, connect=min(10.0, self.timeout_s)),
                headers=headers,
                limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            if self._loop is asyncio.get_running_loop():
                await self._http.aclose()
            self._http = None

    async def __aenter__(self) -> ModelClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- errors ----------------------------------------------------------------------------

    def _unreachable(self, url: str, exc: Exception) -> ModelServerUnreachable:
        return ModelServerUnreachable(
            f"cannot reach the model server at {url} ({type(exc).__name__}: {exc}). "
            f"Start one with `guiagent serve`, or: {SGLANG_LAUNCH}",
            url,
        )

    def _timeout(self, url: str, exc: Exception) -> ModelTimeout:
        return ModelTimeout(
            f"the model server at {url} did not finish its answer within {self.timeout_s:g} s "
            f"({type(exc).__name__ if not isinstance(exc, TimeoutError) else 'deadline'}); "
            "raise --timeout for long reasoning",
            url,
        )

    @staticmethod
    def _http_error(url: str, status: int, body: bytes) -> ModelHTTPError:
        message = body.decode("utf-8", "replace")[:500]
        try:
            data = json.loads(body)
            if isinstance(data, dict):
                inner = data.get("error") if isinstance(data.get("error"), dict) else data
                # FastAPI's own answers (an unknown path: 404) say {"detail": "Not Found"}
                detail = inner.get("detail") if isinstance(inner.get("detail"), str) else None
                message = str(inner.get("message") or detail or message)
        except ValueError:
            pass
        return ModelHTTPError(status, message, url)

    # --- health ----------------------------------------------------------------------------

    async def health(self) -> ServerInfo:
        """Check /health and /v1/models; learn the served model name if none was given.

        SGLang answers /health 503 while it warms up; vLLM 200 with an empty body;
        sglang-router 200 always (liveness) while its /v1/models, proxied to a worker,
        answers 503 until one is healthy: 503 from either is "not ready". A server
        without /health (404/405) is judged by /v1/models alone.
        """
        url = f"{self.base_url}/health"
        client = self._client()
        has_health = True
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await client.get(url)
            if resp.status_code == 503:
                raise ModelServerNotReady(503, "the server is up but still warming up", url)
            if resp.status_code in (404, 405):
                has_health = False
                logger.debug(
                    "{} answered {}; judging readiness by /v1/models", url, resp.status_code
                )
            elif resp.status_code >= 400:
                raise self._http_error(url, resp.status_code, resp.content)
            async with asyncio.timeout(self.timeout_s):
                info = await self._models()
        except httpx.ConnectError as exc:
            raise self._unreachable(url, exc) from exc
        except (httpx.TimeoutException, TimeoutError) as exc:
            raise self._timeout(url, exc) from exc
        except httpx.TransportError as exc:
            raise ModelProtocolError(
                f"the connection to {url} broke ({type(exc).__name__}: {exc})", url
            ) from exc
        if self.model is None:
            self.model = info.model
        info.health_endpoint = has_health
        return info

    async def wait_ready(self, timeout_s: float = 600, poll_s: float = 1.0) -> ServerInfo:
        """Poll health() until the server answers 200 (connection refused and 503 are waited out)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return await self.health()
            except (ModelServerUnreachable, ModelServerNotReady) as exc:
                if time.monotonic() + poll_s > deadline:
                    raise ModelTimeout(
                        f"the model server at {self.base_url} was not ready within {timeout_s:g} s: {exc}",
                        self.base_url,
                    ) from exc
                logger.debug("model server not ready yet: {}", exc)
                await asyncio.sleep(poll_s)

    async def _models(self) -> ServerInfo:
        url = f"{self.base_url}/v1/models"
        resp = await self._client().get(url)
        if resp.status_code == 503:
            error = self._http_error(url, 503, resp.content)
            raise ModelServerNotReady(503, f"no model is ready yet ({error.server_message})", url)
        if resp.status_code >= 400:
            raise self._http_error(url, resp.status_code, resp.content)
        try:
            data = resp.json()
            entries = [
                e
                for e in data.get("data") or []
                if isinstance(e, dict) and isinstance(e.get("id"), str) and e["id"]
            ]
        except (ValueError, AttributeError, TypeError) as exc:
            raise ModelProtocolError(
                f"{url} answered a body that is not a model list: {exc}", url
            ) from exc
        if not entries:
            raise ModelProtocolError(f"{url} lists no served model", url)
        chosen = entries[0]
        if self.model is not None:
            chosen = next((e for e in entries if e["id"] == self.model), chosen)
        limit = chosen.get("max_model_len")
        max_model_len = limit if isinstance(limit, int) and limit > 0 else None
        if max_model_len is not None:
            self.max_model_len = max_model_len
        return ServerInfo(
            base_url=self.base_url,
            model=str(entries[0]["id"]),
            models=[str(e["id"]) for e in entries],
            max_model_len=max_model_len,
        )

    async def _model_name(self) -> str:
        if self.model is None:
            try:
                self.model = (await self._models()).model
            except httpx.ConnectError as exc:
                raise self._unreachable(f"{self.base_url}/v1/models", exc) from exc
            except ModelServerNotReady as exc:
                # a router with no healthy worker yet: ask again next time
                logger.warning("could not learn the served model name ({}); using 'default'", exc)
                return "default"
            except (ModelHTTPError, ModelProtocolError, httpx.HTTPError) as exc:
                # SGLang serves whatever name it is given; vLLM would answer 404 and say so
                logger.warning("could not learn the served model name ({}); using 'default'", exc)
                self.model = "default"
        return self.model

    # --- chat ------------------------------------------------------------------------------

    def build_body(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        model: str,
        tool_choice: Any = "auto",
        stream: bool = False,
        **overrides: Any,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            body["tools"] = tools
            body["tool_choice"] = tool_choice
        params = {**self.sampling, **overrides}
        if "max_tokens" in params and "max_completion_tokens" not in overrides:
            params["max_completion_tokens"] = params.pop("max_tokens")
        limit = params.get("max_completion_tokens")
        if isinstance(limit, int) and self.max_model_len and limit > self.max_model_len:
            params["max_completion_tokens"] = self.max_model_len
        body.update({k: v for k, v in params.items() if v is not None})
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        tool_choice: Any = "auto",
        stream: bool = False,
        on_event: Callable[[StreamEvent], None] | None = None,
        **overrides: Any,
    ) -> Completion:
        """One chat completion. 5xx and refused connections are retried with backoff."""
        model = await self._model_name()
        body = self.build_body(messages, tools, model, tool_choice, stream, **overrides)
        payload = json.dumps(body, ensure_ascii=False).encode()
        started = time.perf_counter()
        attempt = 0
        shrinks = 0
        while True:
            try:
                # one deadline for connect, headers and the whole body or stream: a server
                # trickling bytes or keep-alives cannot hold a run past it
                async with asyncio.timeout(self.timeout_s):
                    if stream:
                        completion = await self._stream_once(payload, on_event)
                    else:
                        completion = await self._once(payload)
                break
            except TimeoutError as exc:
                raise self._timeout(self.chat_url, exc) from exc
            except (ModelHTTPError, ModelServerUnreachable) as exc:
                if isinstance(exc, ModelHTTPError) and exc.status == 400 and shrinks < MAX_SHRINKS:
                    allowed = allowed_output_tokens(exc.server_message)
                    asked = body.get("max_completion_tokens")
                    if allowed and allowed > 0 and isinstance(asked, int) and allowed < asked:
                        # the prompt grew into the reply's room: ask for what still fits
                        logger.warning(
                            "server refused max_completion_tokens={}; retrying with {}",
                            asked,
                            allowed,
                        )
                        body["max_completion_tokens"] = allowed
                        payload = json.dumps(body, ensure_ascii=False).encode()
                        shrinks += 1
                        continue
                retryable = isinstance(exc, ModelServerUnreachable) or (
                    exc.status >= 500 or exc.status in RETRY_STATUSES
                )
                if not retryable or attempt >= self.retries:
                    raise
                delay = self.backoff_s * (2**attempt)
                attempt += 1
                logger.warning(
                    "model request failed ({}); retry {}/{} in {:.2f} s",
                    exc,
                    attempt,
                    self.retries,
                    delay,
                )
                await asyncio.sleep(delay)
        completion.latency_s = time.perf_counter() - started
        return completion

    async def _once(self, payload: bytes) -> Completion:
        url = self.chat_url
        try:
            async with self._client().stream(
                "POST", url, content=payload, headers={"Content-Type": "application/json"}
            ) as resp:
                body = await self._read_bounded(url, resp)
        except httpx.ConnectError as exc:
            raise self._unreachable(url, exc) from exc
        except httpx.TimeoutException as exc:
            raise self._timeout(url, exc) from exc
        except httpx.TransportError as exc:
            raise ModelProtocolError(
                f"the connection to {url} broke before the answer was complete ({type(exc).__name__}: {exc})",
                url,
            ) from exc
        if resp.status_code >= 400:
            raise self._http_error(url, resp.status_code, body)
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ModelProtocolError(
                f"{url} answered a body that is not JSON: {body[:200]!r}", url
            ) from exc
        if not isinstance(data, dict):
            raise ModelProtocolError(
                f"{url} answered JSON that is not an object: {data!r:.200}", url
            )
        if data.get("object") == "error" or (
            isinstance(data.get("error"), dict) and "choices" not in data
        ):
            inner = data.get("error") if isinstance(data.get("error"), dict) else data
            raise ModelProtocolError(f"{url} answered an error object: {inner.get('message')}", url)
        problem = check_response(data)
        if problem is not None:
            raise ModelProtocolError(f"{url} answered a reply of the wrong shape: {problem}", url)
        choices = data.get("choices") or []
        if not choices:
            raise ModelProtocolError(f"{url} answered no choices: {body[:200]!r}", url)
        choice = choices[0]
        message = choice.get("message") or {}
        finish = choice.get("finish_reason")
        self._check_tool_count(url, message.get("tool_calls"))
        return Completion(
            reply=reply_from_message(message, finish),
            finish_reason=finish,
            usage=parse_usage(data.get("usage")),
            request_id=_id(data.get("id")),
            model=data.get("model"),
            raw_message=message,
        )

    async def _read_bounded(self, url: str, resp: httpx.Response) -> bytes:
        """The whole body, refused once it passes ``max_reply_bytes``."""
        parts: list[bytes] = []
        size = 0
        async for part in resp.aiter_bytes():
            size += len(part)
            if size > self.max_reply_bytes:
                raise ModelProtocolError(
                    f"{url} sent a reply larger than {self.max_reply_bytes} bytes "
                    "(max_reply_bytes); refused",
                    url,
                )
            parts.append(part)
        return b"".join(parts)

    def _check_tool_count(self, url: str, calls: Any) -> None:
        if isinstance(calls, list) and len(calls) > self.max_tool_calls:
            raise ModelProtocolError(
                f"{url} sent {len(calls)} tool calls in one reply, more than "
                f"{self.max_tool_calls} (max_tool_calls); refused",
                url,
            )

    async def _stream_once(
        self, payload: bytes, on_event: Callable[[StreamEvent], None] | None
    ) -> Completion:
        url = self.chat_url
        state = _StreamState(on_event, self.max_tool_calls)
        received = 0
        try:
            async with self._client().stream(
                "POST", url, content=payload, headers={"Content-Type": "application/json"}
            ) as resp:
                if resp.status_code >= 400:
                    raise self._http_error(url, resp.status_code, await resp.aread())
                async for line in resp.aiter_lines():
                    received += len(line) + 1
                    if received > self.max_reply_bytes:
                        raise ModelProtocolError(
                            f"the stream from {url} passed {self.max_reply_bytes} bytes "
                            f"(max_reply_bytes) after {state.chunks} chunks; refused",
                            url,
                        )
                    self._stream_line(url, line, state)
                    if state.done:
                        break
        except httpx.ConnectError as exc:
            raise self._unreachable(url, exc) from exc
        except httpx.TimeoutException as exc:
            raise self._timeout(url, exc) from exc
        except httpx.TransportError as exc:
            raise ModelProtocolError(
                f"the stream from {url} was dropped after {state.chunks} chunks "
                f"({type(exc).__name__}: {exc})",
                url,
            ) from exc
        except ModelProtocolError as exc:
            if not exc.url:  # raised by the stream state, which does not know the URL
                raise ModelProtocolError(f"{url}: {exc}", url) from exc
            raise
        if not state.done:
            if state.finish_reason is None:
                raise ModelProtocolError(
                    f"the stream from {url} ended after {state.chunks} chunks without a "
                    "finish_reason or [DONE]",
                    url,
                )
            # a proxy may close a finished stream without [DONE]: the answer is whole
            logger.debug("stream from {} closed after finish_reason without [DONE]", url)
        message = state.message()
        return Completion(
            reply=reply_from_message(message, state.finish_reason),
            finish_reason=state.finish_reason,
            usage=parse_usage(state.usage),
            request_id=_id(state.request_id),
            model=state.model,
            raw_message=message,
        )

    @staticmethod
    def _stream_line(url: str, line: str, state: _StreamState) -> None:
        line = line.strip()
        if not line or line.startswith(":") or not line.startswith("data:"):
            if line and not line.startswith(("event:", "id:", "retry:", ":")):
                raise ModelProtocolError(f"{url} sent a line that is not SSE: {line[:200]!r}", url)
            return
        data = line[len("data:") :].strip()
        if not data:
            return
        if data == "[DONE]":
            state.done = True
            return
        try:
            obj = json.loads(data)
        except ValueError as exc:
            raise ModelProtocolError(
                f"{url} streamed a chunk that is not JSON: {data[:200]!r}", url
            ) from exc
        if not isinstance(obj, dict):
            raise ModelProtocolError(
                f"{url} streamed a chunk that is not an object: {data[:200]!r}", url
            )
        if obj.get("error") is not None or obj.get("object") == "error":
            inner = obj["error"] if isinstance(obj.get("error"), dict) else obj
            message = inner.get("message", inner)
            code = inner.get("code")
            if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
                raise ModelStreamError(code, str(message), url, chunks=state.chunks)
            raise ModelProtocolError(
                f"{url} reported an error inside the stream after {state.chunks} chunks: {message}",
                url,
            )
        problem = check_chunk(obj)
        if problem is not None:
            raise ModelProtocolError(
                f"{url} streamed a chunk of the wrong shape after {state.chunks} chunks: {problem}",
                url,
            )
        state.feed(obj)


def _id(value: Any) -> str | None:
    """A response id as text: servers send hex, ``chatcmpl-...`` or, rarely, a number."""
    return None if value is None else str(value)
