"""The real sglang-router (the ``scale`` extra) in front of stand-in workers, with browser agents.

Nothing is modelled here: the router is the Rust load balancer from the ``sglang-router`` wheel,
started as ``guiagent serve --router`` starts it; the workers are ``FakeModelServer``s
answering what the router asks of an SGLang worker; the agents drive real headless Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from loguru import logger

pytest.importorskip(
    "sglang_router",
    reason="sglang-router is not installed (the scale extra: pip install -e '.[dev,scale]')",
)

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.envs.browser import BrowserEnv
from guiagent.models.openai_client import (
    ModelClient,
    ModelHTTPError,
    ModelServerNotReady,
)
from guiagent.serve import free_port, start_router
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest
from guiagent.testing.processes import child_pids, is_alive
from guiagent.testing.router import LocalRouter

WEBAPP = "guiagent/demo/webapp/index.html"
AGENTS = 8
LOGIN_PLAN = [
    OracleStep(kind="click", selector="#username"),
    OracleStep(kind="type", text="alice"),
    OracleStep(kind="click", selector="#password"),
    OracleStep(kind="type", text="secret"),
    OracleStep(kind="click", selector="#sign-in"),
    OracleStep(kind="finish", text="signed in as alice"),
]
CLICKS = 20
COUNTER_PAGE = (
    "data:text/html,<body style='margin:0'><button id=b style='width:100vw;height:100vh;"
    "font:120px sans-serif' onclick='this.textContent=++n'>0</button><script>var n=0</script>"
)
COUNTER_PLAN = [OracleStep(kind="click", selector="#b")] * CLICKS + [
    OracleStep(kind="finish", text="counted")
]
AGENT_OF_TASK = re.compile(r"\(agent (\d+)\)")


class Dispatcher:
    """The workers' responder: each agent's request goes to that agent's DOM oracle."""

    def __init__(self) -> None:
        self.oracles: dict[int, DomOracle] = {}

    async def __call__(self, request: FakeRequest) -> FakeReply:
        found = AGENT_OF_TASK.search(request.messages[1]["content"])
        if found is None or int(found.group(1)) not in self.oracles:
            return FakeReply(status=400, error="request from no known agent")
        return await self.oracles[int(found.group(1))](request)


def agent_of(request: FakeRequest) -> int:
    found = AGENT_OF_TASK.search(request.messages[1]["content"])
    assert found, request.messages[1]
    return int(found.group(1))


def routes(workers: list[FakeModelServer]) -> dict[int, list[int]]:
    """Agent -> the worker (index) each of its requests reached, in the order received."""
    seen: dict[int, list[tuple[float, int]]] = {}
    for index, worker in enumerate(workers):
        for request in worker.requests:
            seen.setdefault(agent_of(request), []).append((request.received_at, index))
    return {agent: [w for _, w in sorted(hops)] for agent, hops in seen.items()}


async def run_agents(
    browser: Any,
    url: str,
    start_url: str,
    plan: list[OracleStep],
    dispatcher: Dispatcher,
    failures: dict[int, int],
    viewport: tuple[int, int] = (1280, 800),
) -> list[Any]:
    """AGENTS browser agents at once (one context each) through ``url``; each one's failed
    model requests (retried by the client) are counted in ``failures``."""

    async def one(index: int) -> tuple[Any, str]:
        with logger.contextualize(router_test_agent=index):
            async with BrowserEnv(start_url=start_url, browser=browser, viewport=viewport) as env:
                dispatcher.oracles[index] = DomOracle(
                    env.page, plan, asyncio.get_running_loop(), from_history=True
                )
                config = AgentConfig(model_url=url, settle=False, max_steps=len(plan) + 4)
                agent = Agent(env, config)
                try:
                    result = await agent.run(f"Do the plan (agent {index})")
                finally:
                    await agent.close()
                text = await env.page.evaluate(
                    "() => document.querySelector('#b') ? document.querySelector('#b').textContent"
                    " : (window.demoState && window.demoState.user) || ''"
                )
                return result, text

    def count(message: Any) -> None:
        index = message.record["extra"].get("router_test_agent")
        if index is not None and "model request failed" in message.record["message"]:
            failures[index] = failures.get(index, 0) + 1

    sink = logger.add(count, level="WARNING")
    try:
        return await asyncio.gather(*(one(i) for i in range(AGENTS)))
    finally:
        logger.remove(sink)


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.05)


# --- what the router asks of a worker ---------------------------------------------------------


