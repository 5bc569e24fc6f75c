"""Property tests: generated replies, random chunkings; 10,500 generated cases in all."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guiagent.models.hermes import (
    ContentDelta,
    HermesStreamParser,
    ParseError,
    ReasoningDelta,
    StreamEvent,
    ToolCallEvent,
    parse_message,
    parse_reply,
)
from guiagent.models.reply import ToolCall


def fast(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


TAGS = ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_calls>", "</tool_calls>"]
PARTIALS = [t[:k] for t in TAGS for k in range(1, len(t))]
JSON_BITS = [
    '{"name": ',
    '"click"',
    '"arguments": ',
    '{"x": 1, "y": 2}',
    "}",
    "{",
    ",",
    ":",
    '"',
    "\\",
    "'",
    "[",
    "]",
]
JSON_BITS += ["True", "None", "false", '"parameters": ', '"{\\"a\\": 1}"', "\n", " ", "\t"]
JUNK = ["hello", "<b>", "</b>", "<", ">", "a < b", "->", "\\n", "😀", "é", "日本", "\u200b", "\r\n"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.sampled_from(
        ["</tool_call>", "<tool_call>", "</think>", "<think>", 'q"uote', "back\\slash", "{}"]
    ),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
arguments = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


@st.composite
def call_blocks(draw: st.DrawFn) -> str:
    body = {
        "name": draw(names),
        draw(st.sampled_from(["arguments", "parameters"])): draw(arguments),
    }
    space = draw(st.sampled_from(["", "\n", " \n "]))
    return (
        "<tool_call>"
        + space
        + json.dumps(body, ensure_ascii=draw(st.booleans()))
        + space
        + "</tool_call>"
    )


# Replies are drawn as bytes indexing a pool of fragments (plus one free unicode text):
# one cheap draw per example keeps 10,000 examples within the time budget.
_SAMPLE_CALLS = [
    '<tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}</tool_call>',
    '<tool_call>\n{"name": "type", "parameters": {"text": "a </tool_call> b \\" <think>"}}\n</tool_call>',
    "<tool_call>{'name': 'key', 'arguments': {'keys': ['ctrl', 's',], 'hold': True,},}</tool_call>",
    '<tool_call>{"name": "finish", "arguments": "{\\"answer\\": \\"日本\\"}"}</tool_call>',
    '<tool_call>{"name": "wait", "arguments": {"seconds": 1}',
]
POOL = TAGS + PARTIALS + JSON_BITS + JUNK + _SAMPLE_CALLS


@st.composite
def replies(draw: st.DrawFn) -> str:
    picks = draw(st.binary(max_size=28))
    extra = draw(st.text(max_size=6))
    return "".join(extra if b == 255 else POOL[b % len(POOL)] for b in picks)


chunk_sizes = st.binary(min_size=1, max_size=6).map(lambda bs: [b % 9 + 1 for b in bs])


def chunked(text: str, sizes: list[int]) -> list[str]:
    out: list[str] = []
    i = k = 0
    while i < len(text):
        out.append(text[i : i + sizes[k % len(sizes)]])
        i += sizes[k % len(sizes)]
        k += 1
    return out


def _texts(events: list[StreamEvent], kind: type) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


@fast(6500)
@given(text=replies(), sizes=chunk_sizes, in_reasoning=st.booleans())
def test_streaming_equals_batch(text: str, sizes: list[int], in_reasoning: bool) -> None:
    batch = parse_reply(text, in_reasoning=in_reasoning)
    whole = HermesStreamParser(in_reasoning=in_reasoning)
    whole_events = whole.feed(text) + whole.finish()
    parser = HermesStreamParser(in_reasoning=in_reasoning)
    events = [e for chunk in chunked(text, sizes) for e in parser.feed(chunk)]
    events += parser.finish()
    assert parser.result() == batch
    # the raw deltas are the same whatever the chunking: a partial tag held back at a
    # chunk's end is never emitted as text
    assert _texts(events, ContentDelta) == _texts(whole_events, ContentDelta)
    assert _texts(events, ReasoningDelta) == _texts(whole_events, ReasoningDelta)
    assert _texts(events, ContentDelta).strip() == batch.content
    assert _texts(events, ReasoningDelta).strip() == (batch.reasoning or "")
    assert [e.message for e in events if isinstance(e, ParseError)] == batch.errors
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert sorted(calls, key=lambda c: c.source != "content") == batch.tool_calls


@fast(750)
@given(
    blocks=st.lists(st.tuples(call_blocks(), st.booleans()), max_size=4),
    filler=st.lists(
        st.text(alphabet=st.characters(blacklist_characters="<"), max_size=10),
        min_size=9,
        max_size=9,
    ),
)
def test_generated_calls_are_recovered(blocks: list[tuple[str, bool]], filler: list[str]) -> None:
    """Well-formed blocks, some in the reasoning and some after </think>, all come back exactly."""
    in_reasoning = [b for b, r in blocks if r]
    in_content = [b for b, r in blocks if not r]
    text = (
        filler[0]
        + filler[1].join(in_reasoning)
        + filler[2]
        + "</think>"
        + filler[3]
        + filler[4].join(in_content)
    )
    reply = parse_reply(text)

    def expected(block: str, source: str) -> ToolCall:
        body = json.loads(block.removeprefix("<tool_call>").removesuffix("</tool_call>"))
        args = body.get("arguments", body.get("parameters"))
        return ToolCall(name=body["name"], arguments=args, source=source)  # type: ignore[arg-type]

    assert reply.tool_calls == [expected(b, "content") for b in in_content] + [
        expected(b, "reasoning") for b in in_reasoning
    ]
    assert reply.errors == []
    assert reply.content == (filler[3] + filler[4] * max(len(in_content) - 1, 0)).strip()
    assert (
        reply.reasoning
        == (filler[0] + filler[1] * max(len(in_reasoning) - 1, 0) + filler[2]).strip()
    )


def pyish(value: Any, draw: st.DrawFn) -> str:
    """Python-flavoured JSON: single quotes, True/False/None, trailing commas."""
    if value is None or isinstance(value, bool):
        return repr(value) if draw(st.booleans()) else json.dumps(value)
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        if draw(st.booleans()) and not set(value) & set("'\"\\<"):
            return "'" + value + "'"
        return json.dumps(value)
    comma = "," if draw(st.booleans()) else ""
    if isinstance(value, list):
        return "[" + ", ".join(pyish(v, draw) for v in value) + (comma if value else "") + "]"
    items = [pyish(str(k), draw) + ": " + pyish(v, draw) for k, v in value.items()]
    return "{" + ", ".join(items) + (comma if items else "") + "}"


@fast(750)
@given(data=st.data(), name=names, args=arguments, cut=st.integers(0, 2))
def test_repairs_recover_the_value(
    data: st.DataObject, name: str, args: dict[str, Any], cut: int
) -> None:
    body = pyish({"name": name, "arguments": args}, data.draw)
    # drop up to two final closing braces when they are really the end of the object
    for _ in range(cut):
        if body.endswith("}") and not body.endswith(",}"):
            body = body[:-1]
    reply = parse_reply("<tool_call>" + body + "</tool_call>")
    assert reply.tool_calls == [ToolCall(name=name, arguments=args)]
    assert all(e.startswith("repaired tool call 1: ") for e in reply.errors)


@fast(2500)
@given(content=st.none() | replies(), reasoning=st.none() | replies())
def test_parse_message_total(content: str | None, reasoning: str | None) -> None:
    reply = parse_message(content, reasoning)
    if not reasoning:
        assert reply == parse_reply(content or "")
    from_content = parse_reply(content or "")
    from_reasoning = parse_reply(reasoning or "", in_reasoning=True)
    assert len(reply.tool_calls) == len(from_content.tool_calls) + (
        len(from_reasoning.tool_calls) if reasoning else 0
    )
    sources = [c.source for c in reply.tool_calls]
    assert sources == sorted(sources, key=lambda s: s != "content")
