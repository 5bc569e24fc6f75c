"""The loop on two real monitors (Xorg dummy driver), primary NOT the leftmost, the target on the
non-primary one: clicks land with --monitor all and with that monitor's own number, in every
coordinate space the model may answer in."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.core.geometry import CoordSpace, Size, sent_to_model
from guiagent.envs.desktop import DesktopEnv
from guiagent.envs.display import XorgDummyDisplay
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest
from guiagent.testing.vision import centroid_of_colour

APP = Path(__file__).parent / "apps" / "tk_target.py"
MAGENTA, YELLOW = (255, 0, 255), (255, 255, 0)


class ColourClicker:
    def __init__(self, space: CoordSpace, colour: tuple[int, int, int]) -> None:
        self.space, self.colour, self.turn = space, colour, 0

    def __call__(self, request: FakeRequest) -> FakeReply:
        self.turn += 1
        if self.turn > 1:
            return FakeReply(tool_calls=[("finish", {"answer": "clicked"})])
        found = centroid_of_colour(request.image, self.colour)
        if found is None:
            return FakeReply(tool_calls=[("fail", {"reason": "colour not on this monitor"})])
        p = sent_to_model(found, self.space, Size(*request.image.size))
        return FakeReply(tool_calls=[("click", {"x": p.x, "y": p.y})])


@pytest.fixture(scope="module")
def two_monitors():
    # DUMMY0 (primary) on the right at 1280,0; DUMMY1 on the left at 0,0
    with XorgDummyDisplay([(1280, 800, 1280, 0), (1280, 800, 0, 0)], primary=0) as xorg:
        yield xorg


def _launch(xorg, state: Path, x: int, y: int, colour: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(APP), str(state), str(x), str(y), colour],
        env={**xorg.env, "PATH": "/usr/bin:/bin"},
    )
    deadline = time.time() + 20
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.4)
    return proc


@pytest.mark.parametrize("space", list(CoordSpace))
def test_clicks_land_on_the_non_primary_monitor(async_runner, two_monitors, tmp_path, space):
    left_state, right_state = tmp_path / "left.json", tmp_path / "right.json"
    left = _launch(two_monitors, left_state, 100, 150, "#ff00ff")  # on the non-primary monitor
    right = _launch(two_monitors, right_state, 1280 + 300, 200, "#ffff00")  # on the primary
    try:

        async def run(monitor, colour, name):
            async with DesktopEnv(display=two_monitors.display, monitor=monitor) as env:
                with FakeModelServer(ColourClicker(space, colour)) as server:
                    agent = Agent(
                        env,
                        AgentConfig(
                            model_url=server.url,
                            coord_space=space,
                            record_dir=tmp_path / name,
                            settle_timeout_s=1.0,
                        ),
                    )
                    try:
                        return await agent.run("press the button")
                    finally:
                        await agent.close()

        non_primary = two_monitors.mss_number(1)
        primary = two_monitors.mss_number(0)
        assert primary == 1 and non_primary == 2
        for n, (monitor, name) in enumerate([("all", "all"), (non_primary, "own")], start=1):
            result = async_runner.run(run(monitor, MAGENTA, name))
            assert result.ok, result
            assert json.loads(left_state.read_text())["pressed"] == n
        assert json.loads(right_state.read_text())["pressed"] == 0
        result = async_runner.run(run(primary, YELLOW, "primary"))
        assert result.ok and json.loads(right_state.read_text())["pressed"] == 1

        whole = load(tmp_path / "all").steps[0]
        own = load(tmp_path / "own").steps[0]
        on_primary = load(tmp_path / "primary").steps[0]
        assert whole.frame_size == [2560, 800] and own.frame_size == [1280, 800]
        assert whole.meta["transform"]["origin"] == [0.0, 0.0]
        assert on_primary.meta["transform"]["origin"] == [1280.0, 0.0]
        # the same button seen in two captures lands on the same desktop point
        assert whole.trail[0]["screen"] == pytest.approx(own.trail[0]["screen"], abs=2.0)
        assert on_primary.trail[0]["screen"][0] > 1280
    finally:
        for proc in (left, right):
            proc.terminate()
            proc.wait(10)
