"""Fuzz: model replies, scenario files and recordings never raise anything but our named errors.

Together these run 10,500 generated cases (3,500 each)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
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


# --- whole runs against a model server answering fuzzed replies (#18) -----------------------

RUN_STATUSES = {"finished", "failed", "stopped", "error"}  # RunResult.status, documented
RECORDED_STATUSES = {"finished", "failed", "stopped"}  # what such a run leaves in run.json

_CALL = {"id": "call_1", "type": "function", "function": {"name": "click", "arguments": "{}"}}
REPLY_TEMPLATE = {
    "id": "0123456789abcdef",
    "model": "broken",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "", "tool_calls": [_CALL]},
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
CHUNK_TEMPLATE = {
    "id": "0123456789abcdef",
    "choices": [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": "", "tool_calls": [{**_CALL, "index": 0}]},
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
}
_MESSAGE_PATHS = [
    (),
    ("content",),
    ("reasoning_content",),
    ("tool_calls",),
    ("tool_calls", 0),
    ("tool_calls", 0, "function"),
    ("tool_calls", 0, "function", "name"),
    ("tool_calls", 0, "function", "arguments"),
    ("tool_calls", 0, "id"),
]
_TOP_PATHS = [
    ("choices",),
    ("choices", 0),
    ("choices", 0, "finish_reason"),
    ("usage",),
    ("usage", "prompt_tokens"),
    ("usage", "total_tokens"),
    ("id",),
    ("model",),
]


def _mutate(template: dict, body_key: str, changes: list) -> dict:
    body = json.loads(json.dumps(template))
    for (where, path), value in changes:
        full = path if where == "top" else ("choices", 0, body_key, *path)
        node = body
        try:
            for key in full[:-1]:
                node = node[key]
            node[full[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the container: nothing to replace
    return body


paths = st.sampled_from([("top", p) for p in _TOP_PATHS] + [("msg", p) for p in _MESSAGE_PATHS])


class _StillImage:
    """A still screen: the fuzz is about replies, not the environment (runs are dry)."""

    surface = "image"

    def __init__(self) -> None:
        from PIL import Image

        from guiagent.core.env import Frame

        self.frame = Frame.from_image(Image.new("RGB", (640, 400), (200, 210, 220)))

    async def observe(self):
        return self.frame

    async def act(self, action):  # pragma: no cover - dry runs never act
        raise AssertionError("a dry run acted")

    async def close(self) -> None:
        return None


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(changes=st.lists(st.tuples(paths, json_values), max_size=3), stream=st.booleans())
def test_runs_against_fuzzed_replies_end_with_a_status_a_reason_and_a_recording(
    changes, stream, fuzz_server
):
    import asyncio

    from guiagent.agent.config import AgentConfig
    from guiagent.agent.loop import Agent
    from guiagent.testing.misbehaving import json_reply, sse_reply

    if stream:
        fuzz_server.behaviour = sse_reply([_mutate(CHUNK_TEMPLATE, "delta", changes)])
    else:
        fuzz_server.behaviour = json_reply(_mutate(REPLY_TEMPLATE, "message", changes))
    with tempfile.TemporaryDirectory() as tmp:
        config = AgentConfig(
            model_url=fuzz_server.url,
            record_dir=Path(tmp) / "run",
            max_steps=2,
            settle=False,
            dry_run=True,
            stream=stream,
            request_timeout_s=10,
        )

        async def go():
            agent = Agent(_StillImage(), config)
            try:
                return await agent.run("fuzz")
            finally:
                await agent.close()

        result = asyncio.run(go())
        assert result.status in RUN_STATUSES
        assert result.status == "finished" or result.stop_reason
        run = load(Path(tmp) / "run", strict=True)
        assert run.header.status in RECORDED_STATUSES
        assert run.header.status == "finished" or run.header.stop_reason


@pytest.fixture(scope="module")
def fuzz_server():
    from guiagent.testing.misbehaving import MisbehavingServer, json_reply

    with MisbehavingServer(json_reply(REPLY_TEMPLATE)) as server:
        yield server
