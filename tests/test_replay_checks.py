"""Strict browser replay through the step executor (as ``guiagent replay`` acts): every click
lands once where it was recorded, and a page that differs from the recording between two
steps is caught: another element at the point, focus taken from the clicked field, typed
text that did not land, another page title."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apps.replay_support import element_centre, open_env, record_step
from PIL import Image

from guiagent.agent.replay_act import executor_act
from guiagent.core.actions import BaseAction, Click, Type
from guiagent.record import Recorder, RunHeader, load
from guiagent.record.dom_probe import snapshot
from guiagent.record.replay import replay

PAGE = Path(__file__).parent / "apps" / "replay_checks.html"


def _url(variant: str = "") -> str:
    return PAGE.as_uri() + (f"?variant={variant}" if variant else "")


@pytest.fixture(scope="module")
def recorded(
    async_runner: Any, playwright_browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Click the field, type, click Alpha, Beta, Alpha (recorded on the plain page)."""

    async def go() -> Path:
        env = await open_env(playwright_browser, _url())
        run_dir = tmp_path_factory.mktemp("checks") / "run"
        try:
            field, a, b = [await element_centre(env, s) for s in ("#t", "#a", "#b")]
            plan: list[BaseAction] = [
                Click(x=field[0], y=field[1]),
                Type(text="w0"),
                Click(x=a[0], y=a[1]),
                Click(x=b[0], y=b[1]),
                Click(x=a[0], y=a[1]),
            ]
            with Recorder(run_dir, RunHeader(task="checks", surface="browser")) as recorder:
                for i, action in enumerate(plan):
                    await record_step(env, recorder, i, action)
                recorder.finish("finished")
        finally:
            await env.close()
        return run_dir

    return async_runner.run(go())


def _replay(
    async_runner: Any, browser: Any, run_dir: Path, variant: str, out: Path
) -> tuple[Any, dict[str, Any]]:
    async def go() -> tuple[Any, dict[str, Any]]:
        env = await open_env(browser, _url(variant))
        try:
            report = await replay(
                load(run_dir),
                env,
                mode="strict",
                speed=0,
                settle_timeout=0.3,
                out_dir=out,
                act=executor_act(env, None, None),
            )
            state = await env.page.evaluate(
                "() => ({clicks: window.clicks, log: document.getElementById('log').textContent,"
                " t: document.getElementById('t').value,"
                " other: document.getElementById('other').value})"
            )
            return report, state
        finally:
            await env.close()

    return async_runner.run(go())


@pytest.mark.parametrize("variant", ["", "hover"])
def test_every_click_lands_once_where_recorded(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path, variant: str
) -> None:
    report, state = _replay(async_runner, playwright_browser, recorded, variant, tmp_path)
    assert report.ok, report.summary()
    assert [s.status for s in report.steps] == ["ok"] * 5
    assert state["clicks"] == {"a": 2, "b": 1, "other": 0}
    assert state["t"] == "w0" and state["log"] == "a w0"


def test_another_element_at_the_point_stops_before_the_click(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path
) -> None:
    report, state = _replay(async_runner, playwright_browser, recorded, "swap", tmp_path)
    assert not report.ok
    assert report.steps[-1].index == 3 and report.steps[-1].status == "failed"
    assert "not the recorded target" in (report.failure or "")
    assert state["clicks"] == {"a": 1, "b": 0, "other": 0}  # Delete was never pressed


def test_focus_taken_from_the_clicked_field_stops_before_typing(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path
) -> None:
    report, state = _replay(async_runner, playwright_browser, recorded, "steal", tmp_path)
    assert not report.ok
    assert report.steps[-1].index == 1 and "not typed" in (report.failure or "")
    assert state["other"] == "" and state["t"] == ""


@pytest.mark.parametrize("variant", ["eat", "held"])  # held: the field held the text already
def test_typed_text_that_did_not_land_fails_its_step(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path, variant: str
) -> None:
    report, state = _replay(async_runner, playwright_browser, recorded, variant, tmp_path)
    assert not report.ok
    failed = [s for s in report.steps if s.status == "failed"]
    assert [s.index for s in failed] == [1]
    assert "'w0' is not in the clicked field (textbox 'Text')" in (report.failure or "")
    assert state["clicks"] == {"a": 0, "b": 0, "other": 0}  # nothing after the failed step


def test_text_the_page_sent_to_another_field_fails_its_step(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path
) -> None:
    """The focused field holding the text is no pass: it must be the field the replay clicked."""
    report, state = _replay(async_runner, playwright_browser, recorded, "divert", tmp_path)
    assert (state["t"], state["other"]) == ("", "w0")  # the page really diverted the text
    assert not report.ok
    failed = [s for s in report.steps if s.status == "failed"]
    assert [s.index for s in failed] == [1]
    assert "went to textbox 'Other', not the field the replay clicked" in (report.failure or "")
    assert state["clicks"] == {"a": 0, "b": 0, "other": 0}  # nothing after the failed step


