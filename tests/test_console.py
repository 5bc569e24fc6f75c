"""The live web console, driven in real headless Chromium through Playwright.

The console serves on the session's test loop (so the runs it starts share the session's
Chromium), the model is the fake SGLang server answering from the demo page's DOM, and a
second Chromium context plays the user looking at the console.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont
from playwright.async_api import expect

from guiagent.console.app import ConsoleServer, is_loopback
from guiagent.console.runs import ConsoleError, RunManager, RunSpec
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest

WEBAPP = "guiagent/demo/webapp/index.html"

PLAN = [
    OracleStep(kind="click", selector="#username"),
    OracleStep(kind="type", text="alice"),
    OracleStep(kind="click", selector="#password"),
    OracleStep(kind="type", text="secret"),
    OracleStep(kind="click", selector="#sign-in"),
    OracleStep(kind="click", selector="#new-item"),
    OracleStep(kind="type", text="milk"),
    OracleStep(kind="click", selector="#add-item"),
    OracleStep(kind="click", selector="#new-item"),
    OracleStep(kind="type", text="eggs"),
    OracleStep(kind="click", selector="#add-item"),
    OracleStep(kind="click", selector="#delete-1"),  # asked: approved on the page
    OracleStep(kind="click", selector="#delete-2"),  # asked: denied on the page
    OracleStep(kind="finish", text="deleted milk"),
]


class Switchboard:
    """The fake model: questions (no tools) get an answer naming the image; runs go to the oracle."""

    def __init__(self) -> None:
        self.oracle: DomOracle | None = None
        self.delay_s = 0.0
        self.questions: list[tuple[str, tuple[int, int] | None]] = []
        self._lock = threading.Lock()

    async def __call__(self, request: FakeRequest) -> FakeReply:
        if not request.tools:
            size = request.image_size
            dims = (size.width, size.height) if size else None
            with self._lock:
                self.questions.append((request.last_user_text, dims))
            return FakeReply(
                reasoning="Looking at the picture.",
                content=f"You asked '{request.last_user_text}' about a {dims[0]}x{dims[1]} image.",
            )
        if self.oracle is None:
            raise RuntimeError("no page for the stand-in model")
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return await self.oracle(request)


class StateKeepingEnv(BrowserEnv):
    """A BrowserEnv that remembers the demo app's state when the console closes it."""

    final_state: dict[str, Any] | None = None

    async def close(self) -> None:
        if self._page is not None and not self._page.is_closed():
            self.final_state = await self._page.evaluate(
                "() => JSON.parse(JSON.stringify(window.demoState))"
            )
        await super().close()


class ConsoleHarness:
    def __init__(self, manager: RunManager, server: ConsoleServer, fake: FakeModelServer) -> None:
        self.manager = manager
        self.server = server
        self.fake = fake
        self.envs: list[StateKeepingEnv] = []


@pytest.fixture(scope="module")
def switchboard() -> Switchboard:
    return Switchboard()


@pytest.fixture(scope="module")
def harness(async_runner, playwright_browser, tmp_path_factory, switchboard):
    fake = FakeModelServer(switchboard).start()
    envs: list[StateKeepingEnv] = []

    async def env_factory(spec: RunSpec) -> StateKeepingEnv:
        env = StateKeepingEnv(start_url=spec.start_url, browser=playwright_browser)
        await env.start()
        envs.append(env)
        switchboard.oracle = DomOracle(env.page, PLAN, asyncio.get_running_loop())
        return env

    manager = RunManager(
        tmp_path_factory.mktemp("console") / "recordings",
        env_factory=env_factory,
        agent_options={"settle": False},
    )
    server = ConsoleServer(manager, "127.0.0.1", 0)

    async def start() -> asyncio.Future[None]:
        serving = asyncio.ensure_future(server.serve())
        await server.wait_started()
        return serving

    serving = async_runner.run(start())
    h = ConsoleHarness(manager, server, fake)
    h.envs = envs
    yield h

    async def stop() -> None:
        server.shutdown()
        await asyncio.wait_for(serving, 20)

    async_runner.run(stop())
    fake.stop()


def _text_image(text: str, size: tuple[int, int] = (320, 120)) -> bytes:
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 40), text, fill="black", font=ImageFont.load_default(size=32))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def _watch_console_errors(page: Any, errors: list[str]) -> None:
    page.on(
        "console",
        lambda msg: (
            errors.append(f"{page.url}: {msg.text} {msg.location}") if msg.type == "error" else None
        ),
    )
    page.on("pageerror", lambda exc: errors.append(str(exc)))


