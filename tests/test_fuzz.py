"""Fuzz: model replies, scenario files and recordings never raise anything but our named errors.

Together these run 10,500 generated cases (3,500 each)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guiagent.core.actions import ActionSpace, InvalidToolCall
from guiagent.models.hermes import parse_message
from guiagent.models.openai_client import reply_from_message
from guiagent.record import RecordingError, load
from guiagent.scenario.schema import STEP_KINDS, ScenarioError, parse_yaml, scenario_from_data

EXAMPLES = 3500  # x3 tests: 10,500 cases
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
fragments = st.sampled_from(
    [
        "<think>",
        "</think>",
        "<tool_call>",
        "</tool_call>",
        "<tool_calls>",
        '{"name": "click", "arguments": ',
        '{"x": 1, "y": 2}',
        "}",
        "{",
        '"',
        "'",
        ",",
        "True",
        "None",
        "\n",
        "ü",
        "<point>3 4</point>",
    ]
)
reply_text = st.lists(fragments | st.text(max_size=6), max_size=25).map("".join)
tool_names = st.sampled_from(
    [
        "click",
        "double_click",
        "drag",
        "scroll",
        "type",
        "key",
        "wait",
        "finish",
        "fail",
        "teleport",
        "",
    ]
) | st.text(max_size=6)


@FUZZ
@given(
    content=st.none() | reply_text,
    reasoning=st.none() | reply_text,
    name=tool_names,
    arguments=json_values,
)
def test_model_replies_never_crash(content, reasoning, name, arguments):
    space = ActionSpace()
    reply = parse_message(content, reasoning)
    for call in reply.tool_calls:
        try:
            space.validate(call.name, call.arguments)
        except InvalidToolCall:
            pass
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    if isinstance(arguments, dict):
        message["tool_calls"] = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        ]
    reply = reply_from_message(message, "tool_calls")
    for call in reply.tool_calls:
        try:
            space.validate(call.name, call.arguments)
        except InvalidToolCall:
            pass


step_values = st.sampled_from(
    [
        "Sign in",
        {"text": "Add"},
        {"at": [1, 2]},
        {"image": "x.png"},
        ["a"],
        3,
        None,
        {"text": "x", "into": "y"},
        {"direction": "down"},
        "ctrl+s",
    ]
)
step_keys = st.sampled_from([*STEP_KINDS, "bogus"])
scenario_data = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=10) | st.integers(),
        "target": st.sampled_from(
            [{"url": "page.html"}, {"command": "xcalc"}, {}, "x", {"url": 3}]
        ),
        "steps": st.lists(
            st.dictionaries(step_keys, step_values, min_size=0, max_size=2), max_size=5
        )
        | json_values,
        "variables": st.dictionaries(
            st.text(max_size=5), st.text(max_size=5) | st.integers(), max_size=3
        ),
        "settle": json_values,
    },
)


@FUZZ
@given(data=scenario_data | json_values, text=st.text(max_size=80))
def test_scenario_files_give_scenario_errors_only(data, text):
    try:
        scenario_from_data(data, "fuzz.yaml")
    except ScenarioError as exc:
        assert str(exc)
    try:
        parsed, lines = parse_yaml(text, "fuzz.yaml")
        scenario_from_data(parsed, "fuzz.yaml", lines)
    except ScenarioError as exc:
        assert "fuzz.yaml" in str(exc)
    # and what yaml.safe_dump writes from the structure parses the same way
    try:
        parsed, lines = parse_yaml(yaml.safe_dump(data), "fuzz.yaml")
        scenario_from_data(parsed, "fuzz.yaml", lines)
    except ScenarioError:
        pass


good_step = {
    "index": 1,
    "started_at": 1.0,
    "frame": None,
    "action": {"action": "wait", "seconds": 0},
    "outcome": "ok",
}
lines = st.one_of(
    st.just(json.dumps(good_step)),
    st.builds(
        lambda d: json.dumps({**good_step, **d}),
        st.dictionaries(
            st.sampled_from(["index", "trail", "timings", "action", "frame"]),
            json_values,
            max_size=2,
        ),
    ),
    st.text(max_size=40),
    st.binary(max_size=30).map(lambda b: b.decode("latin-1")),
)


@FUZZ
@given(
    header=st.none() | json_values.map(json.dumps) | st.text(max_size=50),
    steps=st.lists(lines, max_size=6),
    cut=st.integers(0, 400),
)
def test_recordings_load_or_give_recording_errors(header, steps, cut):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        if header is not None:
            (run_dir / "run.json").write_text(header)
        body = "\n".join(steps)
        (run_dir / "steps.jsonl").write_text(body[: cut or None])
        try:
            run = load(run_dir)
        except RecordingError as exc:
            assert str(exc)
            return
        assert all(step.index >= 0 for step in run.steps) or run.load_errors
