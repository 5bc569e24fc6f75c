"""End to end in real headless Chromium: the loop, the stand-in model answering from the DOM,
the recorder. Nothing is mocked but the model."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.core.geometry import CoordSpace, Point
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply

WEBAPP = "guiagent/demo/webapp/index.html"
# the demo app's password, as a value (not inside a key such as "secret_patterns")
PASSWORD = re.compile(rb"(?<![A-Za-z_])secret(?![A-Za-z_])")

LOGIN_PLAN = [
    OracleStep(kind="click", selector="#username"),
    OracleStep(kind="type", text="alice"),
    OracleStep(kind="click", selector="#password"),
    OracleStep(kind="type", text="secret"),
    OracleStep(kind="click", selector="#sign-in"),
    OracleStep(kind="finish", text="signed in as alice"),
]


async def _run_plan(
    browser,
    url: str,
    plan: list[OracleStep],
    tmp_path: Path,
    *,
    space: CoordSpace = CoordSpace.IMAGE,
    dpr: float = 1.0,
    task: str = "Sign in as alice (the password is on the sticky note)",
    **config_overrides,
) -> tuple[object, dict, FakeModelServer]:
    async with BrowserEnv(start_url=url, browser=browser, device_scale_factor=dpr) as env:
        oracle = DomOracle(env.page, plan, asyncio.get_running_loop(), space=space)
        with FakeModelServer(oracle) as server:
            config = AgentConfig(
                model_url=server.url,
                coord_space=space,
                record_dir=tmp_path / "run",
                settle_timeout_s=1.0,
                **config_overrides,
            )
            agent = Agent(env, config)
            try:
                result = await agent.run(task)
            finally:
                await agent.close()
        state = await env.page.evaluate(
            "() => ({...JSON.parse(JSON.stringify(window.demoState)),"
            " username_field: document.querySelector('#username').value})"
        )
    return result, state, server


@pytest.mark.parametrize("space", list(CoordSpace))
def test_login_end_to_end_in_every_coordinate_space(
    async_runner, playwright_browser, static_server, tmp_path, space
):
    result, state, server = async_runner.run(
        _run_plan(
            playwright_browser, static_server.url_for(WEBAPP), LOGIN_PLAN, tmp_path, space=space
        )
    )
    assert result.status == "finished", result
    assert result.answer == "signed in as alice"
    assert state["user"] == "alice"

    run = load(tmp_path / "run")
    assert run.header.status == "finished"
    assert [s.action["action"] for s in run.steps] == [
        "click",
        "type",
        "click",
        "type",
        "click",
        "finish",
    ]
    for step in run.steps:
        assert (tmp_path / "run" / step.frame).is_file()
        assert step.timings["total"] > 0
    click = run.steps[0]
    trail = click.trail[0]
    assert trail["space"] == space.value
    assert set(trail) == {"space", "model", "sent", "frame", "screen"}
    # the screen point of the first click is inside the username field
    assert click.screen_action["x"] == pytest.approx(trail["screen"][0])
    # every request carried exactly one image, and the password never left the process
    assert all(len(r.image_urls) == 1 for r in server.requests)
    for request in server.requests:
        assert not PASSWORD.search(request.raw)
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert not PASSWORD.search(path.read_bytes()), path


def test_requests_keep_a_stable_prefix_for_the_cache(
    async_runner, playwright_browser, static_server, tmp_path
):
    result, _, server = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), LOGIN_PLAN, tmp_path)
    )
    assert result.ok
    run = load(tmp_path / "run")
    reuse = [s.request["prefix_reuse"] for s in run.steps[1:]]
    assert min(reuse) > 0.5, reuse
    # system prompt, task and tools come first and do not change between steps
    first, last = server.requests[0].body, server.requests[-1].body
    assert first["messages"][:2] == last["messages"][:2]
    assert first["tools"] == last["tools"]
    assert last["messages"][-1]["content"][0]["type"] == "image_url"


def test_device_scale_factor_two_clicks_the_intended_element(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [
        OracleStep(kind="click", selector="#username"),
        OracleStep(kind="type", text="bob"),
        OracleStep(kind="click", selector="#password"),
        OracleStep(kind="type", text="secret"),
        OracleStep(kind="click", selector="#sign-in"),
        OracleStep(kind="finish", text="ok"),
    ]
    result, state, _ = async_runner.run(
        _run_plan(
            playwright_browser,
            static_server.url_for(WEBAPP),
            plan,
            tmp_path,
            space=CoordSpace.NORM1000,
            dpr=2.0,
        )
    )
    assert result.ok and state["user"] == "bob"
    run = load(tmp_path / "run")
    first = run.steps[0]
    # frames are device pixels (2x the 1280x800 viewport), clicks are CSS pixels
    assert first.frame_size == [2560, 1600]
    trail = first.trail[0]
    assert trail["frame"][0] == pytest.approx(trail["screen"][0] * 2, abs=1e-6)
    # the image sent to the model was planned within the default budget (670 tokens)
    assert first.request["image_tokens"] <= 670


def test_invalid_reply_gets_a_corrective_message_and_the_loop_recovers(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [
        OracleStep(
            kind="raw", raw=FakeReply(content="I will click the button now.")
        ),  # no tool call
        OracleStep(
            kind="raw", raw=FakeReply(tool_calls=[("click", {"x": "left"})])
        ),  # bad arguments
        # an unknown tool: SGLang's parser would drop it, so it arrives as raw hermes text
        OracleStep(
            kind="raw", raw=FakeReply(tool_calls=[("teleport", {"x": 1})], flavour="no-tool-parser")
        ),
        OracleStep(kind="click", selector="#username"),
        OracleStep(kind="type", text="carol"),
        OracleStep(kind="finish", text="typed"),
    ]
    result, state, server = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), plan, tmp_path, max_invalid=4)
    )
    assert result.ok, result
    assert result.invalid_replies == 3
    run = load(tmp_path / "run")
    assert [s.outcome for s in run.steps[:3]] == ["invalid", "invalid", "invalid"]
    assert "no tool call" in run.steps[0].invalid
    assert "teleport" in run.steps[2].invalid
    # the corrective message reached the model on the next request
    fourth = json.dumps(server.requests[3].body["messages"])
    assert "could not be executed" in fourth and "unknown tool" in fourth
    assert state["username_field"] == "carol"
    assert run.steps[4].outcome == "ok"


def test_too_many_invalid_replies_stop_the_run(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [OracleStep(kind="raw", raw=FakeReply(content="no idea")) for _ in range(5)]
    result, _, _ = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), plan, tmp_path, max_invalid=3)
    )
    assert result.status == "failed"
    assert "3 invalid model replies in a row" in result.stop_reason
    assert load(tmp_path / "run").header.status == "failed"


def test_step_budget_stops_with_a_reason(async_runner, playwright_browser, static_server, tmp_path):
    plan = [OracleStep(kind="click", selector="#username")] * 10
    result, _, _ = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), plan, tmp_path, max_steps=2)
    )
    assert result.status == "stopped"
    assert "step budget" in result.stop_reason
    assert result.steps == 2


def test_point_outside_the_image_is_invalid_not_clicked(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [
        OracleStep(kind="raw", raw=FakeReply(tool_calls=[("click", {"x": 5000, "y": 10})])),
        OracleStep(kind="finish", text="ok"),
    ]
    result, _, _ = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), plan, tmp_path)
    )
    assert result.ok
    first = load(tmp_path / "run").steps[0]
    assert first.outcome == "invalid" and "outside the image" in first.invalid


def test_unreachable_model_server_is_a_named_error(
    async_runner, playwright_browser, static_server, tmp_path
):
    from guiagent.models.openai_client import ModelServerUnreachable

    async def go() -> None:
        async with BrowserEnv(
            start_url=static_server.url_for(WEBAPP), browser=playwright_browser
        ) as env:
            agent = Agent(
                env, AgentConfig(model_url="http://127.0.0.1:9", record_dir=tmp_path / "run")
            )
            try:
                await agent.run("anything")
            finally:
                await agent.close()

    with pytest.raises(ModelServerUnreachable) as info:
        async_runner.run(go())
    assert "127.0.0.1:9" in str(info.value)


def test_screen_point_maps_back_to_the_element(
    async_runner, playwright_browser, static_server, tmp_path
):
    """The recorded screen point of a click lies inside the element's CSS box."""
    result, _, _ = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), LOGIN_PLAN, tmp_path, dpr=1.5)
    )
    assert result.ok
    run = load(tmp_path / "run")

    async def box() -> dict:
        async with BrowserEnv(
            start_url=static_server.url_for(WEBAPP),
            browser=playwright_browser,
            device_scale_factor=1.5,
        ) as env:
            return await env.page.locator("#sign-in").bounding_box()

    b = async_runner.run(box())
    x, y = run.steps[4].trail[0]["screen"]
    assert b["x"] <= x <= b["x"] + b["width"] and b["y"] <= y <= b["y"] + b["height"]
    assert Point(x, y).distance(Point(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2)) < 1.0


