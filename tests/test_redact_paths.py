"""One redaction path: a scripted model tries every way out for a secret (stream chunks,
reasoning, a bad argument quoted back, the untrusted-text note, the finish answer, a
dry run's typed password, a crash) and no secret reaches a file, an event, a log line or a
request."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.core.redact import (
    REDACTED,
    Redactor,
    StreamRedactor,
    redact_messages,
    redacting_sink,
    scrub_logs_with,
)
from guiagent.envs.browser import BrowserEnv
from guiagent.skills import SecretStore
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer, FakeReply

PAGE = "tests/apps/leaky_form.html"
CLI_SECRET = "TopSecret-Alpha-42"  # a --secret value, also shown on the page
STORED = "Hunter2-bank!pw"  # a stored secret
PATTERN = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234"  # no one declared it: the pattern finds it
OWN_PW = "MyOwnPw-998877"  # a password the model makes up and types into a password field
ALL = (CLI_SECRET, STORED, PATTERN, OWN_PW)


def test_a_secret_split_across_stream_chunks_never_leaves_whole():
    redactor = Redactor(secrets=[STORED])
    text = f"first {STORED} then {PATTERN} and the end"
    for size in (1, 2, 3, 5, 7, 11):
        stream = StreamRedactor(redactor)
        out = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size))
        out += stream.flush()
        assert out == f"first {REDACTED} then {REDACTED} and the end", size
        # and no prefix of a secret longer than a few characters went out on its own
        assert "Hunter2-b" not in out and "sk-proj-ABCD" not in out


def test_ordinary_text_still_streams_word_by_word():
    stream = StreamRedactor(Redactor(secrets=[STORED]))
    text = "The page shows a sign-in form with two fields and a button. "
    pieces = [stream.feed(text[i : i + 4]) for i in range(0, len(text), 4)]
    assert len([p for p in pieces if p]) > 5
    assert "".join(pieces) + stream.flush() == text


def test_messages_are_redacted_but_images_left_alone():
    redactor = Redactor(secrets=[STORED])
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    messages = [
        {"role": "system", "content": f"task: log in with {STORED}"},
        {"role": "user", "content": [image, {"type": "text", "text": f"key {PATTERN}"}]},
        {"role": "assistant", "content": "", "tool_calls": [{"function": {"arguments": STORED}}]},
    ]
    out = json.dumps(redact_messages(redactor, messages))
    assert STORED not in out and PATTERN not in out and "AAAA" in out


def test_log_lines_and_tracebacks_are_scrubbed():
    redactor = Redactor(secrets=[STORED])
    scrub_logs_with(redactor)
    stream = io.StringIO()
    handler = logger.add(redacting_sink(stream), format="{message}", diagnose=False)
    try:
        logger.warning("bad argument {!r}", STORED)
        try:
            raise RuntimeError(f"boom with {STORED} and {PATTERN}")
        except RuntimeError:
            logger.exception("crashed")
    finally:
        logger.remove(handler)
    text = stream.getvalue()
    assert "bad argument" in text and "RuntimeError" in text and "Traceback" in text
    assert STORED not in text and PATTERN not in text


class CrashingEnv(BrowserEnv):
    """A browser whose next click explodes with the task in the message (a bug somewhere)."""

    crash_on_click = False

    async def act(self, action: Any) -> Any:
        if self.crash_on_click and action.name == "click":
            raise RuntimeError(f"internal error while doing: log in with {STORED} / {CLI_SECRET}")
        return await super().act(action)


async def _run(browser, url, tmp_path: Path, plan, *, crash=False, **config):
    events: list[tuple[str, dict[str, Any]]] = []

    def sink(kind: str, data: dict[str, Any]) -> None:
        events.append((kind, data))

    async with CrashingEnv(start_url=url, browser=browser) as env:
        env.crash_on_click = crash
        with FakeModelServer(DomOracle(env.page, plan, asyncio.get_running_loop())) as server:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server.url,
                    record_dir=tmp_path / "run",
                    settle_timeout_s=1.0,
                    stream=True,
                    secrets=[CLI_SECRET],
                    **config,
                ),
                secrets=SecretStore({"bank_pw": STORED}, environ={}),
                on_event=sink,
            )
            error: BaseException | None = None
            try:
                result = await agent.run(f"Create an account; the bank password is {STORED}")
            except RuntimeError as exc:
                result, error = None, exc
            finally:
                await agent.close()
    return result, error, events, server


def _assert_nothing_leaked(tmp_path: Path, events, server, logs: str, extra: str = "") -> None:
    blobs = {"logs": logs, "events": json.dumps(events, default=str), "extra": extra}
    for i, request in enumerate(server.requests):
        blobs[f"request {i}"] = request.raw.decode("utf-8", "replace")
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            blobs[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for kind, data in events:
        if any(s in json.dumps(data, default=str) for s in ALL):
            print("LEAK", kind, json.dumps(data, default=str)[:300])
    for where, blob in blobs.items():
        for secret in ALL:
            assert secret not in blob, (secret, where)


@pytest.fixture
def captured_logs():
    stream = io.StringIO()
    logger.enable("guiagent")  # the library keeps its log off unless asked
    handler = logger.add(redacting_sink(stream), level="DEBUG", format="{message}", diagnose=False)
    yield stream
    logger.remove(handler)
    logger.disable("guiagent")


def _plan() -> list[OracleStep]:
    think = f"The page wants {CLI_SECRET}; my key is {PATTERN}; the bank password is {STORED}."
    return [
        # reasoning with every secret, streamed in 7-character chunks
        OracleStep(
            kind="raw",
            raw=FakeReply(
                reasoning=think, content=f"Noted {PATTERN}.", tool_calls=[("wait", {"seconds": 0})]
            ),
        ),
        # a bad argument quoting secrets: a warning, a correction sent back
        OracleStep(
            kind="raw",
            raw=FakeReply(content="oops", tool_calls=[("click", {"x": f"{STORED} {PATTERN}"})]),
        ),
        # a password of its own, typed into the password field
        OracleStep(kind="click", selector="#pw"),
        OracleStep(kind="type", text=OWN_PW),
        # the model typing a known secret: denied by the policy
        OracleStep(kind="click", selector="#name"),
        OracleStep(kind="type", text=CLI_SECRET),
        # repeating them, then finishing with all of them in the answer
        OracleStep(
            kind="raw",
            raw=FakeReply(
                reasoning=f"I typed {OWN_PW} as the password.",
                tool_calls=[("wait", {"seconds": 0})],
            ),
        ),
        OracleStep(kind="finish", text=f"done: {OWN_PW} {STORED} {CLI_SECRET} {PATTERN}"),
    ]


def test_no_secret_leaves_through_any_path(
    async_runner, playwright_browser, static_server, tmp_path, captured_logs
):
    result, error, events, server = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), tmp_path, _plan()), timeout=240
    )
    assert error is None and result is not None and result.ok, result
    assert REDACTED in (result.answer or "")
    kinds = {k for k, _ in events}
    assert {"delta", "reply", "done", "end"} <= kinds  # every path was exercised
    sent = json.dumps([r.body["messages"] for r in server.requests])
    assert "could not be executed" in sent and "looks like instructions" in sent
    _assert_nothing_leaked(tmp_path, events, server, captured_logs.getvalue(), result.answer or "")


def test_a_dry_run_does_not_record_the_password_it_would_type(
    async_runner, playwright_browser, static_server, tmp_path, captured_logs
):
    result, error, events, server = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), tmp_path, _plan(), dry_run=True),
        timeout=240,
    )
    # nothing changes on a dry run's screen: the loop detector may end it as stuck
    assert error is None and result is not None and result.status in ("finished", "stopped")
    steps = [
        json.loads(line) for line in (tmp_path / "run" / "steps.jsonl").read_text().splitlines()
    ]
    typed = [s for s in steps if (s.get("action") or {}).get("action") == "type"]
    assert typed and typed[0]["action"]["text"] == REDACTED and typed[0]["outcome"] == "dry_run"
    _assert_nothing_leaked(tmp_path, events, server, captured_logs.getvalue(), result.answer or "")


def test_a_crash_leaves_no_secret_in_the_recording_or_the_log(
    async_runner, playwright_browser, static_server, tmp_path, captured_logs
):
    plan = [OracleStep(kind="click", selector="#name")]
    result, error, events, server = async_runner.run(
        _run(playwright_browser, static_server.url_for(PAGE), tmp_path, plan, crash=True),
        timeout=120,
    )
    assert result is None and isinstance(error, RuntimeError)  # the crash goes on up
    header = json.loads((tmp_path / "run" / "run.json").read_text())
    assert header["status"] == "crashed" and "RuntimeError" in header["stop_reason"]
    assert "run crashed at step 1" in captured_logs.getvalue()
    _assert_nothing_leaked(tmp_path, events, server, captured_logs.getvalue())


def test_the_terminal_never_shows_a_secret(tmp_path):
    import os
    import subprocess
    import sys

    answer = f"the password is {STORED} and the key {PATTERN}"
    reply = FakeReply(reasoning=f"I know {STORED}", tool_calls=[("finish", {"answer": answer})])
    with FakeModelServer.scripted([reply]) as server:
        env = {**os.environ, "GUIAGENT_SECRET_BANK_PW": STORED, "PYTHONPATH": str(Path.cwd())}
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "guiagent.cli",
                "-v",
                "run",
                f"say {STORED}",
                "--start-url",
                "data:text/html,<p>hello</p>",
                "--model-url",
                server.url,
                "--record",
                str(tmp_path / "run"),
                "--no-settle",
                "--no-skills",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "finished" in proc.stdout and REDACTED in proc.stdout
    assert STORED not in out and PATTERN not in out
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert STORED.encode() not in data and PATTERN.encode() not in data, path
