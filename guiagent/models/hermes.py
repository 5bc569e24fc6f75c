"""Hermes-format replies: ``<think>`` reasoning and ``<tool_call>{json}</tool_call>`` blocks.

One scanner serves both the batch and the streaming parser: :func:`parse_reply` is a
single ``feed`` followed by ``finish``, so every way of cutting a text into chunks gives
the same :class:`~guiagent.models.reply.Reply`. The scanner never looks back at text it
has already consumed (only a partial tag, at most 12 characters, is held between
chunks), which keeps streaming O(n) even for 1-character chunks.

Rules, in the order they matter:

- Reasoning is the text inside ``<think>...</think>``, or before a lone ``</think>``
  (Step3-VL's template opens ``<think>`` itself). Until the first think tag is seen it
  is not known whether the text is reasoning or content: the stream holds it back and
  releases it when a tag decides (or at the end, as content). ``in_reasoning=True``
  says the text starts inside the reasoning, so nothing is held back.
- A ``<tool_call>`` block ends at the first ``</tool_call>`` outside a JSON string; a
  ``<think>``, ``</think>``, ``<tool_call>``, ``<tool_calls>`` or ``</tool_calls>``
  outside a string also ends it (unclosed), as does the end of the text. Every block is decoded; a block that
  cannot be decoded is reported in ``errors`` and its raw text stays where it was.
- JSON is repaired before it is rejected (trailing commas, single quotes, ``\\'``
  escapes, Python literals, missing closing braces, prose after a complete object, which
  goes back to the text); each repair is reported in ``errors``.
- ``<tool_calls>``/``</tool_calls>`` wrappers and stray ``</tool_call>`` tags are dropped.
- ``tool_calls`` lists calls written outside the reasoning first, then the ones
  recovered from inside it (``source="reasoning"``), each group in text order.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from guiagent.models.reply import Reply, ToolCall

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
CALL_OPEN = "<tool_call>"
CALL_CLOSE = "</tool_call>"
WRAP_OPEN = "<tool_calls>"
WRAP_CLOSE = "</tool_calls>"

_TAGS = (THINK_OPEN, THINK_CLOSE, CALL_OPEN, CALL_CLOSE, WRAP_OPEN, WRAP_CLOSE)
_TAG_PREFIXES = frozenset(tag[:k] for tag in _TAGS for k in range(1, len(tag)))
_MAX_TAG = max(len(tag) for tag in _TAGS)
_PARTIAL = "partial"

_IN_STRING_SPECIAL = re.compile(r'["\\]')
_OUT_STRING_SPECIAL = re.compile(r'["<]')
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
# strict=False: raw newlines/tabs inside strings are common in model output and unambiguous
_DECODER = json.JSONDecoder(strict=False)

Region = Literal["undecided", "content", "reasoning"]


class StreamClosedError(RuntimeError):
    """``feed`` or ``finish`` was called on a parser that has already finished."""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    call: ToolCall


@dataclass(frozen=True, slots=True)
class ParseError:
    message: str


StreamEvent = ReasoningDelta | ContentDelta | ToolCallEvent | ParseError


def parse_reply(text: str, *, in_reasoning: bool = False) -> Reply:
    """Split a raw model reply into content, reasoning, tool calls and parse errors."""
    parser = HermesStreamParser(in_reasoning=in_reasoning, _events=False)
    parser.feed(text)
    parser.finish()
    return parser.result()


def parse_message(content: str | None, reasoning: str | None) -> Reply:
    """Combine a server's separate ``content`` and ``reasoning_content`` fields.

    The content may still hold ``</think>`` (server run without a reasoning parser) and
    ``<tool_call>`` blocks (no tool parser); the reasoning may hold tool calls the
    server never parses. Calls from the content come first.
    """
    from_content = parse_reply(content or "")
    from_reasoning = parse_reply(reasoning or "", in_reasoning=True) if reasoning else None

    reasoning_parts: list[str] = []
    calls = [c for c in from_content.tool_calls if c.source == "content"]
    reasoning_calls: list[ToolCall] = []
    errors = list(from_content.errors)
    content_text = from_content.content
    if from_reasoning is not None:
        if from_reasoning.reasoning:
            reasoning_parts.append(from_reasoning.reasoning)
        calls.extend(c for c in from_reasoning.tool_calls if c.source == "content")
        reasoning_calls.extend(c for c in from_reasoning.tool_calls if c.source == "reasoning")
        errors.extend(f"reasoning: {e}" for e in from_reasoning.errors)
        if from_reasoning.content:  # text after a </think> inside the reasoning field
            content_text = "\n".join(p for p in (from_reasoning.content, content_text) if p)
    if from_content.reasoning:
        reasoning_parts.append(from_content.reasoning)
    reasoning_calls.extend(c for c in from_content.tool_calls if c.source == "reasoning")

    has_reasoning = from_reasoning is not None or from_content.reasoning is not None
    return Reply(
        content=content_text,
        reasoning="\n".join(reasoning_parts) if has_reasoning else None,
        tool_calls=calls + reasoning_calls,
        errors=errors,
    )


class HermesStreamParser:
    """Incremental parser: ``feed`` chunks, then ``finish``; ``result`` gives the Reply.

    Events: text is emitted as soon as it cannot be the start of a tag; a tool call the
    moment its block closes. Text (and calls) before the first think tag are held back
    while it is unknown whether they are reasoning, unless ``in_reasoning`` is set.
    The concatenated ``ParseError`` messages equal ``result().errors``.
    """

    def __init__(self, *, in_reasoning: bool = False, _events: bool = True) -> None:
        self._region: Region = "reasoning" if in_reasoning else "undecided"
        self._saw_reasoning = in_reasoning
        self._collect = _events
        self._events: list[StreamEvent] = []
        self._tail = ""
        self._finished = False
        # the open <tool_call> block, if any
        self._in_block = False
        self._block_region: Region = "content"
        self._body: list[str] = []
        self._in_string = False
        self._escape = False
        self._blocks = 0
        # what has been decided
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._content_calls: list[ToolCall] = []
        self._reasoning_calls: list[ToolCall] = []
        self._errors: list[str] = []
        self._pending: list[str | tuple[str, dict[str, Any]]] = []

    # ---- public API -----------------------------------------------------------------

    def feed(self, chunk: str) -> list[StreamEvent]:
        if self._finished:
            raise StreamClosedError("feed() after finish()")
        if not self._tail and not self._in_block and "<" not in chunk:  # the common token
            self._text(chunk)
            return self._take_events()
        data = self._tail + chunk if self._tail else chunk
        self._tail = ""
        self._scan(data, final=False)
        return self._take_events()

    def finish(self) -> list[StreamEvent]:
        if self._finished:
            raise StreamClosedError("finish() called twice")
        self._finished = True
        data, self._tail = self._tail, ""
        self._scan(data, final=True)
        if self._in_block:
            self._end_block(closed=False)
        if self._region == "undecided":
            self._decide("content")
        return self._take_events()

    def result(self) -> Reply:
        """The reply so far; complete once :meth:`finish` has run."""
        return Reply(
            content="".join(self._content).strip(),
            reasoning="".join(self._reasoning).strip() if self._saw_reasoning else None,
            tool_calls=self._content_calls + self._reasoning_calls,
            errors=list(self._errors),
        )

    # ---- scanning -------------------------------------------------------------------

    def _take_events(self) -> list[StreamEvent]:
        events, self._events = self._events, []
        return events

    def _scan(self, data: str, final: bool) -> None:
        i, n = 0, len(data)
        while i < n:
            i = (
                self._scan_block(data, i, final)
                if self._in_block
                else self._scan_text(data, i, final)
            )

    def _scan_text(self, data: str, i: int, final: bool) -> int:
        start = i
        while True:
            j = data.find("<", start)
            if j < 0:
                self._text(data[i:])
                return len(data)
            tag = _match_tag(data, j, final)
            if tag is None:
                start = j + 1
                continue
            self._text(data[i:j])
            if tag == _PARTIAL:
                self._tail = data[j:]
                return len(data)
            self._on_tag(tag)
            return j + len(tag)

    def _scan_block(self, data: str, i: int, final: bool) -> int:
        n = len(data)
        start = i
        while i < n:
            if self._in_string:
                if self._escape:
                    self._escape = False
                    i += 1
                    continue
                m = _IN_STRING_SPECIAL.search(data, i)
                if m is None:
                    break
                k = m.start()
                if data[k] == "\\":
                    self._escape = True
                else:
                    self._in_string = False
                i = k + 1
                continue
            m = _OUT_STRING_SPECIAL.search(data, i)
            if m is None:
                break
            k = m.start()
            if data[k] == '"':
                self._in_string = True
                i = k + 1
                continue
            tag = _match_tag(data, k, final)
            if tag is None:
                i = k + 1
                continue
            self._body.append(data[start:k])
            if tag == _PARTIAL:
                self._tail = data[k:]
                return n
            if tag == CALL_CLOSE:
                self._end_block(closed=True)
                return k + len(tag)
            self._end_block(closed=False)
            return k  # the tag that ended the block is handled as text
        self._body.append(data[start:])
        return n

    def _on_tag(self, tag: str) -> None:
        if tag == THINK_OPEN:
            if self._region == "undecided":
                self._decide("content")
            self._region = "reasoning"
            self._saw_reasoning = True
        elif tag == THINK_CLOSE:
            if self._region == "undecided":
                self._saw_reasoning = True
                self._decide("reasoning")
            self._region = "content"
        elif tag == CALL_OPEN:
            self._in_block = True
            self._block_region = self._region
            self._body = []
            self._in_string = False
            self._escape = False
            self._blocks += 1
        # CALL_CLOSE outside a block, WRAP_OPEN and WRAP_CLOSE are dropped

    def _end_block(self, closed: bool) -> None:
        self._in_block = False
        body = "".join(self._body)
        self._body = []
        decoded, messages = _decode_block(body, self._blocks, unclosed=not closed)
        for message in messages:
            self._errors.append(message)
            if self._collect:
                self._events.append(ParseError(message))
        if decoded is not None:
            name, arguments, rest = decoded
            self._call(self._block_region, (name, arguments))
            if rest:
                self._emit_text(self._block_region, rest)
        else:
            self._emit_text(self._block_region, CALL_OPEN + body + (CALL_CLOSE if closed else ""))

    # ---- output ---------------------------------------------------------------------

    def _text(self, text: str) -> None:
        if text:
            self._emit_text(self._region, text)

    def _emit_text(self, region: Region, text: str) -> None:
        if region == "content":
            self._content.append(text)
            if self._collect:
                self._events.append(ContentDelta(text))
        elif region == "reasoning":
            self._reasoning.append(text)
            if self._collect:
                self._events.append(ReasoningDelta(text))
        else:
            self._pending.append(text)

    def _call(self, region: Region, decoded: tuple[str, dict[str, Any]]) -> None:
        if region == "undecided":
            self._pending.append(decoded)
            return
        call = ToolCall(name=decoded[0], arguments=decoded[1], source=region)
        (self._content_calls if region == "content" else self._reasoning_calls).append(call)
        if self._collect:
            self._events.append(ToolCallEvent(call))

    def _decide(self, region: Literal["content", "reasoning"]) -> None:
        pending, self._pending = self._pending, []
        for item in pending:
            if isinstance(item, str):
                self._emit_text(region, item)
            else:
                self._call(region, item)
        self._region = region


def _match_tag(data: str, j: int, final: bool) -> str | None:
    """The tag starting at ``data[j]``, ``_PARTIAL`` if the data ends inside one, else None."""
    for tag in _TAGS:
        if data.startswith(tag, j):
            return tag
    if not final and len(data) - j < _MAX_TAG and data[j:] in _TAG_PREFIXES:
        return _PARTIAL
    return None


# ---- decoding one block -----------------------------------------------------------------


def _decode_block(
    body: str, index: int, unclosed: bool
) -> tuple[tuple[str, dict[str, Any], str] | None, list[str]]:
    """Decode a block body into (name, arguments, text after the JSON), with the messages
    for ``errors``."""
    text = body.strip()
    if unclosed:
        text = _strip_partial_close(text)
    if not text:
        return None, [f"skipped tool call {index}: empty block"]
    rest = ""
    obj, repairs, error = _loads_forgiving(text)
    if error is not None:
        # a complete object followed by prose (often: the closing tag was never written)
        try:
            obj, end = _DECODER.raw_decode(text)
        except json.JSONDecodeError:
            return None, [f"skipped tool call {index}: invalid JSON ({error})"]
        rest = text[end:]
        repairs = ["text after the JSON object moved out of the block"]
    if not isinstance(obj, dict):
        return None, [
            f"skipped tool call {index}: expected a JSON object, got {type(obj).__name__}"
        ]
    if "name" not in obj and isinstance(obj.get("function"), dict):  # OpenAI-shaped call
        obj = obj["function"]
    name = obj.get("name")
    if name is None:
        return None, [f'skipped tool call {index}: missing "name"']
    if not isinstance(name, str) or not name.strip():
        return None, [f'skipped tool call {index}: "name" must be a non-empty string, got {name!r}']
    arguments = obj["arguments"] if "arguments" in obj else obj.get("parameters")
    if arguments is None:
        arguments = {}
    elif isinstance(arguments, str):
        if not arguments.strip():
            arguments = {}
        else:
            arguments, more, error = _loads_forgiving(arguments)
            if error is not None:
                return None, [
                    f"skipped tool call {index}: arguments string is not valid JSON ({error})"
                ]
            repairs += [f"{r} in arguments string" for r in more]
    if not isinstance(arguments, dict):
        return None, [
            f"skipped tool call {index}: arguments must be an object, got {type(arguments).__name__}"
        ]
    return (name.strip(), arguments, rest), [f"repaired tool call {index}: {r}" for r in repairs]


def _strip_partial_close(text: str) -> str:
    """Drop a closing tag cut short by the end of the text (``...}</tool_ca``)."""
    k = text.rfind("<")
    if k >= 0 and CALL_CLOSE.startswith(text[k:]):
        return text[:k].rstrip()
    return text


def _loads_forgiving(text: str) -> tuple[Any, list[str], str | None]:
    """Parse JSON; on failure try the unambiguous repairs. Returns (value, repairs, error)."""
    try:
        return _DECODER.decode(text), [], None
    except json.JSONDecodeError as exc:
        first_error = str(exc)
    repaired, repairs = repair_json(text)
    if repairs:
        try:
            return _DECODER.decode(repaired), repairs, None
        except json.JSONDecodeError:
            pass
    return None, [], first_error


def repair_json(text: str) -> tuple[str, list[str]]:
    """Fix the common slips of model-written JSON; returns the text and what was fixed.

    Handles trailing commas, single-quoted strings, ``\\'`` escapes, Python
    ``True``/``False``/``None`` and missing closing braces/brackets at the end. Text inside strings is never touched.
    A string left open at the end is not repaired (where it should end is a guess).
    """
    out: list[str] = []
    repairs: list[str] = []
    stack: list[str] = []
    i, n = 0, len(text)

    def note(what: str) -> None:
        if what not in repairs:
            repairs.append(what)

    while i < n:
        c = text[i]
        if c == '"':
            end = _string_end(text, i, '"')
            if end < 0:
                return text, []
            piece = text[i:end]
            if "\\'" in piece:  # \' is not a JSON escape
                fixed = _unescape_single_quotes(piece)
                if fixed != piece:
                    note("escaped single quote")
                piece = fixed
            out.append(piece)
            i = end
        elif c == "'":
            end = _string_end(text, i, "'")
            if end < 0:
                return text, []
            out.append(_requote(text[i + 1 : end - 1]))
            note("single quotes")
            i = end
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
            out.append(c)
            i += 1
        elif c in "}]":
            if stack and stack[-1] == c:
                stack.pop()
            out.append(c)
            i += 1
        elif c == ",":
            k = i + 1
            while k < n and text[k] in " \t\r\n":
                k += 1
            if k == n or text[k] in "}]":
                note("trailing comma")
            else:
                out.append(c)
            i += 1
        elif c.isalpha() or c == "_":
            m = _IDENT.match(text, i)
            word = m.group(0) if m else c
            if word in _PY_LITERALS:
                out.append(_PY_LITERALS[word])
                note("Python literal")
            else:
                out.append(word)
            i += len(word)
        else:
            out.append(c)
            i += 1
    if stack:
        out.extend(reversed(stack))
        note("missing closing brace" if set(stack) == {"}"} else "missing closing bracket")
    return "".join(out), repairs


def _string_end(text: str, i: int, quote: str) -> int:
    """Index just past the string opened by ``text[i]``, or -1 if it never closes."""
    k = i + 1
    n = len(text)
    while k < n:
        c = text[k]
        if c == "\\":
            k += 2
        elif c == quote:
            return k + 1
        else:
            k += 1
    return -1


def _unescape_single_quotes(piece: str) -> str:
    """Turn each ``\\'`` into ``'`` in a double-quoted string, leaving ``\\\\`` pairs alone."""
    chars: list[str] = []
    k = 0
    while k < len(piece):
        if piece[k] == "\\" and k + 1 < len(piece):
            chars.append("'" if piece[k + 1] == "'" else piece[k : k + 2])
            k += 2
        else:
            chars.append(piece[k])
            k += 1
    return "".join(chars)


def _requote(inner: str) -> str:
    """A single-quoted string's inside as a double-quoted JSON string."""
    chars: list[str] = []
    k = 0
    while k < len(inner):
        c = inner[k]
        if c == "\\" and k + 1 < len(inner) and inner[k + 1] == "'":
            chars.append("'")
            k += 2
            continue
        if c == "\\" and k + 1 < len(inner):
            chars.append(inner[k : k + 2])
            k += 2
            continue
        chars.append('\\"' if c == '"' else c)
        k += 1
    return '"' + "".join(chars) + '"'
