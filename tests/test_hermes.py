"""Batch parsing of hermes-format replies: exact expected values for every behaviour."""

from __future__ import annotations

import json

import pytest

from guiagent.models.hermes import parse_message, parse_reply, repair_json
from guiagent.models.reply import Reply, ToolCall


def call(tool: str, source: str = "content", /, **arguments: object) -> ToolCall:
    return ToolCall(name=tool, arguments=dict(arguments), source=source)  # type: ignore[arg-type]


# ---- cases adapted from vLLM: tests/entrypoints/openai/tool_parsers/test_hermes_tool_parser.py
# (vllm-project/vllm, the hermes "<tool_call> format" cases). vLLM compares the arguments JSON
# string; here the decoded dict.

VLLM_CASES = [
    (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "San Francisco", "metric": "celsius"}}</tool_call>',
        [call("get_weather", city="San Francisco", metric="celsius")],
    ),
    (
        '<tool_call>{"name": "register_user", "arguments": {"name": "John Doe", "age": 37, "address": '
        '{"city": "San Francisco", "state": "CA"}, "role": null, "passed_test": true, "aliases": ["John", "Johnny"]}}'
        "</tool_call>",
        [
            call(
                "register_user",
                name="John Doe",
                age=37,
                address={"city": "San Francisco", "state": "CA"},
                role=None,
                passed_test=True,
                aliases=["John", "Johnny"],
            )
        ],
    ),
    ('<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>', [call("get_weather")]),
    (
        '<tool_call>{"name": "do_something_cool", "arguments": {"additional_data": {}}}</tool_call>',
        [call("do_something_cool", additional_data={})],
    ),
    (
        '<tool_call>{"name": "do_something_cool", "arguments": {"steps": []}}</tool_call>',
        [call("do_something_cool", steps=[])],
    ),
    (
        r'<tool_call>{"name": "get_weather", "arguments": {"city": "Martha\'s Vineyard", "metric": "\"cool units\""}}</tool_call>',
        [call("get_weather", city="Martha's Vineyard", metric='"cool units"')],
    ),
    (
        '<tool_call>{"name": "get_weather", "arguments": {"city": "San Francisco", "metric": "celsius"}}</tool_call>'
        '<tool_call>{"name": "register_user", "arguments": {"name": "John Doe", "age": 37}}</tool_call>',
        [
            call("get_weather", city="San Francisco", metric="celsius"),
            call("register_user", name="John Doe", age=37),
        ],
    ),
]


@pytest.mark.parametrize(("text", "expected"), VLLM_CASES)
def test_vllm_cases(text: str, expected: list[ToolCall]) -> None:
    # \' is not a JSON escape: vLLM's "Martha\'s Vineyard" case needs (and reports) a repair
    errors = ["repaired tool call 1: escaped single quote"] if "\\'" in text else []
    assert parse_reply(text) == Reply(content="", tool_calls=expected, errors=errors)


def test_vllm_no_tool_call() -> None:
    assert parse_reply("How can I help you today?") == Reply(content="How can I help you today?")


def test_vllm_content_before_tool_call() -> None:
    text = (
        'I need to check the weather. <tool_call>{"name": "get_weather", "arguments": '
        '{"city": "San Francisco", "metric": "celsius"}}</tool_call>'
    )
    reply = parse_reply(text)
    assert reply.content == "I need to check the weather."
    assert reply.tool_calls == [call("get_weather", city="San Francisco", metric="celsius")]


def test_vllm_scratch_pad_is_plain_content() -> None:
    # vLLM drops the scratch pad from streamed content; for us it is just text outside the call
    text = (
        "<scratch_pad>Let me think about this...</scratch_pad><tool_call>"
        '{"name": "get_weather", "arguments": {"city": "San Francisco", "metric": "celsius"}}</tool_call>'
    )
    reply = parse_reply(text)
    assert reply.content == "<scratch_pad>Let me think about this...</scratch_pad>"
    assert reply.tool_calls == [call("get_weather", city="San Francisco", metric="celsius")]