def test_text_typed_into_a_password_field_is_treated_as_a_secret(
    async_runner, playwright_browser, static_server, tmp_path
):
    """No --secret given: the loop sees the focused field is type=password and hides what it types."""
    plan = [
        OracleStep(kind="click", selector="#username"),
        OracleStep(kind="type", text="dave"),
        OracleStep(kind="click", selector="#password"),
        OracleStep(kind="type", text="Hunter2-unique"),
        OracleStep(kind="click", selector="#sign-in"),
        OracleStep(kind="finish", text="ok"),
    ]
    result, _, server = async_runner.run(
        _run_plan(playwright_browser, static_server.url_for(WEBAPP), plan, tmp_path)
    )
    assert result.ok
    for request in server.requests[4:]:
        assert b"Hunter2-unique" not in request.raw
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"Hunter2-unique" not in path.read_bytes(), path
    run = load(tmp_path / "run")
    assert run.steps[3].action == {"action": "type", "text": "[REDACTED]"}
    assert run.steps[3].outcome == "ok"  # typed, not denied: the model wrote this password itself
    assert run.steps[1].action == {"action": "type", "text": "dave"}


@pytest.mark.parametrize("space", list(CoordSpace))
def test_small_target_among_many_at_device_scale_two_with_page_zoom(
    async_runner, playwright_browser, static_server, tmp_path, space
):
    """14-CSS-px buttons in a 30x20 grid under CSS zoom 1.37, device scale factor 2: the click
    computed in each model space lands on the one intended button."""
    plan = [OracleStep(kind="click", selector="#b-7-13"), OracleStep(kind="finish", text="ok")]

    async def go():
        async with BrowserEnv(
            start_url=static_server.url_for("tests/apps/click_grid.html") + "#zoom",
            browser=playwright_browser,
            device_scale_factor=2.0,
        ) as env:
            oracle = DomOracle(env.page, plan, asyncio.get_running_loop(), space=space)
            with FakeModelServer(oracle) as server:
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=server.url,
                        coord_space=space,
                        record_dir=tmp_path / "run",
                        settle=False,
                    ),
                )
                try:
                    result = await agent.run("click the button in row 7, column 13")
                finally:
                    await agent.close()
            return result, await env.page.inner_text("#result")

    result, clicked = async_runner.run(go())
    assert result.ok
    assert clicked == "b-7-13"
    first = load(tmp_path / "run").steps[0]
    assert first.frame_size == [2560, 1600] and first.sent_size[0] < 2560