async def _scenario(
    h: ConsoleHarness, browser: Any, demo_url: str, switchboard: Switchboard
) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    errors: list[str] = []
    out: dict[str, Any] = {}
    try:
        page = await context.new_page()
        await _watch_console_errors(page, errors)
        await page.goto(h.server.url())
        await page.fill("#task", "Sign in as alice, add milk and eggs, delete milk")
        await page.fill("#start-url", demo_url)
        await page.fill("#model-url", h.fake.url)
        await page.click("#start-run")

        # frames, reasoning (streamed), the tool call, timings and the click marker arrive
        await expect(page.locator("#step-1 .shot img")).to_be_visible()
        await expect(page.locator("#step-1 .reasoning")).to_contain_text(
            "(stand-in) The target #username"
        )
        await expect(page.locator("#step-1 .action")).to_contain_text("click(")
        await expect(page.locator("#step-1 .timing")).to_contain_text("request")
        await expect(page.locator("#step-1 .marker")).to_have_count(1)
        out["img_width"] = await page.locator("#step-1 .shot img").evaluate(
            "img => img.naturalWidth"
        )
        run_id = (await page.locator("#run-id").text_content() or "").strip()
        out["run_id"] = run_id

        # pause: the loop stops between two actions and asks the model nothing more
        await page.click("#pause")
        await expect(page.locator("#run-status")).to_have_text("paused (between two actions)")
        steps_paused = await page.locator(".step").count()
        requests_paused = h.fake.request_count
        await asyncio.sleep(0.8)
        out["paused_steps"] = (steps_paused, await page.locator(".step").count())
        out["paused_requests"] = (requests_paused, h.fake.request_count)

        # a second tab watches the same run and catches up; closing it does not stop the run
        page2 = await context.new_page()
        await _watch_console_errors(page2, errors)
        await page2.goto(h.server.url() + f"#run={run_id}")
        await expect(page2.locator(f"#step-{steps_paused} .shot img")).to_be_visible()
        await expect(page2.locator("#run-status")).to_have_text("paused (between two actions)")
        await page2.close()
        run = h.manager.get(run_id)
        for _ in range(100):  # the closed tab's event stream is dropped; the run goes on
            if run.channel.watchers == 1:
                break
            await asyncio.sleep(0.05)
        out["watchers_after_close"] = run.channel.watchers

        await page.click("#resume")
        await expect(page.locator("#run-status")).to_have_text("running")

        # the first Delete click is asked about: approve it from the page
        first = page.locator(".approval").first
        await expect(first).to_contain_text("click(", timeout=30_000)
        await expect(first.locator(".shot img")).to_be_visible()
        await expect(first.locator(".marker")).to_have_count(1)
        out["approval_text"] = await first.text_content()
        first_id = await first.get_attribute("id")
        await first.locator(".approve").click()
        await page.locator(f"#{first_id}").wait_for(state="detached")
        # the second one: deny it
        second = page.locator(".approval").first
        await expect(second).to_contain_text("click(", timeout=10_000)
        assert await second.get_attribute("id") != first_id
        await second.locator(".deny").click()

        await expect(page.locator("#run-status")).to_have_text("finished", timeout=30_000)
        await expect(page.locator("#run-result")).to_contain_text("deleted milk")
        out["outcomes"] = await page.locator(".step .action").all_text_contents()

        # two questions in a row about an uploaded image (one upload)
        await page.set_input_files(
            "#ask-image",
            files=[{"name": "shot.png", "mimeType": "image/png", "buffer": _text_image("Hello")}],
        )
        await page.fill("#question", "What does it say?")
        await page.click("#ask-button")
        await expect(page.locator("#answers li").nth(0).locator(".answer")).to_contain_text(
            "A: You asked"
        )
        await page.fill("#question", "What colour is the background?")
        await page.click("#ask-button")
        await expect(page.locator("#answers li").nth(1).locator(".answer")).to_contain_text(
            "What colour is the background?"
        )
        out["answers"] = await page.locator("#answers .answer").all_text_contents()

        # the run's recording is listed; open its report
        recording = page.locator(".recording").first
        await expect(recording).to_contain_text("Sign in as alice")
        async with context.expect_page() as new_page:
            await recording.locator(".report").click()
        report = await new_page.value
        await _watch_console_errors(report, errors)
        await report.wait_for_load_state("load")
        out["report_title"] = await report.title()
        out["report_text"] = await report.locator("body").text_content()
        out["report_images"] = await report.evaluate(
            "() => Promise.all(Array.from(document.images).map(i => fetch(i.src).then(r => r.status)))"
        )
        await report.close()

        # and replay it (strict) from the list
        await recording.locator(".replay").click()
        await expect(page.locator("#run-task")).to_contain_text("Replay")
        # the recorded frames have the password field masked, so a strict replay may stop at
        # the password click: what matters here is that it ran on a fresh page and reported
        await expect(page.locator("#run-status")).to_have_text(
            re.compile("^(finished|failed)$"), timeout=30_000
        )
        out["replay_first"] = await page.locator("#step-1 .action").text_content()
        out["replay_result"] = await page.locator("#run-result").text_content()
    finally:
        await context.close()
    out["errors"] = errors
    return out


