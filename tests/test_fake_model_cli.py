"""``guiagent fake-model`` / ``python -m guiagent.testing``: stand-ins that really drive a run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from guiagent.cli import main
from guiagent.record import load

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "stand-in" / "script.yaml"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            if httpx.get(f"{url}/v1/models", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def _run(url: str, tmp_path: Path, capsys) -> tuple[int, str]:
    argv = ["run", "look", "--start-url", "about:blank", "--model-url", url]
    code = main([*argv, "--record", str(tmp_path / "run")])
    return code, capsys.readouterr().out


@pytest.mark.browser
@pytest.mark.parametrize(
    ("extra", "answer"),
    [
        ([], "done"),
        (["--answer", "all wired"], "all wired"),
        (["--echo"], "echo: received an image of 1280x"),
    ],
)
def test_python_m_guiagent_testing_answers_finish(tmp_path, capsys, extra, answer):
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "guiagent.testing", "--port", str(port), *extra],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{port}", proc)
        code, out = _run(f"http://127.0.0.1:{port}", tmp_path, capsys)
    finally:
        proc.terminate()
        proc.wait(10)
    assert code == 0, out
    assert "finished after 1 steps" in out and answer in out
    header = load(tmp_path / "run").header
    assert header.status == "finished" and answer in (header.answer or "")


@pytest.mark.browser
def test_a_detached_script_plays_its_replies_in_order_then_stops(tmp_path, capsys):
    port = _free_port()
    try:
        assert main(["fake-model", "--detach", "--port", str(port), "--script", str(SCRIPT)]) == 0
        assert "in the background" in capsys.readouterr().out
        code, out = _run(f"http://127.0.0.1:{port}", tmp_path, capsys)
    finally:
        assert main(["fake-model", "--stop", "--port", str(port)]) == 0
    assert code == 0, out
    run = load(tmp_path / "run")
    assert [s.action["action"] for s in run.steps] == ["wait", "finish"]
    assert run.header.answer == "the scripted stand-in ran to the end"
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_bad_stand_in_input_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- call: click\n  arguments: {x: 1}\n")
    cases = [
        (["--script", str(bad)], "reply 1: arguments"),
        (["--script", str(tmp_path / "missing.yaml")], "no such file"),
        (["--plan", str(SCRIPT)], "--plan needs the page"),
        (["--plan", str(SCRIPT), "--cdp", "http://127.0.0.1:9"], "step 1: want one of"),
        (["--host", "0.0.0.0"], "loopback only"),
        (["--stop", "--port", str(_free_port())], "no detached stand-in"),
    ]
    for options, expected in cases:
        assert main(["fake-model", *options]) == 2, options
        lines = capsys.readouterr().out.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], (options, lines)
