"""Streaming parser: fixed chunkings, held-back partial tags, event timing, O(n)."""

from __future__ import annotations

import json

import pytest

from guiagent.models.hermes import (
    ContentDelta,
    HermesStreamParser,
    ParseError,
    ReasoningDelta,
    StreamClosedError,
    StreamEvent,
    ToolCallEvent,
    parse_reply,
)
from guiagent.models.reply import Reply, ToolCall

SAMPLES = [
    "",
    "plain text with < and > and <b>bold</b>",
    'Sure. <tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}</tool_call> done',
    'I look.\n</think>\n\n<tool_call>\n{"name": "type", "arguments": {"text": "a </tool_call> b \\" c"}}\n</tool_call>',
    '<think>r <tool_call>{"name": "move", "parameters": {"x": 3, "y": 4}}</tool_call></think>c',
    "<tool_calls><tool_call>{'name': 'f', 'arguments': {'a': True,},}</tool_call></tool_calls>",
    '<tool_call>{"name": "a"}</tool_call><tool_call>{bad}</tool_call><tool_call>{"name": "c"',
    'x <tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}\n</tool_ca',
    '日本語 😀 </think> é <tool_call>{"name": "type", "arguments": "{\\"text\\": \\"ü\\"}"}</tool_call>',
    "<thin</thinkk></tool_cal <tool_calls <tool_call",
]


def chunked(text: str, sizes: list[int]) -> list[str]:
    out: list[str] = []
    i = k = 0
    while i < len(text):
        size = sizes[k % len(sizes)]
        out.append(text[i : i + size])
        i += size
        k += 1
    return out


def run(chunks: list[str], **kwargs: bool) -> tuple[list[list[StreamEvent]], Reply]:
    parser = HermesStreamParser(**kwargs)
    per_chunk = [parser.feed(c) for c in chunks]
    per_chunk.append(parser.finish())
    return per_chunk, parser.result()


def flat(per_chunk: list[list[StreamEvent]]) -> list[StreamEvent]:
    return [e for events in per_chunk for e in events]


@pytest.mark.parametrize("text", SAMPLES)
@pytest.mark.parametrize("sizes", [[1], [2], [3], [5], [7, 1, 2], [1000]])
@pytest.mark.parametrize("in_reasoning", [False, True])
def test_fixed_chunkings_equal_batch(text: str, sizes: list[int], in_reasoning: bool) -> None:
    per_chunk, result = run(chunked(text, sizes), in_reasoning=in_reasoning)
    assert result == parse_reply(text, in_reasoning=in_reasoning)
    events = flat(per_chunk)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)).strip() == result.content
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta)).strip()
    assert reasoning == (result.reasoning or "")
    assert [e.message for e in events if isinstance(e, ParseError)] == result.errors
    calls = [e.call for e in events if isinstance(e, ToolCallEvent)]
    assert sorted(calls, key=lambda c: c.source != "content") == result.tool_calls


@pytest.mark.parametrize("text", SAMPLES)
def test_every_two_way_split_equals_batch(text: str) -> None:
    expected = parse_reply(text)
    for cut in range(len(text) + 1):
        assert run([text[:cut], text[cut:]])[1] == expected, cut


def test_partial_tool_tag_held_back() -> None:
    parser = HermesStreamParser(in_reasoning=True)
    assert parser.feed("</think>hello <tool_") == [ContentDelta("hello ")]
    assert parser.feed("call>") == []
    assert parser.feed('{"name": "wait"}') == []
    assert parser.feed("</tool_call>") == [ToolCallEvent(ToolCall(name="wait"))]
    assert parser.finish() == []


def test_partial_think_tag_held_back() -> None:
    parser = HermesStreamParser(in_reasoning=True)
    assert parser.feed("pondering</thi") == [ReasoningDelta("pondering")]
    assert parser.feed("nk>") == []
    assert parser.feed("answer") == [ContentDelta("answer")]


def test_false_partial_released_next_chunk() -> None:
    parser = HermesStreamParser(in_reasoning=True)
    parser.feed("</think>")
    assert parser.feed("a <tool") == [ContentDelta("a ")]
    assert parser.feed("box> b") == [ContentDelta("<toolbox> b")]


def test_partial_tag_at_end_released_by_finish() -> None:
    # SGLang test_hermes_detector.py: test_finish_flushes_partial_marker_at_stream_end
    parser = HermesStreamParser(in_reasoning=True)
    parser.feed("</think>")
    events = [*parser.feed("The format looks like "), *parser.feed("<tool_"), *parser.feed("call")]
    assert events == [ContentDelta("The format looks like ")]
    assert parser.finish() == [ContentDelta("<tool_call")]
    assert parser.result().content == "The format looks like <tool_call"


