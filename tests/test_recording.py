"""The recording format: write with the Recorder, load back, survive truncation, corruption and SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from apps.replay_support import record_form_run_once
from PIL import Image

from guiagent.record import FORMAT_VERSION, Recorder, RecordingError, RunHeader, StepRecord, load


@pytest.fixture(scope="module")
def recorded(
    async_runner: Any, playwright_browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return record_form_run_once(
        async_runner, playwright_browser, tmp_path_factory.mktemp("rec") / "run"
    )


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_round_trip_of_a_browser_run(recorded: Path) -> None:
    run = load(recorded)
    assert run.load_errors == []
    assert run.header.format_version == FORMAT_VERSION
    assert (
        run.header.status == "finished"
        and run.header.answer == "done"
        and run.header.step_count == 6
    )
    assert [s.index for s in run.steps] == list(range(6))
    assert run.steps[1].variables == {"name": "username"} and run.steps[1].screen_action == {
        "action": "type",
        "text": "alice",
    }
    click = run.steps[2]
    assert click.evidence["dom"]["id"] == "signin" and click.evidence["dom"]["text"] == "Sign in"
    assert click.frame_point() == pytest.approx(
        (100.0, 118.0)
    ) and click.screen_point() == pytest.approx((100.0, 118.0))
    for step in run.steps:
        image = run.frame_image(step)
        assert image.size == (800, 600) == tuple(step.frame_size)
        assert step.frame.startswith("frames/") and step.frame.endswith(".jpg")
    # JSON carries paths, never pixels
    assert max(len(line) for line in (recorded / "steps.jsonl").read_text().splitlines()) < 4000


def test_frames_are_content_addressed(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "r", RunHeader(task="t"))
    red, blue = Image.new("RGB", (64, 48), "red"), Image.new("RGB", (64, 48), "blue")
    a, b, c = rec.save_frame(red), rec.save_frame(red.copy()), rec.save_frame(blue)
    assert a == b != c
    assert len(list((tmp_path / "r" / "frames").iterdir())) == 2
    png = rec.save_frame(red, fmt="png")
    assert png.endswith(".png") and Image.open(tmp_path / "r" / png).getpixel((3, 3)) == (255, 0, 0)
    crop = rec.save_crop(blue, (-10, -10, 20, 20))
    assert Image.open(tmp_path / "r" / crop).size == (20, 20)
    with pytest.raises(ValueError, match=r"crop box .* is empty"):
        rec.save_crop(blue, (70, 70, 90, 90))
    rec.finish("finished")


def test_truncated_last_line_keeps_every_complete_step(recorded: Path, tmp_path: Path) -> None:
    run_dir = _copy(recorded, tmp_path / "trunc")
    steps_file = run_dir / "steps.jsonl"
    data = steps_file.read_bytes()
    steps_file.write_bytes(data[: len(data) - 40])  # the writer died inside the last step
    run = load(run_dir)
    assert [s.index for s in run.steps] == [0, 1, 2, 3, 4]
    assert len(run.load_errors) == 1
    assert run.load_errors[0].startswith(
        f"{steps_file}:6: truncated line (the writer stopped mid-step)"
    )
    with pytest.raises(RecordingError, match=r"steps\.jsonl:6: truncated line") as info:
        load(run_dir, strict=True)
    assert info.value.run is not None and len(info.value.run.steps) == 5


def test_corrupt_middle_line_is_named_and_the_rest_loads(recorded: Path, tmp_path: Path) -> None:
    run_dir = _copy(recorded, tmp_path / "corrupt")
    lines = (run_dir / "steps.jsonl").read_text().splitlines()
    lines[2] = lines[2][:30] + "\x00garbage"
    lines[3] = json.dumps({"index": "three"})
    (run_dir / "steps.jsonl").write_text("\n".join(lines) + "\n")
    run = load(run_dir)
    assert [s.index for s in run.steps] == [0, 1, 4, 5]
    assert run.load_errors[0].startswith(f"{run_dir / 'steps.jsonl'}:3: corrupt line")
    assert (
        run.load_errors[1]
        == f"{run_dir / 'steps.jsonl'}:4: invalid step: index: Input should be a valid integer, unable to parse string as an integer"
    )


def test_missing_run_json_loads_as_crashed(recorded: Path, tmp_path: Path) -> None:
    run_dir = _copy(recorded, tmp_path / "nohead")
    (run_dir / "run.json").unlink()
    run = load(run_dir)
    assert run.header.status == "crashed" and "run.json missing" in run.header.stop_reason
    assert len(run.steps) == 6 and run.header.step_count == 6


def test_future_format_version_and_bad_paths_are_clear(recorded: Path, tmp_path: Path) -> None:
    run_dir = _copy(recorded, tmp_path / "future")
    header = json.loads((run_dir / "run.json").read_text())
    header["format_version"] = FORMAT_VERSION + 1
    (run_dir / "run.json").write_text(json.dumps(header))
    with pytest.raises(
        RecordingError,
        match=r"run\.json: format_version 2 is not supported; this guiagent reads versions 1\.\.1",
    ):
        load(run_dir)
    with pytest.raises(RecordingError, match="no such run directory"):
        load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="not a recording"):
        load(tmp_path / "empty")


def test_context_manager_marks_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), Recorder(tmp_path / "c", RunHeader(task="boom")) as rec:
        rec.append(StepRecord(index=0))
        1 / 0  # noqa: B018
    run = load(tmp_path / "c")
    assert (
        run.header.status == "crashed"
        and run.header.stop_reason == "ZeroDivisionError: division by zero"
    )
    assert run.header.ended_at is not None and len(run.steps) == 1
    with pytest.raises(RecordingError, match="a recording already exists here"):
        Recorder(tmp_path / "c", RunHeader())


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from PIL import Image
    from guiagent.record import Recorder, RunHeader, StepRecord
    rec = Recorder(Path(sys.argv[1]), RunHeader(task="loop"))
    i = 0
    while True:
        frame = rec.save_frame(Image.new("RGB", (320, 200), (i % 256, 40, 90)))
        rec.append(StepRecord(index=i, frame=frame, frame_size=[320, 200], screen_action={"action": "wait", "seconds": 0},
                              reply={"reasoning": "x" * 2000}))
        i += 1
    """
)


def test_sigkill_loses_no_completed_step(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(run_dir)], stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 20
        steps_file = run_dir / "steps.jsonl"
        while time.monotonic() < deadline:
            if steps_file.exists() and steps_file.read_bytes().count(b"\n") >= 30:
                break
            time.sleep(0.02)
        written_before_kill = steps_file.read_bytes().count(b"\n")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert written_before_kill >= 30
    run = load(run_dir)
    complete = (run_dir / "steps.jsonl").read_bytes().count(b"\n")
    assert len(run.steps) == complete >= written_before_kill
    assert [s.index for s in run.steps] == list(range(complete))
    assert all(run.frame_image(s).size == (320, 200) for s in run.steps)
    # never finished and its process is gone: read as interrupted at its last complete step (#18)
    assert run.header.status == "interrupted"
    assert all("truncated line" in e for e in run.load_errors) and len(run.load_errors) <= 1
