"""End to end on a real X server (Xvfb): a Tk window, real pointer and keyboard events, and a
stand-in model that finds the button in the screenshot it received."""

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
from guiagent.models.budget import step3vl_visual_tokens
from guiagent.record import load
from guiagent.testing.fake_server import FakeModelServer, FakeReply, FakeRequest
from guiagent.testing.vision import centroid_of_colour

APP = Path(__file__).parent / "apps" / "tk_target.py"


class ColourModel:
    """Clicks the magenta button, types into the cyan entry, then finishes."""

    def __init__(self, space: CoordSpace) -> None:
        self.space = space
        self.turn = 0

    def __call__(self, request: FakeRequest) -> FakeReply:
        self.turn += 1
        sent = Size(*request.image.size)
        if self.turn == 1:
            target = centroid_of_colour(request.image, (255, 0, 255))
        elif self.turn == 2:
            target = centroid_of_colour(request.image, (0, 255, 255))
        elif self.turn == 3:
            return FakeReply(tool_calls=[("type", {"text": "a<b>c"})])
        else:
            return FakeReply(tool_calls=[("finish", {"answer": "pressed"})])
        if target is None:
            return FakeReply(tool_calls=[("fail", {"reason": "target colour not on screen"})])
        p = sent_to_model(target, self.space, sent)
        return FakeReply(
            reasoning="(stand-in) found the colour", tool_calls=[("click", {"x": p.x, "y": p.y})]
        )


@pytest.fixture
def tk_target(x_display, tmp_path):
    state = tmp_path / "state.json"
    proc = subprocess.Popen([sys.executable, str(APP), str(state), "300", "200"], env=x_display.env)
    subprocess.run(
        ["xdotool", "search", "--sync", "--onlyvisible", "--name", "guiagent target"],
        env=x_display.env,
        timeout=20,
        check=True,
        capture_output=True,
    )
    deadline = time.time() + 10
    while not state.exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # first paint
    yield state
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("space", [CoordSpace.IMAGE, CoordSpace.NORM1000])
def test_desktop_click_and_type_from_the_screenshot(
    async_runner, x_display, tk_target, tmp_path, space
):
    async def go():
        async with DesktopEnv(display=x_display.display, monitor="all") as env:
            with FakeModelServer(ColourModel(space)) as server:
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=server.url,
                        coord_space=space,
                        record_dir=tmp_path / "run",
                        settle_timeout_s=1.0,
                    ),
                )
                try:
                    return await agent.run(
                        "Press the magenta button, then type a<b>c into the field"
                    )
                finally:
                    await agent.close()

    result = async_runner.run(go())
    assert result.ok, result
    state = json.loads(tk_target.read_text())
    assert state["pressed"] == 1
    assert state["typed"] == "a<b>c"
    run = load(tmp_path / "run")
    assert [s.action["action"] for s in run.steps] == ["click", "click", "type", "finish"]
    first = run.steps[0]
    assert first.frame_size == [1920, 1080]
    # each step says how the screen was judged still: X DAMAGE events and thumbnails
    assert {s.meta["settle"]["how"] for s in run.steps} == {"xdamage"}
    # the 1920x1080 frame was sent smaller, within the default budget (670 tokens), same aspect
    width, height = first.sent_size
    assert width < 1920 and step3vl_visual_tokens(width, height) <= 670
    assert abs(width / height - 1920 / 1080) < 0.01
    sx, sy = first.trail[0]["screen"]
    assert (
        300 + 40 <= sx <= 300 + 240 and 200 + 40 <= sy <= 200 + 110 + 40
    )  # inside the button (window decorations aside)