def test_the_router_registers_a_stand_in_worker_by_its_served_name() -> None:
    with (
        FakeModelServer(lambda r: FakeReply(content="from the worker"), served_model="step3") as w,
        LocalRouter([w.url]) as router,
    ):
        # the endpoints the router called on the worker, answered as SGLang does
        info = httpx.get(f"{w.url}/server_info", timeout=5).json()
        assert info["served_model_name"] == "step3" and info["dp_size"] == 1
        assert httpx.get(f"{w.url}/get_server_info", timeout=5).json() == info
        assert httpx.get(f"{w.url}/model_info", timeout=5).json()["is_generation"] is True
        load = httpx.get(f"{w.url}/get_load", timeout=5).json()
        assert load == [{"dp_rank": 0, "num_reqs": 0, "num_waiting_reqs": 0, "num_tokens": 0}]
        assert w.health_checks >= 1
        # the router took the worker's model name from /server_info
        workers = httpx.get(f"{router.url}/workers", timeout=5).json()["workers"]
        assert [(x["url"], x["model_id"], x["is_healthy"]) for x in workers] == [
            (w.url, "step3", True)
        ]
        models = httpx.get(f"{router.url}/v1/models", timeout=5).json()
        assert [m["id"] for m in models["data"]] == ["step3"]
        body = {"model": "step3", "messages": [{"role": "user", "content": "hi"}]}
        answer = httpx.post(f"{router.url}/v1/chat/completions", json=body, timeout=10).json()
        assert answer["choices"][0]["message"]["content"] == "from the worker"
        assert w.request_count == 1


def test_a_router_without_healthy_workers_is_not_ready_for_the_client() -> None:
    """Moved from the modelled ``frontend="router"``: the real router's liveness ``/health`` is
    200 at once, while ``/v1/models`` and chat answer 503 until a worker is healthy."""
    with FakeModelServer(
        lambda r: FakeReply(content="ok"), warmup_s=600, served_model="step3"
    ) as w:
        router = LocalRouter([w.url])
        router.process = start_router(router.options)
        try:
            wait_for(lambda: _answers(f"{router.url}/health"), 60, "the router to listen")
            assert httpx.get(f"{router.url}/health", timeout=5).status_code == 200  # liveness
            assert httpx.get(f"{router.url}/readiness", timeout=5).status_code == 503
            models = httpx.get(f"{router.url}/v1/models", timeout=5)
            assert models.status_code == 503

            async def before() -> None:
                async with ModelClient(router.url, backoff_s=0.01, retries=1) as client:
                    with pytest.raises(ModelServerNotReady):
                        await client.health()
                    client.model = "step3"
                    with pytest.raises(ModelHTTPError) as info:
                        await client.complete([{"role": "user", "content": "hi"}])
                    assert info.value.status == 503
                    assert "No available workers" in info.value.server_message

            asyncio.run(before())
            w.end_warmup()

            async def wait() -> Any:
                async with ModelClient(router.url) as client:
                    return await client.wait_ready(timeout_s=60, poll_s=0.1), client.model

            ready, model = asyncio.run(wait())
            # the router lists the name it learnt from the worker; it does not pass on
            # max_model_len (the client then learns the limit from a 400, see test_client)
            assert model == "step3" and ready.health_endpoint and ready.max_model_len is None
        finally:
            router.stop()


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
    except httpx.HTTPError:
        return False
    return True


# --- eight browser agents, two workers ---------------------------------------------------------


def test_eight_agents_share_two_workers_and_each_stays_on_one(
    async_runner, playwright_browser, static_server, tmp_path
) -> None:
    dispatcher = Dispatcher()
    failures: dict[int, int] = {}
    # a GPU each: 250 ms a request, one at a time (the agents mostly wait for the model)
    with (
        FakeModelServer(dispatcher, latency_s=0.25, max_running=1) as a,
        FakeModelServer(dispatcher, latency_s=0.25, max_running=1) as b,
        LocalRouter([a.url, b.url]) as router,
    ):
        outcomes = async_runner.run(
            run_agents(
                playwright_browser,
                router.url,
                static_server.url_for(WEBAPP),
                LOGIN_PLAN,
                dispatcher,
                failures,
            ),
            timeout=240,
        )
    assert [r.status for r, _ in outcomes] == ["finished"] * AGENTS
    assert [user for _, user in outcomes] == ["alice"] * AGENTS  # the DOM says so
    assert failures == {}
    by_agent = routes([a, b])
    assert sorted(by_agent) == list(range(AGENTS))
    assert all(len(hops) == len(LOGIN_PLAN) for hops in by_agent.values()), by_agent
    agents_on = [{hops[-1] for hops in by_agent.values()}.__contains__(w) for w in (0, 1)]
    assert all(agents_on), f"every agent ended on one worker: {by_agent}"
    stayed = sum(1 for hops in by_agent.values() if len(set(hops)) == 1)
    kept = sum(x == y for hops in by_agent.values() for x, y in itertools.pairwise(hops))
    moves = sum(len(hops) - 1 for hops in by_agent.values())
    logger.info(
        "cache-aware routing: {}/{} agents stayed on one worker; {}/{} requests went to the "
        "worker of the agent's previous request; routes {}",
        stayed,
        AGENTS,
        kept,
        moves,
        by_agent,
    )
    print(f"\nrouter stickiness: {stayed}/{AGENTS} agents on one worker, {kept}/{moves} requests")
    # a few agents may move once when the in-flight counts drift apart; most never do
    assert kept / moves >= 0.75, by_agent