def test_console_runs_pauses_approves_asks_and_reports(
    async_runner, playwright_browser, static_server, harness, switchboard
):
    out = async_runner.run(
        _scenario(harness, playwright_browser, static_server.url_for(WEBAPP), switchboard),
        timeout=150,
    )
    assert out["errors"] == []
    assert out["img_width"] == 1280
    # nothing moved while paused
    assert out["paused_steps"][0] == out["paused_steps"][1]
    assert out["paused_requests"][0] == out["paused_requests"][1]
    assert "Delete" in out["approval_text"] or "delete" in out["approval_text"].lower()

    run = harness.manager.get(out["run_id"])
    assert out["watchers_after_close"] == 1
    assert run.result is not None and run.result["status"] == "finished"
    # the reasoning arrived piece by piece while the model was still answering
    deltas = [e for e in run.channel.events if e["kind"] == "delta" and e["index"] == 1]
    assert len(deltas) > 3 and all(d["part"] in ("reasoning", "content") for d in deltas)
    assert "".join(d["text"] for d in deltas if d["part"] == "reasoning").startswith("(stand-in)")
    # the approved delete happened, the denied one did not: eggs are still there
    env = harness.envs[0]
    assert env.final_state is not None
    assert [item["text"] for item in env.final_state["items"]] == ["eggs"]
    recorded = load(run.run_dir)
    outcomes = [(s.action or {}).get("action") for s in recorded.steps]
    assert outcomes[-1] == "finish"
    asked = [s for s in recorded.steps if s.policy and s.policy.get("decision") == "ask"]
    assert [s.policy.get("approved") for s in asked] == [True, False]
    assert [s.outcome for s in asked] == ["ok", "denied"]
    assert any("denied" in text for text in out["outcomes"])

    # the two answers came from the model, about the uploaded 320x120 image, uploaded once
    assert len(out["answers"]) == 2
    assert "What does it say?" in out["answers"][0]
    assert [q[1] for q in switchboard.questions[-2:]] == [(320, 120), (320, 120)]

    assert "Sign in as alice" in out["report_text"]
    assert out["report_images"] and set(out["report_images"]) == {200}
    assert "→ ok" in (out["replay_first"] or "")
    assert "Ended:" in (out["replay_result"] or "") and "step" in out["replay_result"]


# --- the HTTP API and its guard -------------------------------------------------------------


