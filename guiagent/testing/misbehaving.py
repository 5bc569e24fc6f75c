"""A deliberately broken model server for fault tests and fault measurements.

It answers ``/health`` and ``/v1/models`` like SGLang, and each chat request with a
*behaviour*: a function that writes raw bytes to the socket, so it can send what no
well-behaved framework would (a body trickled a byte at a time, an endless stream of SSE
keep-alives, a 200 MB body, JSON of the wrong shape). ``last_byte_at`` is the
``time.monotonic()`` of the last byte any behaviour sent, for measuring how fast a client
gives up.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from typing import Any

Behaviour = Callable[["Conn"], None]


class Conn:
    """One chat request's connection, as a behaviour sees it."""

    def __init__(self, sock: socket.socket, server: MisbehavingServer, body: bytes) -> None:
        self.sock = sock
        self.server = server
        self.body = body

    @property
    def stopping(self) -> bool:
        return self.server.stop_event.is_set()

    def send(self, data: bytes) -> bool:
        """Write ``data``; False once the client has gone (or the server stops)."""
        if self.stopping:
            return False
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        self.server.last_byte_at = time.monotonic()
        return True

    def head(self, content_type: str, length: int | None = None, status: int = 200) -> bool:
        lines = [f"HTTP/1.1 {status} OK", f"Content-Type: {content_type}", "Connection: close"]
        if length is not None:
            lines.append(f"Content-Length: {length}")
        return self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def pause(self, seconds: float) -> bool:
        """Sleep; False when the server is stopping."""
        return not self.server.stop_event.wait(seconds)


def json_reply(payload: Any) -> Behaviour:
    """Any JSON value as the whole body (the shape is the test's business)."""
    data = json.dumps(payload).encode()

    def behave(conn: Conn) -> None:
        conn.head("application/json", len(data))
        conn.send(data)

    return behave


def sse_reply(chunks: list[Any], done: bool = True) -> Behaviour:
    """Each chunk as one ``data:`` event, then ``[DONE]``."""

    def behave(conn: Conn) -> None:
        conn.head("text/event-stream")
        for chunk in chunks:
            conn.send(f"data: {json.dumps(chunk)}\n\n".encode())
        if done:
            conn.send(b"data: [DONE]\n\n")

    return behave


def trickle(interval_s: float, length: int = 100_000) -> Behaviour:
    """A JSON body announced as ``length`` bytes, sent one byte every ``interval_s``."""

    def behave(conn: Conn) -> None:
        conn.head("application/json", length)
        body = b'{"id": "x", "choices": [' + b" " * length
        for n in range(length):
            if not conn.send(body[n : n + 1]) or not conn.pause(interval_s):
                return

    return behave


def keepalive_stream(interval_s: float) -> Behaviour:
    """An SSE stream that starts properly, then sends only keep-alive comments, forever."""
    first = {"id": "x", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}

    def behave(conn: Conn) -> None:
        conn.head("text/event-stream")
        conn.send(f"data: {json.dumps(first)}\n\n".encode())
        while conn.send(b": keep-alive\n\n") and conn.pause(interval_s):
            pass

    return behave


def huge_body(total_bytes: int, chunk: int = 1 << 20) -> Behaviour:
    """A JSON reply whose ``content`` alone is ``total_bytes`` long."""

    def behave(conn: Conn) -> None:
        head = b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": "'
        tail = b'"}, "finish_reason": "stop"}]}'
        conn.head("application/json", len(head) + total_bytes + len(tail))
        if not conn.send(head):
            return
        sent = 0
        block = b"a" * chunk
        while sent < total_bytes:
            piece = block[: min(chunk, total_bytes - sent)]
            if not conn.send(piece):
                return
            sent += len(piece)
        conn.send(tail)

    return behave


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data:
            piece = sock.recv(65536)
            if not piece:
                return
            data += piece
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path = lines[0].split(" ")[:2]
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        while len(body) < length:
            piece = sock.recv(65536)
            if not piece:
                break
            body += piece
        owner = self.server.owner
        conn = Conn(sock, owner, body)
        if path.startswith("/health"):
            json_reply({})(conn)
        elif path.startswith("/v1/models"):
            json_reply({"object": "list", "data": [{"id": "broken", "max_model_len": 32768}]})(conn)
        elif method == "POST" and path.startswith("/v1/chat/completions"):
            owner.chat_requests += 1
            owner.behaviour(conn)
        else:
            json_reply({"object": "error", "message": "not found"})(conn)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: MisbehavingServer


class MisbehavingServer:
    """``with MisbehavingServer(behaviour) as server:`` ... ``server.url``."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.stop_event = threading.Event()
        self.last_byte_at: float | None = None
        self.chat_requests = 0
        self._server = _TCPServer(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> MisbehavingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self._server.shutdown()
        self._server.server_close()