def test_another_page_after_a_step_stops_the_next(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path
) -> None:
    report, state = _replay(async_runner, playwright_browser, recorded, "retitle", tmp_path)
    assert not report.ok
    assert report.steps[-1].index == 3
    assert "not on the recorded page after step 2" in (report.failure or "")
    assert "title 'somewhere else', recorded 'checks'" in (report.failure or "")
    assert state["clicks"] == {"a": 1, "b": 0, "other": 0}


def test_the_page_read_says_whether_a_press_waits_for_hover_styles(
    async_runner: Any, playwright_browser: Any
) -> None:
    async def go(variant: str) -> Any:
        env = await open_env(playwright_browser, _url(variant))
        try:
            return (await snapshot(env, (95.0, 118.0), False))["hover"]
        finally:
            await env.close()

    assert async_runner.run(go("")) is False
    assert async_runner.run(go("hover")) is True


HOVER_SWAP = """<!doctype html><html><head><title>hover</title>
<style>body{font:16px sans-serif;margin:20px} .ic{content:url(idle.png);height:20px;cursor:pointer}
.ic:hover{content:url(hover.png)}</style></head>
<body><p>Play <span class="ic" id="ic" role="button" aria-label="Play"></span></p><p id="out">plays: 0</p>
<script>let n = 0; document.getElementById('ic').addEventListener('click', () => {
  document.getElementById('out').textContent = 'plays: ' + (++n); });</script></body></html>"""


def test_a_replayed_click_on_an_icon_that_swaps_on_hover_fires(
    async_runner: Any, playwright_browser: Any, tmp_path: Path
) -> None:
    for name, colour in (("idle", (30, 90, 200)), ("hover", (230, 120, 20))):
        Image.new("RGB", (20, 20), colour).save(tmp_path / f"{name}.png")
    (tmp_path / "page.html").write_text(HOVER_SWAP)
    url = (tmp_path / "page.html").as_uri()

    async def go() -> tuple[Any, str]:
        env = await open_env(playwright_browser, url)
        try:
            x, y = await element_centre(env, "#ic")
            with Recorder(tmp_path / "run", RunHeader(task="play", surface="browser")) as rec:
                for i in range(2):
                    await record_step(env, rec, i, Click(x=x, y=y))
                rec.finish("finished")
        finally:
            await env.close()
        env = await open_env(playwright_browser, url)
        try:
            report = await replay(
                load(tmp_path / "run"),
                env,
                speed=0,
                out_dir=tmp_path / "replay",
                act=executor_act(env, None, None),
            )
            return report, await env.page.inner_text("#out")
        finally:
            await env.close()

    report, out = async_runner.run(go())
    assert report.ok, report.summary()
    assert out == "plays: 2"


ROWS = Path(__file__).parent / "apps" / "replay_rows.html"


def test_a_same_named_element_in_another_row_at_the_point_stops_strict_replay(
    async_runner: Any, playwright_browser: Any, tmp_path: Path
) -> None:
    """Recorded: Delete in Evan's row. Replayed on the rows in another order, Dora's Delete is
    at the point: same role, name, DOM path and rank, but the texts beside it moved."""

    async def go() -> tuple[Any, str]:
        env = await open_env(playwright_browser, ROWS.as_uri())
        run_dir = tmp_path / "run"
        try:
            x, y = await element_centre(env, ".r:nth-child(1) button")
            with Recorder(run_dir, RunHeader(task="rows", surface="browser")) as recorder:
                await record_step(env, recorder, 0, Click(x=x, y=y))
                recorder.finish("finished")
            assert await env.page.text_content("#log") == "deleted: Evan"
        finally:
            await env.close()
        env = await open_env(playwright_browser, ROWS.as_uri() + "?variant=reorder")
        try:
            report = await replay(
                load(run_dir),
                env,
                mode="strict",
                speed=0,
                settle_timeout=0.3,
                out_dir=tmp_path / "out",
                act=executor_act(env, None, None),
            )
            return report, str(await env.page.text_content("#log"))
        finally:
            await env.close()

    report, log = async_runner.run(go())
    assert log == "deleted: none", "strict replay deleted the wrong row"
    assert not report.ok
    assert "not the recorded target" in (report.failure or "")
    assert "Evan" in (report.failure or "")


def test_neighbours_moved_tolerates_small_shifts_and_ignores_twins() -> None:
    from guiagent.record.match import neighbours_moved

    recorded = [
        {"text": "Evan", "dx": 145, "dy": 0},
        {"text": "Delete", "dx": 0, "dy": -44},  # the twin in the next row: no evidence
        {"text": "Team members", "dx": -165, "dy": 47},
    ]
    shifted = [{"text": "Evan", "dx": 151, "dy": 3}, {"text": "Team members", "dx": -160, "dy": 47}]
    assert neighbours_moved(recorded, shifted, "Delete") is None  # another font, same row
    other_row = [
        {"text": "Evan", "dx": 145, "dy": -44},
        {"text": "Delete", "dx": 0, "dy": -44},
        {"text": "Team members", "dx": -165, "dy": 47},
    ]
    moved = neighbours_moved(recorded, other_row, "Delete")  # a tie: the nearest decides
    assert moved is not None and "'Evan'" in moved and "Delete" not in moved
    assert neighbours_moved(recorded, [], "Delete") is None  # nothing to compare
