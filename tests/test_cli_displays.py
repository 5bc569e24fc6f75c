"""``guiagent run --displays N`` starts a multi-monitor Xorg (dummy driver) from the command line."""

from __future__ import annotations

import pytest

from guiagent.cli import main
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply
from guiagent.testing.stand_in import echo_responder

pytestmark = pytest.mark.desktop


def test_run_on_two_monitors_started_by_the_cli(tmp_path, capsys):
    with FakeModelServer(echo_responder) as server:
        code = main(
            ["run", "look", "--env", "desktop", "--displays", "2", "--display-size", "1024x768",
             "--hotkey", "", "--model-url", server.url, "--record", str(tmp_path / "run")]
        )  # fmt: skip
        requests = list(server.requests)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Xorg with 2 monitors of 1024x768" in out
    run = load(tmp_path / "run")
    assert tuple(run.steps[0].frame_size) == (2048, 768)  # --monitor all: both side by side
    assert requests and "echo: received an image of" in run.header.answer


def test_one_monitor_of_two(tmp_path, capsys):
    with FakeModelServer(lambda r: FakeReply(tool_calls=[("finish", {"answer": "ok"})])) as server:
        code = main(
            ["run", "look", "--env", "desktop", "--displays", "2", "--monitor", "2",
             "--hotkey", "", "--model-url", server.url, "--record", str(tmp_path / "run")]
        )  # fmt: skip
    assert code == 0, capsys.readouterr().out
    assert tuple(load(tmp_path / "run").steps[0].frame_size) == (1280, 800)