def test_tool_call_emitted_when_block_closes() -> None:
    # vLLM test_hermes_tool_parser.py: test_streaming_tool_call_incremental
    parser = HermesStreamParser(in_reasoning=True)
    parser.feed("</think>")
    deltas = [
        "I need to check the weather. ",
        "<tool_call>",
        '{"name": "get_weather",',
        ' "arguments": {"city": "San Francisco",',
        ' "metric": "celsius"}}',
    ]
    events = [e for d in deltas for e in parser.feed(d)]
    assert events == [ContentDelta("I need to check the weather. ")]
    call = ToolCall(name="get_weather", arguments={"city": "San Francisco", "metric": "celsius"})
    assert parser.feed("</tool_call>") == [ToolCallEvent(call)]


def test_split_closing_marker_before_next_call() -> None:
    # SGLang test_hermes_detector.py: test_finish_drains_split_closing_marker_before_next_call
    chunks = [
        '<tool_call>{"name": "get_weather",',
        '"arguments": {"city": "Beijing"}}',
        "</tool_",
        'call><tool_call>{"name": "search", "arguments": {"query": "restaurants"}}</tool_call>',
    ]
    per_chunk, result = run(chunks)
    beijing = ToolCall(name="get_weather", arguments={"city": "Beijing"})
    search = ToolCall(name="search", arguments={"query": "restaurants"})
    assert result.tool_calls == [beijing, search]
    assert result.content == ""
    # nothing is released before the text is decided (no think tag yet), then both at finish
    assert per_chunk == [[], [], [], [], [ToolCallEvent(beijing), ToolCallEvent(search)]]
    per_chunk, _ = run(chunks, in_reasoning=True)
    as_reasoning = [
        ToolCallEvent(c.model_copy(update={"source": "reasoning"})) for c in (beijing, search)
    ]
    assert per_chunk == [[], [], [], as_reasoning, []]


def test_escape_split_across_chunks() -> None:
    text = '<tool_call>{"name": "type", "arguments": {"text": "q\\"</tool_call>"}}</tool_call>'
    cut = text.index("\\") + 1
    _, result = run([text[:cut], text[cut:]])
    assert result.tool_calls == [ToolCall(name="type", arguments={"text": 'q"</tool_call>'})]


def test_undecided_text_is_held_until_think_decides() -> None:
    parser = HermesStreamParser()
    assert parser.feed("The gear is top right. ") == []
    assert (
        parser.feed('<tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}</tool_call>') == []
    )
    events = parser.feed("</think>Now")
    assert events == [
        ReasoningDelta("The gear is top right. "),
        ToolCallEvent(ToolCall(name="click", arguments={"x": 1, "y": 2}, source="reasoning")),
        ContentDelta("Now"),
    ]


def test_undecided_text_becomes_content_at_finish() -> None:
    parser = HermesStreamParser()
    assert parser.feed("no tags at all") == []
    assert parser.finish() == [ContentDelta("no tags at all")]
    assert parser.result() == Reply(content="no tags at all")


def test_undecided_text_becomes_content_at_open_think() -> None:
    parser = HermesStreamParser()
    assert parser.feed("hi <think>") == [ContentDelta("hi ")]
    assert parser.feed("deep") == [ReasoningDelta("deep")]


def test_parse_errors_streamed() -> None:
    parser = HermesStreamParser(in_reasoning=True)
    parser.feed("</think>")
    events = parser.feed("<tool_call>{oops}</tool_call>")
    assert events == [
        ParseError(
            "skipped tool call 1: invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
        ),
        ContentDelta("<tool_call>{oops}</tool_call>"),
    ]


def test_feed_after_finish_is_an_error() -> None:
    parser = HermesStreamParser()
    parser.finish()
    with pytest.raises(StreamClosedError):
        parser.feed("x")
    with pytest.raises(StreamClosedError):
        parser.finish()


def _long_reply(size: int) -> str:
    para = "Looking at the toolbar <b>there</b> I see a gear icon; it should open settings. "
    call = '<tool_call>{"name": "type", "arguments": {"text": "' + "x" * 200 + '"}}</tool_call>'
    return para * (size // len(para)) + "</think>ok" + call * 3


def test_one_char_streaming_of_a_long_reply() -> None:
    # its speed (linear in the length) is measured by guiagent.bench.parser, not asserted here
    large = _long_reply(80_000)
    parser = HermesStreamParser()
    for ch in large:
        parser.feed(ch)
    parser.finish()
    assert parser.result() == parse_reply(large)
    assert (
        parse_reply(large).tool_calls == [ToolCall(name="type", arguments={"text": "x" * 200})] * 3
    )


def test_json_dumps_roundtrip_in_one_char_chunks() -> None:
    arguments = {"text": 'a</tool_call>b<think>c\\"d', "n": [1, 2.5, None, True], "ü": {"k": "v"}}
    text = (
        "<tool_call>"
        + json.dumps({"name": "type", "arguments": arguments}, ensure_ascii=False)
        + "</tool_call>"
    )
    _, result = run(list(text))
    assert result.tool_calls == [ToolCall(name="type", arguments=arguments)]
