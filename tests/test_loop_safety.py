"""Safety and faults through the real loop: policy, dry run, budgets, loop detection,
untrusted text, kill switch, model faults, a browser killed and a page navigating away."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.agent.policy import CallbackApprover, Policy, PolicyRule
from guiagent.core.killswitch import KillSwitch
from guiagent.envs.browser import BrowserEnv
from guiagent.models.openai_client import ModelClient
from guiagent.record import load
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply
from guiagent.testing.vision import centroid_of_colour

INERT = "tests/apps/inert.html"


async def _run(
    browser, url, responder_or_plan, tmp_path, *, env_kwargs=None, agent_kwargs=None, **config
):
    env_kwargs = env_kwargs or {}
    if browser is not None:
        env_kwargs["browser"] = browser
    async with BrowserEnv(start_url=url, **env_kwargs) as env:
        responder = responder_or_plan
        if isinstance(responder_or_plan, list):
            responder = DomOracle(env.page, responder_or_plan, asyncio.get_running_loop())
        with FakeModelServer(responder) as server:
            config.setdefault("settle_timeout_s", 1.0)
            agent = Agent(
                env,
                AgentConfig(model_url=server.url, record_dir=tmp_path / "run", **config),
                **(agent_kwargs or {}),
            )
            try:
                result = await agent.run("Do the thing")
            finally:
                await agent.close()
        log = None
        try:
            log = await env.page.inner_text("#log")
        except Exception:
            log = None
    return result, server, log


def test_ask_rule_denied_by_the_approver_skips_the_click(
    async_runner, playwright_browser, static_server, tmp_path
):
    asked = []

    def deny(action, verdict, frame):
        asked.append((action.name, verdict.rule))
        return False

    plan = [OracleStep(kind="click", selector="#delete"), OracleStep(kind="finish", text="ok")]
    result, server, log = async_runner.run(
        _run(
            playwright_browser,
            static_server.url_for(INERT),
            plan,
            tmp_path,
            agent_kwargs={"approver": CallbackApprover(deny)},
        )
    )
    assert result.ok
    assert asked == [("click", "ask-before-irreversible-clicks")]
    assert log == ""  # not clicked
    step = load(tmp_path / "run").steps[0]
    assert step.outcome == "denied" and step.policy["approved"] is False
    assert "denied by policy" in json.dumps(server.requests[1].body["messages"])


def test_ask_rule_approved_lets_the_click_through(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [OracleStep(kind="click", selector="#delete"), OracleStep(kind="finish", text="ok")]
    result, _, log = async_runner.run(
        _run(
            playwright_browser,
            static_server.url_for(INERT),
            plan,
            tmp_path,
            agent_kwargs={"approver": CallbackApprover(lambda *a: True)},
        )
    )
    assert result.ok and log == "deleted"


def test_deny_typing_outside_allowed_domains(
    async_runner, playwright_browser, static_server, tmp_path
):
    policy = Policy(
        [
            PolicyRule(
                name="only-example",
                decision="deny",
                when={"action": ["type"], "domain_not": ["example.com"]},
            )
        ]
    )
    plan = [
        OracleStep(kind="click", selector="#field"),
        OracleStep(kind="type", text="hello"),
        OracleStep(kind="finish", text="ok"),
    ]

    async def go():
        result, _server, _ = await _run(
            playwright_browser,
            static_server.url_for(INERT),
            plan,
            tmp_path,
            agent_kwargs={"policy": policy},
        )
        return result

    result = async_runner.run(go())
    assert result.ok
    steps = load(tmp_path / "run").steps
    assert steps[1].outcome == "denied" and steps[1].policy["rule"] == "only-example"


def test_dry_run_executes_nothing(async_runner, playwright_browser, static_server, tmp_path):
    plan = [OracleStep(kind="click", selector="#delete"), OracleStep(kind="finish", text="ok")]
    result, _, log = async_runner.run(
        _run(playwright_browser, static_server.url_for(INERT), plan, tmp_path, dry_run=True)
    )
    assert result.ok and log == ""
    assert load(tmp_path / "run").steps[0].outcome == "dry_run"


def test_loop_on_an_inert_page_climbs_the_ladder_and_stops_stuck(
    async_runner, playwright_browser, static_server, tmp_path
):
    def click_the_magenta_button(request):  # finds it in the image it received, zoomed or not
        point = centroid_of_colour(request.image, (255, 0, 255))
        return FakeReply(tool_calls=[("click", {"x": point.x, "y": point.y})])

    result, server, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(INERT), click_the_magenta_button, tmp_path)
    )
    assert result.status == "stopped" and result.stop_reason.startswith("stuck")
    texts = [json.dumps(r.body["messages"][-1]) for r in server.requests]
    assert any("Warning:" in t for t in texts), "the model was told it repeats itself"
    assert any("enlarged part of the screen" in t for t in texts), "a zoomed screenshot was sent"
    run = load(tmp_path / "run")
    assert any("zoom" in s.meta for s in run.steps)
    assert run.header.stop_reason.startswith("stuck")
    # a click decided on the zoomed screenshot still lands on the button's screen point
    zoomed = next(s for s in run.steps if "zoom" in s.meta)
    first = run.steps[0]
    assert zoomed.trail[0]["screen"] == pytest.approx(first.trail[0]["screen"], abs=1.0)


def test_untrusted_screen_text_is_marked_to_the_model(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [OracleStep(kind="finish", text="ok")]
    result, server, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(INERT), plan, tmp_path)
    )
    assert result.ok
    last = json.dumps(server.requests[0].body["messages"][-1])
    assert "looks like instructions" in last and "not instructions from the user" in last


def test_wall_time_and_token_budgets_stop_with_reasons(
    async_runner, playwright_browser, static_server, tmp_path
):
    slow = lambda request: FakeReply(tool_calls=[("wait", {"seconds": 0})], delay_s=0.4)  # noqa: E731
    result, _, _ = async_runner.run(
        _run(
            playwright_browser, static_server.url_for(INERT), slow, tmp_path / "a", max_seconds=0.6
        )
    )
    assert result.status == "stopped" and "wall-time budget" in result.stop_reason

    def costly(request):
        return FakeReply(
            tool_calls=[("wait", {"seconds": 0})],
            usage={"prompt_tokens": 900, "completion_tokens": 200, "total_tokens": 1100},
        )

    result, _, _ = async_runner.run(
        _run(
            playwright_browser,
            static_server.url_for(INERT),
            costly,
            tmp_path / "b",
            max_tokens=2000,
        )
    )
    assert result.status == "stopped" and "token budget" in result.stop_reason
    assert "token budget" in load(tmp_path / "b" / "run").header.stop_reason


def test_kill_switch_stops_between_actions_and_keeps_the_recording(
    async_runner, playwright_browser, static_server, tmp_path
):
    switch = KillSwitch()
    turns = {"n": 0}

    def responder(request):
        turns["n"] += 1
        if turns["n"] == 3:
            switch.trigger("hotkey pressed")
        return FakeReply(tool_calls=[("wait", {"seconds": 0})])

    result, _, _ = async_runner.run(
        _run(
            playwright_browser,
            static_server.url_for(INERT),
            responder,
            tmp_path,
            agent_kwargs={"killswitch": switch},
        )
    )
    assert result.status == "stopped" and "hotkey pressed" in result.stop_reason
    run = load(tmp_path / "run")
    assert run.load_errors == [] and len(run.steps) == 2 and run.header.status == "stopped"


@pytest.mark.parametrize(
    ("reply", "config", "expected"),
    [
        (FakeReply(status=500, error="boom"), {}, "modelhttperror"),
        (FakeReply(fault="hang"), {"request_timeout_s": 1.0}, "modeltimeout"),
        (
            FakeReply(
                fault="drop_mid_stream", tool_calls=[("wait", {"seconds": 0})], reasoning="x" * 200
            ),
            {"stream": True},
            "modelprotocolerror",
        ),
        (FakeReply(fault="garbage"), {}, "modelprotocolerror"),
    ],
    ids=["5xx", "timeout", "dropped-stream", "garbage-body"],
)
def test_model_faults_end_with_a_named_error_and_an_intact_recording(
    async_runner, playwright_browser, static_server, tmp_path, reply, config, expected
):
    turns = {"n": 0}

    def responder(request):
        turns["n"] += 1
        return FakeReply(tool_calls=[("wait", {"seconds": 0})]) if turns["n"] == 1 else reply

    async def go():
        async with BrowserEnv(
            start_url=static_server.url_for(INERT), browser=playwright_browser
        ) as env:
            with FakeModelServer(responder) as server:
                client = ModelClient(
                    server.url,
                    timeout_s=config.pop("request_timeout_s", 30.0),
                    retries=1,
                    backoff_s=0.05,
                )
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=server.url,
                        record_dir=tmp_path / "run",
                        settle_timeout_s=1.0,
                        **config,
                    ),
                    client=client,
                )
                try:
                    return await agent.run("Do the thing")
                finally:
                    await client.aclose()

    result = async_runner.run(go(), timeout=120)
    assert result.status == "error"
    assert expected in result.stop_reason.lower()
    run = load(tmp_path / "run")
    assert run.load_errors == [] and len(run.steps) == 1 and run.header.status == "failed"


def test_garbage_model_text_is_corrected_not_fatal(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [
        OracleStep(
            kind="raw",
            raw=FakeReply(
                content='<tool_call>{"name": "click", "arguments": {"x": </tool_call> ###'
            ),
        ),
        OracleStep(kind="finish", text="ok"),
    ]
    result, _, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(INERT), plan, tmp_path)
    )
    assert result.ok and result.invalid_replies == 1


def test_page_navigating_away_is_survived(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [OracleStep(kind="click", selector="#away"), OracleStep(kind="finish", text="ok")]
    result, _, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(INERT), plan, tmp_path)
    )
    assert result.ok
    steps = load(tmp_path / "run").steps
    assert steps[0].meta["url"].endswith("inert.html") and steps[1].meta["url"] == "about:blank"


def _kill_processes_with(marker: str) -> None:
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker.encode() in (proc / "cmdline").read_bytes():
                os.kill(int(proc.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def test_browser_killed_mid_run_is_a_named_error(async_runner, static_server, tmp_path):
    marker = f"--guiagent-test-{uuid.uuid4().hex}"
    turns = {"n": 0}

    def responder(request):
        turns["n"] += 1
        if turns["n"] == 2:
            _kill_processes_with(marker)
        return FakeReply(tool_calls=[("click", {"x": 10, "y": 10})])

    result, _, _ = async_runner.run(
        _run(
            None,
            static_server.url_for(INERT),
            responder,
            tmp_path,
            env_kwargs={"extra_args": [marker]},
        ),
        timeout=120,
    )
    assert result.status == "error"
    assert "environment error" in result.stop_reason
    run = load(tmp_path / "run")
    assert run.load_errors == [] and len(run.steps) >= 1 and run.header.status == "failed"


AGENT_SCRIPT = Path(__file__).parent / "apps" / "agent_subprocess.py"


def test_sigkill_mid_run_keeps_every_completed_step(tmp_path):
    """A real process kill: every step written before SIGKILL loads back intact."""
    import sys
    import time

    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(AGENT_SCRIPT), str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    steps_file = run_dir / "steps.jsonl"
    deadline = time.time() + 90
    while time.time() < deadline:
        if steps_file.exists() and steps_file.read_text().count("\n") >= 3:
            break
        if proc.poll() is not None:
            pytest.fail(f"the agent process ended early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    run = load(run_dir)
    assert len(run.steps) >= 3
    assert [s.index for s in run.steps] == list(range(1, len(run.steps) + 1))
    assert all((run_dir / s.frame).is_file() for s in run.steps)
    assert run.header.status == "interrupted"  # its process is gone (#18)


def test_a_key_the_surface_does_not_have_is_corrected_not_a_crash(
    async_runner, playwright_browser, static_server, tmp_path
):
    plan = [OracleStep(kind="key", keys=["hyperspace"]), OracleStep(kind="finish", text="ok")]
    result, server, _ = async_runner.run(
        _run(playwright_browser, static_server.url_for(INERT), plan, tmp_path)
    )
    assert result.ok and result.invalid_replies == 1
    step = load(tmp_path / "run").steps[0]
    assert step.outcome == "invalid" and "unknown key name" in step.invalid
    assert "unknown key name" in json.dumps(server.requests[1].body["messages"])


def test_a_skill_with_an_unknown_secret_reports_back_to_the_model(
    async_runner, playwright_browser, static_server, tmp_path
):
    from guiagent.skills import SecretStore, load_registry

    plan = [
        OracleStep(
            kind="raw",
            raw=FakeReply(tool_calls=[("login", {"username": "a", "password": "no_such_secret"})]),
        ),
        OracleStep(kind="finish", text="ok"),
    ]
    result, server, _ = async_runner.run(
        _run(
            playwright_browser,
            static_server.url_for(INERT),
            plan,
            tmp_path,
            agent_kwargs={"skills": load_registry(), "secrets": SecretStore(environ={})},
        )
    )
    assert result.ok
    step = load(tmp_path / "run").steps[0]
    assert step.outcome == "error" and "no_such_secret" in step.error
    assert "GUIAGENT_SECRET_NO_SUCH_SECRET" in json.dumps(server.requests[1].body["messages"])


def test_credentials_on_screen_are_masked_by_the_built_in_patterns(
    async_runner, playwright_browser, tmp_path
):
    key = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ123456"
    page = f"data:text/html,<p style='font:20px monospace'>your key: {key}</p>"
    plan = [OracleStep(kind="finish", text="ok")]
    result, server, _ = async_runner.run(_run(playwright_browser, page, plan, tmp_path))
    assert result.ok
    run = load(tmp_path / "run")
    assert run.steps[0].redactions, "the key's text box was blacked out"
    for request in server.requests:
        assert key.encode() not in request.raw
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


def test_pacore_conclusions_are_recorded_redacted(
    async_runner, playwright_browser, static_server, tmp_path
):
    import threading

    lock, seen = threading.Lock(), {"n": 0}

    def responder(request):
        with lock:
            seen["n"] += 1
        if "Reference responses" in request.last_user_text:
            return FakeReply(tool_calls=[("finish", {"answer": "ok"})])
        return FakeReply(content="I will type it", tool_calls=[("type", {"text": "TopSecret-42"})])

    result, _, _ = async_runner.run(
        _run(
            playwright_browser,
            static_server.url_for(INERT),
            responder,
            tmp_path,
            pacore=2,
            secrets=["TopSecret-42"],
        )
    )
    assert result.ok
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"TopSecret-42" not in path.read_bytes(), path
