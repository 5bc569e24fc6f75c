"""Replay on a real X server: a run of the Tk demo app recorded by the agent loop (stand-in
model reading the screenshot with OCR), replayed strict on a fresh instance, then on a
moved window where strict stops and heal re-locates the targets from pixels alone."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from apps.replay_support import HOME, OcrGreetModel, launch_tk_demo

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.cli import main as cli_main
from guiagent.core.geometry import CoordSpace
from guiagent.envs.desktop import DesktopEnv
from guiagent.grounding.local import LocalGrounder
from guiagent.record import load
from guiagent.record.replay import replay
from guiagent.record.verify import verify_run
from guiagent.testing.fake_server import FakeModelServer

MOVED = "640x400+700+420"
pytestmark = pytest.mark.desktop


def _state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def grounder() -> LocalGrounder:
    # replayed frames are unrelated to each other: nothing to gain from incremental reading
    return LocalGrounder(incremental=False)


@pytest.fixture(scope="module")
def recorded(
    x_display: Any, async_runner: Any, grounder: LocalGrounder, tmp_path_factory: Any
) -> Path:
    tmp = tmp_path_factory.mktemp("desktop-rec")
    state = tmp / "state.json"
    app = launch_tk_demo(x_display.env, state, HOME)

    async def go() -> Any:
        async with DesktopEnv(display=x_display.display) as env:
            with FakeModelServer(OcrGreetModel(grounder, "Ada")) as server:
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=server.url,
                        coord_space=CoordSpace.IMAGE,
                        record_dir=tmp / "run",
                        settle_timeout_s=1.0,
                    ),
                )
                try:
                    return await agent.run("Type Ada in the Name field and press Greet")
                finally:
                    await agent.close()

    try:
        result = async_runner.run(go(), timeout=120)
        assert result.ok, result
        assert _state(state)["greeting"] == "Hello, Ada!"
    finally:
        app.stop()
    return tmp / "run"


def _replay(async_runner: Any, x_display: Any, run: Path, **kwargs: Any) -> Any:
    async def go() -> Any:
        async with DesktopEnv(display=x_display.display) as env:
            return await replay(load(run), env, speed=0, **kwargs)

    return async_runner.run(go(), timeout=120)


def test_the_recording_is_sound(recorded: Path) -> None:
    run = load(recorded)
    assert run.header.surface == "desktop" and run.header.status == "finished"
    assert [s.action_name for s in run.steps] == ["click", "type", "click", "finish"]
    sx, sy = run.steps[2].screen_point()
    # the Greet button of a window at 100,100 (no window manager: no decorations)
    assert 100 + 300 < sx < 100 + 640 and 100 < sy < 100 + 80
    assert run.steps[0].evidence and run.steps[0].evidence["crop"]
    assert verify_run(run) == []


def test_strict_replay_on_a_fresh_instance(
    recorded: Path, x_display: Any, async_runner: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    app = launch_tk_demo(x_display.env, state, HOME)
    try:
        report = _replay(async_runner, x_display, recorded, mode="strict", out_dir=tmp_path / "r")
        time.sleep(0.2)
        assert report.ok, report.summary()
        assert [s.status for s in report.steps] == ["ok", "ok", "ok", "ended"]
        assert all(s.score is not None and s.score <= s.threshold for s in report.steps if s.point)
        final = _state(state)
        assert final["name"] == "Ada" and final["greeting"] == "Hello, Ada!"
    finally:
        app.stop()


def test_moved_window_strict_stops_and_heal_relocates(
    recorded: Path, x_display: Any, async_runner: Any, grounder: LocalGrounder, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    app = launch_tk_demo(x_display.env, state, MOVED)
    try:
        strict = _replay(
            async_runner,
            x_display,
            recorded,
            mode="strict",
            out_dir=tmp_path / "strict",
            settle_timeout=0.3,
        )
        assert not strict.ok
        failed = strict.steps[-1]
        sx, sy = load(recorded).steps[0].screen_point()
        assert failed.index == 1 and failed.status == "failed"  # the loop numbers steps from 1
        assert strict.failure.startswith(
            f"step 1 (click at screen {sx:.0f},{sy:.0f}): the screen around the target differs"
        )
        assert f"score {failed.score:.3f} > threshold 0.080" in strict.failure
        assert Path(failed.expected_crop).is_file() and Path(failed.actual_crop).is_file()
        assert _state(state)["name"] == ""  # nothing was clicked or typed blindly

        healed = _replay(
            async_runner,
            x_display,
            recorded,
            mode="heal",
            out_dir=tmp_path / "heal",
            settle_timeout=0.3,
            grounder=grounder,
        )
        time.sleep(0.2)
        assert healed.ok, healed.summary()
        methods = {s.index: s.method for s in healed.healed}
        assert sorted(methods) == [1, 3], healed.summary()
        assert methods[1].startswith("template(")  # an empty entry has no text: its crop
        assert methods[3] == "ocr_text"  # the button's label, read again
        dx, dy = 700 - 100, 420 - 100
        for s in healed.healed:
            assert s.new_point[1] == pytest.approx(s.point[1] + dy, abs=4)
        greet = healed.steps[2]
        assert greet.new_point[0] == pytest.approx(greet.point[0] + dx, abs=4)
        assert "step 1 healed by template(" in healed.summary()
        assert "step 3 healed by ocr_text" in healed.summary()
        final = _state(state)
        assert final["name"] == "Ada" and final["greeting"] == "Hello, Ada!"
    finally:
        app.stop()


def test_cli_replays_on_the_desktop(
    recorded: Path, x_display: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state.json"
    app = launch_tk_demo(x_display.env, state, HOME)
    try:
        code = cli_main(
            [
                "replay",
                str(recorded),
                "--env",
                "desktop",
                "--speed",
                "0",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        time.sleep(0.2)
        out = capsys.readouterr().out
        assert code == 0, out
        assert "strict replay of" in out and "PASSED" in out
        assert _state(state)["greeting"] == "Hello, Ada!"
        assert json.loads((tmp_path / "o" / "replay.json").read_text())["ok"] is True
    finally:
        app.stop()