def test_api_rejects_bad_input_with_named_errors(harness, tmp_path):
    base = harness.server.base_url()
    with httpx.Client(base_url=base, headers=harness.server.auth_headers, timeout=30) as client:
        r = client.post("/api/runs", json={"task": "   ", "start_url": "http://x/"})
        assert r.status_code == 422 and "task" in r.json()["error"]
        r = client.post("/api/runs", json={"task": "x", "start_url": "http://x/", "bogus": 1})
        assert r.status_code == 422 and "bogus" in r.json()["error"]
        r = client.post("/api/runs", json={"task": "do it", "start_url": "http://x/"})
        assert r.status_code == 400 and "model" in r.json()["error"]
        r = client.post("/api/runs", json={"task": "do it", "model_url": harness.fake.url})
        assert r.status_code == 400 and "start URL" in r.json()["error"]
        bad_policy = tmp_path / "policy.yaml"
        bad_policy.write_text("rules:\n  - name: x\n    decision: maybe\n")
        spec = {"task": "do it", "start_url": "http://x/", "model_url": harness.fake.url}
        r = client.post("/api/runs", json={**spec, "policy_path": str(bad_policy)})
        assert r.status_code == 400 and "policy.yaml:" in r.json()["error"], r.text
        r = client.post(
            "/api/runs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 400 and "JSON" in r.json()["error"]
        assert client.get("/api/runs/nope").status_code == 404
        assert client.post("/api/runs/nope/pause").status_code == 404
        r = client.post("/api/images", files={"image": ("x.png", b"not an image", "image/png")})
        assert r.status_code == 400 and "image" in r.json()["error"]
        r = client.post("/api/ask", json={"question": "what?"})
        assert r.status_code == 400
        r = client.post("/api/ask", json={"question": "what?", "image_id": "missing"})
        assert r.status_code == 404
        assert client.get("/recordings/../report.html").status_code == 404
        assert client.get("/recordings/nope/report.html").status_code == 404
        r = client.post("/api/recordings/nope/replay", json={"mode": "strict"})
        assert r.status_code == 404
        r = client.post("/api/recordings/nope/replay", json={"mode": "sideways"})
        assert r.status_code == 422 and "mode" in r.json()["error"]


def test_ask_without_a_model_reads_the_screen_locally(harness):
    base = harness.server.base_url()
    with httpx.Client(base_url=base, headers=harness.server.auth_headers, timeout=60) as client:
        r = client.post(
            "/api/images",
            files={"image": ("t.png", _text_image("Invoice 42", (360, 120)), "image/png")},
        )
        assert r.status_code == 201
        image_id = r.json()["id"]
        r = client.post("/api/ask", json={"question": "What does it say?", "image_id": image_id})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["source"] in ("narration", "ocr")
        assert "Invoice" in body["answer"]


def test_stop_ends_a_run_waiting_between_actions(async_runner, harness, static_server, switchboard):
    base = harness.server.base_url()
    switchboard.delay_s = 0.3
    try:
        with httpx.Client(base_url=base, headers=harness.server.auth_headers, timeout=30) as client:
            r = client.post(
                "/api/runs",
                json={
                    "task": "sign in",
                    "start_url": static_server.url_for(WEBAPP),
                    "model_url": harness.fake.url,
                    "record": False,
                },
            )
            assert r.status_code == 201, r.text
            run_id = r.json()["id"]
            # read the event stream until the first step is done, then pause and stop
            kinds: list[str] = []
            sent: list[str] = []
            answers: list[dict] = []
            with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        kinds.append(event["kind"])
                        if event["kind"] == "done" and "pause" not in sent:
                            sent.append("pause")
                            assert client.post(f"/api/runs/{run_id}/pause").status_code == 200
                        if event["kind"] == "state" and event["waiting"] and "stop" not in sent:
                            # while it waits: questions about its screen, by the model and locally
                            q = {"question": "What is shown?", "run_id": run_id}
                            answers.append(client.post("/api/ask", json=q).json())
                            answers.append(
                                client.post("/api/ask", json={**q, "local": True}).json()
                            )
                            sent.append("stop")
                            assert client.post(f"/api/runs/{run_id}/stop").status_code == 200
                        if event["kind"] == "eof":
                            break
            assert sent == ["pause", "stop"]
            assert answers[0]["source"] == "model" and "1280x800" in answers[0]["answer"]
            assert answers[1]["source"] == "narration", answers[1]
            assert "Sign in" in answers[1]["answer"]
            assert "delta" in kinds and "step" in kinds and kinds[-2:] == ["state", "eof"]
            summary = client.get(f"/api/runs/{run_id}").json()
            assert summary["status"] == "stopped"
            # it stopped between two actions: every step begun was finished, none more began
            assert summary["steps"] == kinds.count("step") == kinds.count("done") >= 1
            assert summary["result"]["stop_reason"] == "stopped from the console"
            assert client.post(f"/api/runs/{run_id}/resume").status_code == 409
    finally:
        switchboard.delay_s = 0.0


def test_remote_binding_needs_the_flag_and_the_token(tmp_path):
    manager = RunManager(tmp_path / "recordings")
    with pytest.raises(ConsoleError, match="allow-remote"):
        ConsoleServer(manager, "0.0.0.0", 0)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")

    server = ConsoleServer(manager, "0.0.0.0", 0, allow_remote=True).start()
    try:
        token = server.token
        assert token and len(token) >= 24
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/", "/api/runs", "/static/app.js", "/api/runs/x/events"):
            r = httpx.get(base + path)
            assert r.status_code == 401, path
            assert "token" in r.json()["error"]
        assert (
            httpx.get(base + "/api/runs", headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        assert (
            httpx.get(base + "/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code
            == 200
        )
        r = httpx.get(f"{base}/?token={token}")
        assert r.status_code == 200 and "guiagent console" in r.text
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie
        # the cookie the console page got carries the token for images and event streams
        r = httpx.get(base + "/api/recordings", headers={"Cookie": cookie.split(";")[0]})
        assert r.status_code == 200 and r.json() == []
    finally:
        server.stop()


def test_loopback_console_refuses_foreign_hosts_and_origins(harness):
    base = harness.server.base_url()
    auth = harness.server.auth_headers
    assert httpx.get(base + "/api/runs", headers=auth).status_code == 200
    assert (
        httpx.get(base + "/api/runs", headers={**auth, "Host": "evil.example:7860"}).status_code
        == 403
    )
    r = httpx.post(
        base + "/api/runs",
        json={"task": "x"},
        headers={**auth, "Origin": "http://evil.example"},
    )
    assert r.status_code == 403


def test_cli_prints_the_token_and_serves_until_interrupted(tmp_path):
    from guiagent.cli import main

    assert main(["console", "--host", "0.0.0.0", "--recordings", str(tmp_path)]) == 2
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "guiagent.cli", "console", "--host", "0.0.0.0"),
            *("--allow-remote", "--port", "0", "--recordings", str(tmp_path / "recordings")),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = ""
        found = None
        deadline = time.monotonic() + 30
        while found is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, f"the console exited early: {seen}"
            seen += line
            found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=(\S+)", line)
        assert found is not None, seen
        port, token = found.groups()
        assert f"needs this token:\n  {token}" in seen
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(base + "/api/recordings").status_code == 401
        r = httpx.get(base + "/api/recordings", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json() == []
        # the same port again: a clear error, exit code 2
        taken = subprocess.run(
            [sys.executable, "-m", "guiagent.cli", "console", "--port", port],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert taken.returncode == 2
        assert "cannot serve" in taken.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def test_a_desktop_run_on_xvfb(async_runner, x_display, tmp_path):
    manager = RunManager(tmp_path / "recordings", agent_options={"settle": False})
    fake = FakeModelServer.scripted(
        [
            FakeReply(reasoning="Click the middle.", tool_calls=[("click", {"x": 640, "y": 360})]),
            FakeReply(reasoning="Done.", tool_calls=[("finish", {"answer": "clicked"})]),
        ]
    ).start()
    server = ConsoleServer(manager, "127.0.0.1", 0)

    async def scenario() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        serving = asyncio.ensure_future(server.serve())
        await server.wait_started()
        try:
            async with httpx.AsyncClient(
                base_url=server.base_url(), headers=server.auth_headers, timeout=30
            ) as client:
                spec = {
                    "task": "click the middle of the screen",
                    "env": "desktop",
                    "display": x_display.display,
                    "model_url": fake.url,
                    "coord_space": "image",
                }
                r = await client.post("/api/runs", json=spec)
                assert r.status_code == 201, r.text
                run = manager.get(r.json()["id"])
                events = [e async for e in run.channel.subscribe() if e is not None]
                return (await client.get(f"/api/runs/{run.id}")).json(), events
        finally:
            server.shutdown()
            await asyncio.wait_for(serving, 20)

    try:
        summary, events = async_runner.run(scenario(), timeout=90)
    finally:
        fake.stop()
    assert summary["status"] == "finished" and summary["result"]["answer"] == "clicked"
    done = [e for e in events if e["kind"] == "done"]
    assert len(done) == 1 and done[0]["outcome"] == "ok"
    step = next(e for e in events if e["kind"] == "step")
    assert (step["width"], step["height"]) == (1920, 1080)
    # the marker is in frame pixels, which on this Xvfb are screen pixels: the pointer is there
    mx, my = done[0]["marker"]
    assert 0 < mx < 1920 and 0 < my < 1080
    where = subprocess.run(
        ["xdotool", "getmouselocation", "--shell"],
        env=x_display.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"X={round(mx)}\n" in where and f"Y={round(my)}\n" in where, (where, mx, my)
