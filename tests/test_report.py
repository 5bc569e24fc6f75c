"""The HTML report opened in real headless Chromium, and the GIF / MP4 / scenario exports."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from apps.replay_support import page_url, record_form_run_once
from PIL import Image

from guiagent.record import load
from guiagent.record.export import ExportError, export_gif, export_mp4, export_scenario
from guiagent.record.report import write_report
from guiagent.scenario.schema import load_scenario


@pytest.fixture(scope="module")
def recorded(
    async_runner: Any, playwright_browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return record_form_run_once(
        async_runner, playwright_browser, tmp_path_factory.mktemp("rec") / "run"
    )


_MARKERS_JS = """() => Array.from(document.querySelectorAll('.step')).map(step => {
  const img = step.querySelector('img');
  return {
    index: Number(step.dataset.index),
    natural: img ? [img.naturalWidth, img.naturalHeight] : null,
    markers: Array.from(step.querySelectorAll('.click-marker')).map(m => {
      const r = m.getBoundingClientRect(), ir = img.getBoundingClientRect();
      return {x: Number(m.dataset.x), y: Number(m.dataset.y),
              cx: r.left + r.width / 2 - ir.left, cy: r.top + r.height / 2 - ir.top, shown: ir.width};
    }),
  };
})"""


def test_report_renders_every_step_with_markers_at_the_recorded_points(
    async_runner: Any, playwright_browser: Any, recorded: Path, tmp_path: Path
) -> None:
    run = load(recorded)
    out = write_report(run, tmp_path / "out" / "report.html")
    assert out == tmp_path / "out" / "report.html"
    html = out.read_text()
    assert "http://" not in html and "https://" not in html and "base64" not in html
    thumbs = list((tmp_path / "out" / "report_files").iterdir())
    assert thumbs and all(Image.open(t).width == 480 for t in thumbs)

    async def inspect() -> tuple[list[str], list[dict], list[str], str]:
        context = await playwright_browser.new_context(viewport={"width": 1200, "height": 900})
        page = await context.new_page()
        problems: list[str] = []
        failed: list[str] = []
        page.on(
            "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
        )
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: failed.append(r.url))
        await page.goto(out.as_uri())
        await page.evaluate(
            "async () => { for (const i of document.images) { i.loading = 'eager'; await i.decode(); } }"
        )
        steps = await page.evaluate(_MARKERS_JS)
        status = await page.text_content("#run-status")
        await context.close()
        return problems, steps, failed, status or ""

    problems, steps, failed, status = async_runner.run(inspect())
    assert problems == [] and failed == []
    assert status == "finished"
    assert [s["index"] for s in steps] == [s.index for s in run.steps]
    assert all(s["natural"] == [480, 360] for s in steps)
    assert html.count('loading="lazy"') == len(run.steps)
    marked = {s["index"]: s["markers"] for s in steps if s["markers"]}
    assert sorted(marked) == [0, 2, 3, 4]  # the clicks; type and finish have no point
    for index, markers in marked.items():
        (m,) = markers
        fx, fy = run.steps[index].frame_point()
        assert (m["x"], m["y"]) == pytest.approx((fx, fy), abs=0.01)
        scale = m["shown"] / 800
        assert m["cx"] == pytest.approx(fx * scale, abs=1.0) and m["cy"] == pytest.approx(
            fy * scale, abs=1.0
        )


def test_report_shows_damage_and_missing_frames(recorded: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "damaged"
    shutil.copytree(recorded, run_dir)
    run = load(run_dir)
    (run_dir / run.steps[5].frame).unlink()
    with open(run_dir / "steps.jsonl", "ab") as fh:
        fh.write(b'{"index": 6, "fra')
    out = write_report(load(run_dir))
    html = out.read_text()
    assert out == run_dir / "report.html"
    assert html.count('class="step ') == 6 and "(no frame)" in html
    assert "steps.jsonl:7: truncated line" in html


def test_gif_and_mp4_exports(recorded: Path, tmp_path: Path) -> None:
    run = load(recorded)
    gif = export_gif(run, tmp_path / "run.gif")
    with Image.open(gif) as im:
        assert im.n_frames == 6 and im.size == (640, 480)
        im.seek(2)
        frame = im.convert("RGB")
        # the marker ring around the Sign in click (100, 118) scaled by 640/800
        ring = [frame.getpixel((round(100 * 0.8) + dx, round(118 * 0.8))) for dx in range(-10, 11)]
        assert sum(1 for r, g, _ in ring if r > 140 and g < 60) >= 2  # both sides of the ring
    if shutil.which("ffmpeg"):
        mp4 = export_mp4(run, tmp_path / "run.mp4")
        assert mp4.read_bytes()[4:8] == b"ftyp" and mp4.stat().st_size > 1000
    empty = run.model_copy(update={"steps": []})
    with pytest.raises(ExportError, match="has no frames to export"):
        export_gif(empty, tmp_path / "none.gif")


def test_scenario_export_names_what_a_person_sees(recorded: Path, tmp_path: Path) -> None:
    path = export_scenario(load(recorded), tmp_path / "scenarios" / "signin.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["name"] == "sign in and add two items"
    assert data["target"] == {"url": page_url()}
    assert data["steps"] == [
        {"type": {"text": "alice", "into": "Username"}},
        {"click": "Sign in"},
        {"click": "Add item"},
        {"click": "Add item"},
    ]
    scenario = load_scenario(path)  # valid against the scenario schema
    assert len(scenario.steps) == 4