def test_a_killed_worker_is_taken_out_and_used_again_when_it_comes_back(
    async_runner, playwright_browser, tmp_path
) -> None:
    dispatcher = Dispatcher()
    failures: dict[int, int] = {}
    a = FakeModelServer(dispatcher, latency_s=0.1, max_running=1).start()
    b = FakeModelServer(dispatcher, latency_s=0.1, max_running=1).start()
    try:
        with LocalRouter([a.url, b.url]) as router:
            future = asyncio.run_coroutine_threadsafe(
                run_agents(
                    playwright_browser,
                    router.url,
                    COUNTER_PAGE,
                    COUNTER_PLAN,
                    dispatcher,
                    failures,
                    viewport=(480, 320),
                ),
                async_runner.loop,
            )
            wait_for(lambda: a.request_count >= 12 and b.request_count >= 12, 120, "traffic")
            killed_at = time.time()
            a.kill()  # connections reset mid-request, the port refuses new ones
            wait_for(lambda: router.workers().get(a.url) is False, 30, "the router to drop a")
            after_kill = b.request_count
            wait_for(lambda: b.request_count >= after_kill + 16, 60, "b to carry the agents")
            a.start()  # back on the same port
            wait_for(lambda: router.workers().get(a.url) is True, 30, "the router to take a back")
            restarted_at = a.request_count
            outcomes = future.result(timeout=240)
    finally:
        a.stop()
        b.stop()
    assert [r.status for r, _ in outcomes] == ["finished"] * AGENTS, outcomes
    # every click landed exactly once: a retried request got the same answer, not a new one
    assert [text for _, text in outcomes] == [str(CLICKS)] * AGENTS
    by_agent = routes([a, b])
    on_a = {agent_of(r) for r in a.requests if r.received_at < killed_at}
    assert on_a, "no agent was on the killed worker"
    # the router failed over on its own; an agent sees at most one failed request
    assert all(n <= 1 for n in failures.values()), failures
    assert a.request_count > restarted_at, "the restarted worker got no request"
    logger.info(
        "agents on the killed worker: {}; failures seen: {}; routes {}", on_a, failures, by_agent
    )
    print(f"\nkilled worker had agents {sorted(on_a)}; failed requests seen by agents: {failures}")


# --- guiagent serve --router ------------------------------------------------------------------


def _as_in_a_terminal() -> None:
    """Ctrl-C works as in a terminal: a test runner started in the background (a CI job,
    ``cmd &`` in a script) passes SIGINT on as ignored, and Python then never raises
    KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_guiagent_serve_router_starts_the_router_in_front_of_the_workers(
    stop_signal: signal.Signals,
) -> None:
    """Ctrl-C (SIGINT) or a service manager's SIGTERM stops guiagent and the router it
    started in its own process group: no router is left running."""
    with (
        FakeModelServer(lambda r: FakeReply(content="A")) as a,
        FakeModelServer(lambda r: FakeReply(content="B")) as b,
    ):
        port = free_port()
        command = [
            sys.executable, "-m", "guiagent.cli", "serve", "--router",
            "--worker-url", a.url, "--worker-url", b.url, "--port", str(port),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "COLUMNS": "200"},
            start_new_session=True,
            preexec_fn=_as_in_a_terminal,
        )
        try:
            assert process.stdout is not None
            lines: list[str] = []
            for raw in process.stdout:
                lines.append(raw.decode(errors="replace"))
                if "ready" in lines[-1] and "--model-url" in lines[-1]:
                    break
            assert f"--model-url http://127.0.0.1:{port}" in lines[-1], lines
            assert "2 of 2 workers healthy" in lines[-1]
            body = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
            reply = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10
            )
            assert reply.json()["choices"][0]["message"]["content"] in ("A", "B")
            routers = child_pids(process.pid)  # the router renames itself: found by parent
            assert routers, "guiagent started no router process"
        finally:
            os.killpg(process.pid, stop_signal)
            try:  # the router gets SIGTERM, then SIGKILL 5 s later: well within a minute
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                for pid in [process.pid, *child_pids(process.pid)]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                pytest.fail(f"guiagent serve --router did not stop on {stop_signal.name}")
        assert code == 0
        assert not [pid for pid in routers if is_alive(pid)], "the router was left running"
