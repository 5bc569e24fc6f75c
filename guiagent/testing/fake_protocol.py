"""What the fake model server speaks about: the scripted reply, the received request.

Shared by the pieces of :mod:`guiagent.testing.fake_server` (which re-exports all of it).
"""

from __future__ import annotations

import base64
import io
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from guiagent.core.geometry import Size

Flavour = Literal[
    "sglang", "sglang-old", "vllm", "no-tool-parser", "no-reasoning-parser", "no-parsers"
]
Fault = Literal["drop_mid_stream", "garbage", "error_in_stream", "hang", "no_done"]
FLAVOURS: tuple[str, ...] = (
    "sglang",
    "sglang-old",
    "vllm",
    "no-tool-parser",
    "no-reasoning-parser",
    "no-parsers",
)
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


def json_arguments(arguments: dict[str, Any] | str) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def hermes_text(name: str, arguments: dict[str, Any] | str, *, cut: bool = False) -> str:
    """A tool call as the model writes it with the hermes template; ``cut``: generation
    stopped at the token limit inside it, after the (perhaps cut) arguments."""
    if cut:
        return f'<tool_call>\n{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {json_arguments(arguments)}'
    payload = f'{{"name": {json.dumps(name, ensure_ascii=False)}, "arguments": {json_arguments(arguments)}}}'
    return f"<tool_call>\n{payload}\n</tool_call>"


def complete_cut_json(text: str) -> dict[str, Any]:
    """The object SGLang's streaming tool parser makes of arguments cut at the token limit.

    Its base_format_detector.py parses the partial JSON with partial_json_parser
    (``Allow.ALL``) and, when generation ends, serving_chat.py
    ``_check_for_unstreamed_tool_args`` sends the rest of ``json.dumps`` of that object:
    an open string or number is closed where it was cut (``{"text": "hel`` ->
    ``{"text": "hel"}``), a key without a value is dropped. This walks back from the cut
    to the longest prefix that closes into an object.
    """
    for end in range(len(text), 0, -1):
        prefix = text[:end]
        closers: list[str] = []
        in_string = escape = False
        for c in prefix:
            if in_string:
                if escape:
                    escape = False
                elif c == "\\":
                    escape = True
                elif c == '"':
                    in_string = False
            elif c == '"':
                in_string = True
            elif c in "{[":
                closers.append("}" if c == "{" else "]")
            elif c in "}]" and closers:
                closers.pop()
        candidate = prefix + ('"' if in_string else "") + "".join(reversed(closers))
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}
