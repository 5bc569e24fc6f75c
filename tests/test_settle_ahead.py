"""The browser settle captures beside its quiet wait, and keeps that capture only when the
page says nothing changed since it began (its change token); else it captures again."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

NOW_AND_LATER = (
    "data:text/html,<button id=now onclick=\"out.textContent='clicked';"
    'setTimeout(()=>{},400)">Now</button>'
    "<button id=later onclick=\"setTimeout(()=>{out.textContent='late'},300)\">Later</button>"
    "<p id=out>idle</p>"
)


def _counted(env: Any, log: list[str]) -> None:
    """Log when each capture and each quiet wait starts and ends (the real methods run)."""
    observe, wait_quiet = env.observe, env.wait_quiet

    async def counted_observe() -> Any:
        log.append("capture")
        frame = await observe()
        log.append("captured")
        return frame

    async def counted_wait(timeout_s: float) -> Any:
        log.append("wait")
        report = await wait_quiet(timeout_s)
        log.append("quiet")
        return report

    env.observe, env.wait_quiet = counted_observe, counted_wait


def _settle_after_click(env: Any, async_runner: Any, button: str) -> tuple[list[str], list[str]]:
    from guiagent.grounding.local import LocalGrounder
    from guiagent.scenario.ui import UI

    async def go() -> tuple[list[str], list[str]]:
        ui = UI(env, LocalGrounder())
        await ui.click({"text": button, "role": "button"})
        log: list[str] = []
        _counted(env, log)
        await ui.settled()
        texts = [str(e.get("text")) for e in (await ui.dom()) or []]
        return log, texts

    return async_runner.run(go())


def test_a_change_drawn_at_once_costs_one_capture_taken_beside_the_wait(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=NOW_AND_LATER)
    log, texts = _settle_after_click(env, async_runner, "Now")
    assert log.count("capture") == 1, log
    # the capture began before the wait (for the click's short timer, which draws nothing)
    # ended: it ran beside it, and it was kept
    assert log.index("capture") < log.index("quiet"), log
    assert "clicked" in texts


def test_a_change_after_the_capture_began_is_captured_again(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=NOW_AND_LATER)
    log, texts = _settle_after_click(env, async_runner, "Later")
    assert log.count("capture") == 2, log
    assert log.index("capture", log.index("quiet")) > log.index("quiet"), log
    assert "late" in texts and "idle" not in texts
