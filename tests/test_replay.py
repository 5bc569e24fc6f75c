"""Replay of a recorded browser run in real headless Chromium: strict, heal, verify."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from apps.replay_support import open_env, page_state, page_url, record_form_run

from guiagent.envs.browser import BrowserEnv
from guiagent.record import compare, load
from guiagent.record.capture import RegionCapture, crop_screen_box
from guiagent.record.replay import ReplayError, rebase_url, replay


@pytest.fixture(scope="module")
def runner(async_runner: Any) -> Any:
    return async_runner


@pytest.fixture(scope="module")
def browser(playwright_browser: Any) -> Any:
    return playwright_browser


@pytest.fixture(scope="module")
def recorded(runner: Any, browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    async def go() -> Path:
        env = await open_env(browser, page_url())
        try:
            return await record_form_run(env, tmp_path_factory.mktemp("rec") / "run")
        finally:
            await env.close()

    return runner.run(go())


def _replay(
    runner: Any, browser: Any, run_path: Path, variant: str = "", **kwargs: Any
) -> tuple[Any, dict]:
    async def go() -> tuple[Any, dict]:
        env = await open_env(browser, page_url(variant))
        try:
            report = await replay(load(run_path), env, speed=0, **kwargs)
            return report, await page_state(env)
        finally:
            await env.close()

    return runner.run(go())


def test_strict_replay_reproduces_the_run(
    runner: Any, browser: Any, recorded: Path, tmp_path: Path
) -> None:
    report, state = _replay(runner, browser, recorded, mode="strict", out_dir=tmp_path)
    assert report.ok, report.summary()
    assert state == {"status": "Signed in as alice", "items": 2, "username": "alice"}
    assert [s.status for s in report.steps] == ["ok", "ok", "ok", "ok", "ok", "ended"]
    assert all(s.score is not None and s.score <= s.threshold for s in report.steps if s.point)
    assert json.loads((tmp_path / "replay.json").read_text())["ok"] is True


def test_variables_replace_typed_text(
    runner: Any, browser: Any, recorded: Path, tmp_path: Path
) -> None:
    report, state = _replay(
        runner, browser, recorded, mode="strict", variables={"username": "bob"}, out_dir=tmp_path
    )
    assert report.ok, report.summary()
    assert state["status"] == "Signed in as bob"


def test_missing_variable_is_a_named_error(
    runner: Any, browser: Any, recorded: Path, tmp_path: Path
) -> None:
    run = load(recorded)
    run.steps[1].variables = {
        "name": "login",
        "value_hash": "ab12",
    }  # a secret: no value kept, no --var given
    with pytest.raises(
        ReplayError,
        match=r"step 1 types the variable 'login': give its value with --var login=VALUE",
    ):
        runner.run(replay(run, object(), mode="strict", speed=0, out_dir=tmp_path))  # type: ignore[arg-type]


def test_strict_fails_precisely_when_the_target_moved(
    runner: Any, browser: Any, recorded: Path, tmp_path: Path
) -> None:
    report, state = _replay(
        runner,
        browser,
        recorded,
        variant="moved",
        mode="strict",
        out_dir=tmp_path,
        settle_timeout=0.3,
    )
    assert not report.ok
    failed = report.steps[-1]
    assert failed.index == 2 and failed.status == "failed"
    assert failed.score is not None and failed.score > failed.threshold == pytest.approx(0.08)
    assert "step 2 (click at screen 100,118)" in report.failure
    assert f"score {failed.score:.3f} > threshold 0.080" in report.failure
    assert Path(failed.expected_crop).is_file() and Path(failed.actual_crop).is_file()
    assert state["status"] == "Signed out"  # it stopped before clicking blindly


def test_heal_relocates_the_moved_target_by_dom(
    runner: Any, browser: Any, recorded: Path, tmp_path: Path
) -> None:
    healed_dir = tmp_path / "healed"
    report, state = _replay(
        runner,
        browser,
        recorded,
        variant="moved",
        mode="heal",
        out_dir=tmp_path / "r",
        settle_timeout=0.3,
        save_healed=healed_dir,
    )
    assert report.ok, report.summary()
    assert state == {"status": "Signed in as alice", "items": 2, "username": "alice"}
    assert [(s.index, s.method) for s in report.healed] == [(2, "dom:id")]
    assert report.healed[0].new_point == [480.0, 338.0]
    assert "step 2 healed by dom:id" in report.summary()
    # the healed recording replays strictly on the new layout and verifies clean
    healed = load(healed_dir)
    assert healed.steps[2].outcome == "healed" and healed.steps[2].healed["method"] == "dom:id"
    assert runner.run(replay(healed, None, mode="verify")).problems == []
    report2, state2 = _replay(
        runner, browser, healed_dir, variant="moved", mode="strict", out_dir=tmp_path / "r2"
    )
    assert report2.ok, report2.summary()
    assert state2["status"] == "Signed in as alice"


class _NoDom:
    """The same page seen without its DOM (as on a desktop): healing must use pixels."""

    def __init__(self, env: Any) -> None:
        self._env, self.surface, self.page = env, env.surface, env.page

    async def observe(self) -> Any:
        return await self._env.observe()

    async def act(self, action: Any) -> Any:
        return await self._env.act(action)

    async def close(self) -> None:
        await self._env.close()


def test_heal_without_dom_uses_template_match(
    runner: Any, browser: Any, recorded: Path, tmp_path: Path
) -> None:
    async def go() -> tuple[Any, dict]:
        env = _NoDom(await open_env(browser, page_url("moved")))
        try:
            report = await replay(
                load(recorded), env, mode="heal", speed=0, out_dir=tmp_path, settle_timeout=0.3
            )
            return report, await page_state(env)
        finally:
            await env.close()

    report, state = runner.run(go())
    assert report.ok, report.summary()
    assert len(report.healed) == 1 and report.healed[0].method.startswith("template(")
    assert report.healed[0].new_point == pytest.approx([480.0, 338.0], abs=1.5)
    assert state["status"] == "Signed in as alice"


def test_verify_passes_a_sound_run_and_catches_damage(
    runner: Any, recorded: Path, tmp_path: Path
) -> None:
    assert runner.run(replay(load(recorded), None, mode="verify")).ok
    copy = tmp_path / "copy"
    shutil.copytree(recorded, copy)
    run = load(copy)
    missing = run.steps[3].frame
    (copy / missing).unlink()
    crop = run.steps[0].evidence["crop"]
    (copy / crop).write_bytes((copy / crop).read_bytes() + b"x")
    lines = (copy / "steps.jsonl").read_text().splitlines()
    step4 = json.loads(lines[4])
    step4["index"] = 7
    step4["screen_action"]["x"] = step4["screen_action"]["x"] + 5
    lines[4] = json.dumps(step4)
    (copy / "steps.jsonl").write_text("\n".join(lines) + "\n")
    report = runner.run(replay(load(copy), None, mode="verify"))
    assert not report.ok
    text = "\n".join(report.problems)
    assert f"file {missing} is missing" in text
    assert f"step 0 evidence: file {crop} does not match its name" in text
    assert "step 7: index out of order: expected 4" in text
    assert "screen_action point 0" in text and "differs from trail screen" in text


def test_unknown_mode_is_rejected(runner: Any, recorded: Path) -> None:
    with pytest.raises(ReplayError, match="unknown replay mode 'fast'"):
        runner.run(replay(load(recorded), None, mode="fast"))  # type: ignore[arg-type]


def test_region_capture_matches_the_full_frame_when_scrolled_and_at_dpr_2(
    runner: Any, browser: Any
) -> None:
    page = (
        "data:text/html,<body style='margin:0'><div style='height:3000px;"
        "background:linear-gradient(red,blue)'><p style='margin:700px 0 0 20px;font-size:40px'>"
        "Hello there</p></div></body>"
    )

    async def go(dpr: float) -> tuple[float, float, str]:
        env = BrowserEnv(
            start_url=page, browser=browser, viewport=(800, 600), device_scale_factor=dpr
        )
        await env.start()
        capture = RegionCapture(env)
        try:
            box = (10.0, 150.0, 310.0, 250.0)
            before = await capture.grab(box)
            await env.page.evaluate("window.scrollTo(0, 500)")
            after = await capture.grab(box)
            frame = await env.observe()
            expected = crop_screen_box(frame, box)
            assert expected.size == (round(300 * dpr), round(100 * dpr))
            return (
                compare.difference(expected, after),
                compare.difference(expected, before),
                capture.method,
            )
        finally:
            await capture.close()
            await env.close()

    for dpr in (1.0, 2.0):
        same, moved, method = runner.run(go(dpr))
        assert same < 0.01, (dpr, method)  # the grab follows the scroll
        assert moved > 0.2, (dpr, method)  # and the check would see a stale region


def test_difference_compares_at_the_smaller_size_and_honours_a_mask() -> None:
    from PIL import Image

    big = Image.new("RGB", (80, 80), "white")
    big.paste((0, 0, 0), (0, 0, 80, 40))  # top half black
    small = big.resize((40, 40))
    assert compare.difference(big, small) < 0.01 and compare.difference(small, big) < 0.01
    white = Image.new("RGB", (80, 80), "white")
    assert compare.difference(big, white) == pytest.approx(0.5, abs=0.01)
    mask = compare.unmasked((80, 80), (100, 100), [[90, 90, 200, 50]])  # covers rows 0..39
    assert not mask[:40].any() and mask[40:].all()
    assert compare.difference(big, white, mask) == 0.0
    assert compare.difference(big, white.resize((40, 40)), mask) == 0.0
    assert compare.difference(big, white, ~mask) == pytest.approx(1.0)
    assert compare.difference(big, white, np.zeros((80, 80), dtype=bool)) == 0.0


def test_rebase_url_keeps_the_recorded_page() -> None:
    assert (
        rebase_url("http://127.0.0.1:41234/guiagent/demo/x.html?a=1#f", "http://localhost:8000/")
        == "http://localhost:8000/guiagent/demo/x.html?a=1#f"
    )
    assert rebase_url("http://h:1/x.html", "https://example.test/base") == (
        "https://example.test/base/x.html"
    )
    with pytest.raises(ReplayError, match="--base-url must look like http://host:port"):
        rebase_url("http://h:1/x.html", "localhost:8000")
