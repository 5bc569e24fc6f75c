"""A long `type` on the desktop stops between keys: fail-safe corner, kill switch, deadline (#18)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_env_desktop import APP, ENTRY, click_colour, wait_state

from guiagent.core.actions import Type
from guiagent.core.killswitch import DeadlineExceeded, Killed, KillSwitch
from guiagent.envs.desktop import DesktopEnv, FailSafeError

pytestmark = pytest.mark.desktop

LONG_TEXT = "abcdefghij" * 200  # 2000 characters


def _typed(state_file: Path) -> int:
    """How many characters reached the entry, once typing has stopped arriving."""
    last = -1
    while True:
        state = wait_state(state_file, lambda s: True)
        count = len(state["entry"])
        if count == last:
            return count
        last = count
        time.sleep(0.3)


@pytest.fixture
def tk_app(tk_app_factory: Any, tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Any, Path]:
    state = tmp_path / "state.json"
    app = tk_app_factory(
        APP, str(state), "--geometry", "420x330+700+400", title=f"tk-{request.node.name}"
    )
    wait_state(state, lambda s: s["clicks"] == 0)
    return app, state


@pytest.fixture
def failsafe_env(x_display: Any, async_runner: Any) -> Any:
    env = DesktopEnv(display=x_display.display, failsafe=True, input_backend="xdotool")
    env.type_delay_ms = 2  # a person-like pace, so the type is still going when stopped
    async_runner.run(env.start())
    yield env
    async_runner.run(env.close())


def _later(seconds: float, fn: Any) -> threading.Thread:
    def run() -> None:
        time.sleep(seconds)
        fn()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_corner_failsafe_stops_a_long_type(
    failsafe_env: DesktopEnv, async_runner: Any, tk_app: tuple[Any, Path], x_display: Any
) -> None:
    _, state_file = tk_app
    click_colour(async_runner, failsafe_env, ENTRY)
    corner = ["xdotool", "mousemove", "0", "0"]
    env = {**os.environ, **x_display.env}
    mover = _later(0.5, lambda: subprocess.run(corner, env=env, check=True, timeout=10))
    try:
        with pytest.raises(FailSafeError, match="corner"):
            async_runner.run(failsafe_env.act(Type(text=LONG_TEXT)))
        mover.join()
        typed = _typed(state_file)
    finally:
        subprocess.run(["xdotool", "mousemove", "500", "500"], env=env, check=True, timeout=10)
    assert 0 < typed < len(LONG_TEXT)


def test_the_kill_switch_and_the_deadline_stop_a_long_type(
    failsafe_env: DesktopEnv, async_runner: Any, tk_app: tuple[Any, Path]
) -> None:
    _, state_file = tk_app
    click_colour(async_runner, failsafe_env, ENTRY)
    switch = KillSwitch()
    failsafe_env.killswitch = switch
    _later(0.5, lambda: switch.trigger("test stop"))
    with pytest.raises(Killed, match="test stop"):
        async_runner.run(failsafe_env.act(Type(text=LONG_TEXT)))
    first = _typed(state_file)
    assert 0 < first < len(LONG_TEXT)

    switch.reset()
    switch.set_deadline(time.monotonic() + 0.5, "wall-time budget of 0.5 s used up")
    with pytest.raises(DeadlineExceeded, match="budget"):
        async_runner.run(failsafe_env.act(Type(text=LONG_TEXT)))
    assert first < _typed(state_file) < first + len(LONG_TEXT)