def test_vllm_malformed_json_kept_as_content() -> None:
    text = "<tool_call>{name: get_weather, arguments: {city: San Francisco}}</tool_call>"
    reply = parse_reply(text)
    assert reply.content == text
    assert reply.tool_calls == []
    assert reply.errors == [
        "skipped tool call 1: invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    ]


def test_vllm_empty_tool_call() -> None:
    reply = parse_reply("<tool_call></tool_call>")
    assert reply == Reply(
        content="<tool_call></tool_call>", errors=["skipped tool call 1: empty block"]
    )


def test_vllm_unclosed_call_followed_by_another() -> None:
    text = '<tool_call>{"name": "get_weather"<tool_call>{"name": "register_user", "arguments": {"name": "John"}}</tool_call>'
    reply = parse_reply(text)
    # the cut-short first call is still unambiguous once its brace is closed
    assert reply.tool_calls == [call("get_weather"), call("register_user", name="John")]
    assert reply.errors == ["repaired tool call 1: missing closing brace"]
    assert reply.content == ""


# vLLM tests/tool_parsers/test_hermes_tool_parser.py (newer layout): between tags, until EOS,
# and the missing-brace case, which vLLM rejects and we repair (noted in errors).
def test_vllm_tool_call_between_tags_with_newlines() -> None:
    text = '<tool_call>\n{"name": "final_answer", "arguments": {"trigger": true}}\n</tool_call>'
    assert parse_reply(text) == Reply(tool_calls=[call("final_answer", trigger=True)])


def test_vllm_tool_call_until_eos() -> None:
    text = '<tool_call>\n{"name": "final_answer", "arguments": {"trigger": true}}'
    assert parse_reply(text) == Reply(tool_calls=[call("final_answer", trigger=True)])


def test_vllm_missing_closing_brace_is_repaired() -> None:
    text = '<tool_call>\n{"name": "final_answer", "arguments": {"trigger": true}'
    assert parse_reply(text) == Reply(
        tool_calls=[call("final_answer", trigger=True)],
        errors=["repaired tool call 1: missing closing brace"],
    )


def test_vllm_chinese_reasoning_then_call() -> None:
    # vLLM tests/entrypoints/openai/tool_parsers/test_hermes_tool_parser.py (QwQ sample,
    # shortened): reasoning closed by a lone </think>, non-ASCII arguments kept as is.
    text = (
        "好的，用户现在要研发一个5MW的燃气轮机。\n</think>\n\n<tool_call>"
        '\n{"name": "internet_search", "arguments": {"question": "5MW燃气轮机设计参数 空气流量 压气机压比 转速'
        ' 燃烧室出口温度 压气机级数 支点布局"}}\n</tool_call>\n\n '
    )
    reply = parse_reply(text)
    assert reply.reasoning == "好的，用户现在要研发一个5MW的燃气轮机。"
    assert reply.content == ""
    assert reply.tool_calls == [
        call(
            "internet_search",
            question="5MW燃气轮机设计参数 空气流量 压气机压比 转速 燃烧室出口温度 压气机级数 支点布局",
        )
    ]


# ---- cases adapted from SGLang: test/registered/unit/function_call/test_hermes_detector.py and
# test_qwen25_detector.py (sgl-project/sglang). SGLang strips only the text before the first call.

GET_BEIJING = '<tool_call>{"name": "get_weather", "arguments": {"city": "Beijing"}}</tool_call>'
SEARCH_RESTAURANTS = (
    '<tool_call>{"name": "search", "arguments": {"query": "restaurants"}}</tool_call>'
)


def test_sglang_text_between_calls() -> None:
    reply = parse_reply("Before " + GET_BEIJING + " between " + SEARCH_RESTAURANTS + " after")
    assert reply.content == "Before  between  after"
    assert reply.tool_calls == [
        call("get_weather", city="Beijing"),
        call("search", query="restaurants"),
    ]


def test_sglang_leading_text() -> None:
    text = 'I will check the weather for you. <tool_call>{"name": "get_weather", "arguments": {"city": "Tokyo"}}</tool_call>'
    reply = parse_reply(text)
    assert reply.content == "I will check the weather for you."
    assert reply.tool_calls == [call("get_weather", city="Tokyo")]


def test_sglang_malformed_keeps_original_text() -> None:
    reply = parse_reply("<tool_call>not valid json</tool_call>")
    assert reply.content == "<tool_call>not valid json</tool_call>"
    assert reply.tool_calls == []
    assert reply.errors == [
        "skipped tool call 1: invalid JSON (Expecting value: line 1 column 1 (char 0))"
    ]


def test_sglang_good_call_then_incomplete_tail() -> None:
    tail = '<tool_call>{"name": "search", "arguments": {"query": "rest'
    reply = parse_reply(GET_BEIJING + " between " + tail)
    assert reply.tool_calls == [call("get_weather", city="Beijing")]
    assert reply.content == "between " + tail  # an open string cannot be closed unambiguously
    assert reply.errors == [
        "skipped tool call 2: invalid JSON (Unterminated string starting at: line 1 column 43 (char 42))"
    ]


def test_sglang_partial_marker_after_call_stays_content() -> None:
    reply = parse_reply(GET_BEIJING + "after <tool_")
    assert reply.content == "after <tool_"
    assert reply.tool_calls == [call("get_weather", city="Beijing")]


def test_sglang_delimiters_inside_arguments() -> None:
    arguments = {"query": "literal </tool_call> and <tool_call>"}
    text = "<tool_call>" + json.dumps({"name": "search", "arguments": arguments}) + "</tool_call>"
    assert parse_reply(text) == Reply(tool_calls=[call("search", **arguments)])


def test_sglang_missing_close_with_delimiter_in_arguments() -> None:
    # SGLang drops this call at stream end; the JSON is complete, so we keep it
    text = '<tool_call>{"name": "search", "arguments": {"query": "literal </tool_call>"}}'
    assert parse_reply(text) == Reply(tool_calls=[call("search", query="literal </tool_call>")])


def test_sglang_calls_without_arguments() -> None:
    assert parse_reply('<tool_call>{"name": "search"}</tool_call>').tool_calls == [call("search")]
    assert parse_reply(
        '<tool_call>{"name": "search", "arguments": null}</tool_call>'
    ).tool_calls == [call("search")]


def test_qwen25_parallel_calls_with_newlines() -> None:
    text = (
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Beijing"}}\n</tool_call>\n'
        '<tool_call>\n{"name": "search", "arguments": {"query": "restaurants"}}\n</tool_call>'
    )
    assert parse_reply(text) == Reply(
        tool_calls=[call("get_weather", city="Beijing"), call("search", query="restaurants")]
    )


def test_qwen25_malformed_block_skipped_later_kept() -> None:
    text = (
        "<tool_call>\n{not valid json}\n</tool_call>\n"
        '<tool_call>\n{"name": "search", "arguments": {"query": "books"}}\n</tool_call>'
    )
    reply = parse_reply(text)
    assert reply.tool_calls == [call("search", query="books")]
    assert reply.content == "<tool_call>\n{not valid json}\n</tool_call>"
    assert reply.errors == [
        "skipped tool call 1: invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"
    ]


# ---- our own behaviours


def test_whitespace_inside_tags() -> None:
    text = '<tool_call>  \n\t {"name" :\n "click",\n "arguments": {\n"x": 10, "y": 20}\n}  \n\n</tool_call>'
    assert parse_reply(text).tool_calls == [call("click", x=10, y=20)]


def test_parameters_alias() -> None:
    text = '<tool_call>{"name": "click", "parameters": {"x": 1, "y": 2}}</tool_call>'
    assert parse_reply(text).tool_calls == [call("click", x=1, y=2)]


def test_arguments_is_json_string() -> None:
    text = '<tool_call>{"name": "type", "arguments": "{\\"text\\": \\"héllo\\"}"}</tool_call>'
    assert parse_reply(text) == Reply(tool_calls=[call("type", text="héllo")])


def test_arguments_empty_string() -> None:
    assert parse_reply('<tool_call>{"name": "wait", "arguments": ""}</tool_call>').tool_calls == [
        call("wait")
    ]


def test_arguments_string_needing_repair() -> None:
    text = """<tool_call>{"name": "click", "arguments": "{'x': 1, 'y': 2,}"}</tool_call>"""
    reply = parse_reply(text)
    assert reply.tool_calls == [call("click", x=1, y=2)]
    assert reply.errors == [
        "repaired tool call 1: single quotes in arguments string",
        "repaired tool call 1: trailing comma in arguments string",
    ]


def test_arguments_not_an_object() -> None:
    reply = parse_reply('<tool_call>{"name": "click", "arguments": [1, 2]}</tool_call>')
    assert reply.tool_calls == []
    assert reply.errors == ["skipped tool call 1: arguments must be an object, got list"]
    assert reply.content == '<tool_call>{"name": "click", "arguments": [1, 2]}</tool_call>'


def test_openai_shaped_call() -> None:
    text = '<tool_call>{"type": "function", "function": {"name": "click", "arguments": {"x": 3, "y": 4}}}</tool_call>'
    assert parse_reply(text).tool_calls == [call("click", x=3, y=4)]


def test_non_ascii_kept() -> None:
    text = 'Écrire ✓ <tool_call>{"name": "type", "arguments": {"text": "日本語 😀 \\u00e9"}}</tool_call>'
    reply = parse_reply(text)
    assert reply.content == "Écrire ✓"
    assert reply.tool_calls == [call("type", text="日本語 😀 é")]


def test_literal_close_tag_inside_string_argument() -> None:
    text = '<tool_call>{"name": "type", "arguments": {"text": "type </tool_call> here"}}</tool_call> done'
    assert parse_reply(text) == Reply(
        content="done", tool_calls=[call("type", text="type </tool_call> here")]
    )


def test_escaped_quote_before_close_tag_in_string() -> None:
    text = (
        r'<tool_call>{"name": "type", "arguments": {"text": "say \"</tool_call>\" \\"}}</tool_call>'
    )
    assert parse_reply(text).tool_calls == [call("type", text='say "</tool_call>" \\')]


def test_raw_newline_inside_string_accepted() -> None:
    text = '<tool_call>{"name": "type", "arguments": {"text": "line one\nline two"}}</tool_call>'
    assert parse_reply(text).tool_calls == [call("type", text="line one\nline two")]


def test_tool_calls_wrapper_and_stray_close_removed() -> None:
    text = (
        "<tool_calls>\n"
        '<tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}</tool_call>\n'
        '<tool_call>{"name": "type", "arguments": {"text": "a"}}</tool_call>\n'
        "</tool_calls> ok </tool_call>"
    )
    assert parse_reply(text) == Reply(
        content="ok", tool_calls=[call("click", x=1, y=2), call("type", text="a")]
    )


def test_unclosed_last_call_with_cut_close_tag() -> None:
    text = 'go <tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}\n</tool_ca'
    assert parse_reply(text) == Reply(content="go", tool_calls=[call("click", x=1, y=2)])


def test_missing_name() -> None:
    reply = parse_reply('<tool_call>{"arguments": {"x": 1}}</tool_call>')
    assert reply.tool_calls == []
    assert reply.errors == ['skipped tool call 1: missing "name"']


def test_name_not_a_string() -> None:
    reply = parse_reply('<tool_call>{"name": 5, "arguments": {}}</tool_call>')
    assert reply.errors == ['skipped tool call 1: "name" must be a non-empty string, got 5']
    assert reply.tool_calls == []


def test_not_an_object() -> None:
    reply = parse_reply("<tool_call>[1, 2]</tool_call>")
    assert reply.errors == ["skipped tool call 1: expected a JSON object, got list"]


def test_numbering_counts_every_block() -> None:
    text = (
        '<tool_call>{"name": "a"}</tool_call>'
        "<tool_call>{oops}</tool_call>"
        '<tool_call>{"name": "c", "arguments": {"k": 1,}}</tool_call>'
    )
    reply = parse_reply(text)
    assert reply.tool_calls == [call("a"), call("c", k=1)]
    assert reply.errors == [
        "skipped tool call 2: invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1))",
        "repaired tool call 3: trailing comma",
    ]
    assert reply.content == "<tool_call>{oops}</tool_call>"


# ---- repairs


@pytest.mark.parametrize(
    ("body", "arguments", "repairs"),
    [
        ('{"name": "f", "arguments": {"a": 1,},}', {"a": 1}, ["trailing comma"]),
        (
            "{'name': 'f', 'arguments': {'a': 'it\\'s \"x\"'}}",
            {"a": 'it\'s "x"'},
            ["single quotes"],
        ),
        (
            '{"name": "f", "arguments": {"a": True, "b": False, "c": None}}',
            {"a": True, "b": False, "c": None},
            ["Python literal"],
        ),
        ('{"name": "f", "arguments": {"a": [1, 2', {"a": [1, 2]}, ["missing closing bracket"]),
        ('{"name": "f", "arguments": {"a": 1}', {"a": 1}, ["missing closing brace"]),
        (
            "{'name': 'f', 'arguments': {'a': True, 'b': [1,2,],",
            {"a": True, "b": [1, 2]},
            ["single quotes", "Python literal", "trailing comma", "missing closing brace"],
        ),
    ],
)
def test_repairs(body: str, arguments: dict[str, object], repairs: list[str]) -> None:
    reply = parse_reply("<tool_call>" + body + "</tool_call>")
    assert reply.tool_calls == [ToolCall(name="f", arguments=arguments)]
    assert reply.errors == [f"repaired tool call 1: {r}" for r in repairs]


def test_repair_never_touches_strings() -> None:
    body = '{"name": "type", "arguments": {"text": "True, None, \'q\',}"},}'
    reply = parse_reply("<tool_call>" + body + "</tool_call>")
    assert reply.tool_calls == [call("type", text="True, None, 'q',}")]
    assert reply.errors == ["repaired tool call 1: trailing comma"]


def test_valid_json_is_not_repaired() -> None:
    assert (
        parse_reply('<tool_call>{"name": "f", "arguments": {"s": "True,}"}}</tool_call>').errors
        == []
    )


def test_ambiguous_quotes_rejected() -> None:
    reply = parse_reply("<tool_call>{'name': 'type', 'arguments': {'text': 'don't'}}</tool_call>")
    assert reply.tool_calls == []
    assert len(reply.errors) == 1 and reply.errors[0].startswith(
        "skipped tool call 1: invalid JSON ("
    )


def test_repair_json_open_string_left_alone() -> None:
    assert repair_json('{"a": "open') == ('{"a": "open', [])


# ---- reasoning


def test_think_block() -> None:
    assert parse_reply("<think>\nI should click.\n</think>\n\nClicking.") == Reply(
        content="Clicking.", reasoning="I should click."
    )


def test_lone_close_think() -> None:
    assert parse_reply("The button is blue.\n</think>\nDone") == Reply(
        content="Done", reasoning="The button is blue."
    )


def test_no_think_means_no_reasoning() -> None:
    assert parse_reply("just text").reasoning is None


def test_empty_think() -> None:
    assert parse_reply("<think></think>ok") == Reply(content="ok", reasoning="")


def test_unclosed_think_is_all_reasoning() -> None:
    assert parse_reply("before <think>still thinking") == Reply(
        content="before", reasoning="still thinking"
    )


def test_in_reasoning_flag() -> None:
    assert parse_reply("thinking, cut off", in_reasoning=True) == Reply(
        content="", reasoning="thinking, cut off"
    )
    assert parse_reply("<think>a</think>b", in_reasoning=True) == Reply(content="b", reasoning="a")


def test_stray_close_think_in_content_dropped() -> None:
    assert parse_reply("<think>a</think>b</think>c") == Reply(content="bc", reasoning="a")


def test_call_inside_reasoning_recovered() -> None:
    text = (
        'I will click it. <tool_call>{"name": "click", "arguments": {"x": 5, "y": 6}}</tool_call>'
        "\n</think>\n"
        '<tool_call>{"name": "type", "arguments": {"text": "hi"}}</tool_call>'
    )
    reply = parse_reply(text)
    assert reply.reasoning == "I will click it."
    assert reply.content == ""
    # content calls first, then the ones recovered from the reasoning
    assert reply.tool_calls == [call("type", text="hi"), call("click", "reasoning", x=5, y=6)]


def test_call_inside_think_block_recovered() -> None:
    text = '<think>plan: <tool_call>{"name": "finish", "arguments": {"answer": "42"}}</tool_call></think>'
    assert parse_reply(text) == Reply(
        content="", reasoning="plan:", tool_calls=[call("finish", "reasoning", answer="42")]
    )


def test_unclosed_call_in_reasoning_ended_by_close_think() -> None:
    text = 'hmm <tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}</think>answer'
    assert parse_reply(text) == Reply(
        content="answer", reasoning="hmm", tool_calls=[call("click", "reasoning", x=1, y=2)]
    )


def test_malformed_call_in_reasoning_stays_in_reasoning() -> None:
    reply = parse_reply("<think>try <tool_call>{bad}</tool_call></think>x")
    assert reply.reasoning == "try <tool_call>{bad}</tool_call>"
    assert reply.content == "x"


# ---- parse_message


def test_message_separated_fields() -> None:
    reply = parse_message("Clicking the gear.", "The gear opens settings.")
    assert reply == Reply(content="Clicking the gear.", reasoning="The gear opens settings.")


def test_message_none_and_empty() -> None:
    assert parse_message(None, None) == Reply()
    assert parse_message("", "") == Reply()
    assert parse_message(None, "r") == Reply(reasoning="r")


def test_message_content_still_has_close_think() -> None:
    content = 'I see a gear.</think>ok <tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}</tool_call>'
    assert parse_message(content, None) == parse_reply(content)
    assert parse_message(content, None) == Reply(
        content="ok", reasoning="I see a gear.", tool_calls=[call("click", x=1, y=2)]
    )


def test_message_calls_from_both_fields() -> None:
    reasoning = (
        'Maybe <tool_call>{"name": "move", "arguments": {"x": 1, "y": 1}}</tool_call> first.'
    )
    content = 'Done.<tool_call>{"name": "click", "arguments": {"x": 9, "y": 9}}</tool_call>'
    reply = parse_message(content, reasoning)
    assert reply.content == "Done."
    assert reply.reasoning == "Maybe  first."
    assert reply.tool_calls == [call("click", x=9, y=9), call("move", "reasoning", x=1, y=1)]


def test_message_reasoning_errors_prefixed() -> None:
    reply = parse_message("fine", "x <tool_call>{'name': 'f', 'arguments': {'a': 1,}}</tool_call>")
    assert reply.tool_calls == [call("f", "reasoning", a=1)]
    assert reply.errors == [
        "reasoning: repaired tool call 1: single quotes",
        "reasoning: repaired tool call 1: trailing comma",
    ]


def test_message_reasoning_with_open_think_tag() -> None:
    # the reasoning field is all reasoning; a leftover <think> in it is dropped
    assert parse_message("a", "<think>b") == Reply(content="a", reasoning="b")


def test_text_after_object_in_unclosed_block() -> None:
    text = 'Opening it. <tool_call>{"name": "click", "arguments": {"x": 1, "y": 2}}\nThen I wait.'
    assert parse_reply(text) == Reply(
        content="Opening it. \nThen I wait.",
        tool_calls=[call("click", x=1, y=2)],
        errors=["repaired tool call 1: text after the JSON object moved out of the block"],
    )


def test_text_after_object_in_closed_block() -> None:
    text = '<tool_call>{"name": "wait"} (just a moment)</tool_call>done'
    assert parse_reply(text) == Reply(
        content=" (just a moment)done".strip(),
        tool_calls=[call("wait")],
        errors=["repaired tool call 1: text after the JSON object moved out of the block"],
    )
