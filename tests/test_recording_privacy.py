"""Recordings are private (0700 folders, 0600 files) and a crafted recording cannot make a
reader open or thumbnail anything outside its folder."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from PIL import Image

from guiagent.record import load
from guiagent.record.report import write_report
from guiagent.record.trajectory import Recorder, RecordingError, RunHeader, StepRecord


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_run_folders_are_0700_and_files_0600(tmp_path):
    run_dir = tmp_path / "runs" / "one"
    with Recorder(run_dir, RunHeader(task="t", surface="browser")) as recorder:
        frame = recorder.save_frame(Image.new("RGB", (40, 30), "red"))
        recorder.save_crop(Image.new("RGB", (40, 30), "blue"), (0, 0, 10, 10))
        recorder.append(StepRecord(index=1, frame=frame))
        recorder.finish("finished")
    report = write_report(load(run_dir))
    folders = [p for p in run_dir.rglob("*") if p.is_dir()] + [run_dir]
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) >= 5  # run.json, steps.jsonl, a frame, a crop, the report (+ thumbnail)
    for folder in folders:
        if folder.name != report.stem + "_files":
            assert _mode(folder) == 0o700, folder
    for path in files:
        assert _mode(path) == 0o600, path


def _crafted(tmp_path: Path, frame: str) -> Path:
    run_dir = tmp_path / "crafted"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(
        json.dumps(
            {
                "format_version": 1,
                "task": "t",
                "surface": "browser",
                "status": "finished",
                "step_count": 1,
            }
        )
    )
    step = {"index": 1, "frame": frame, "outcome": "ok"}
    (run_dir / "steps.jsonl").write_text(json.dumps(step) + "\n")
    return run_dir


@pytest.mark.parametrize(
    "frame", ["/etc/passwd", "../../../../etc/passwd", "frames/../../outside.png", "link.png"]
)
def test_a_crafted_recording_cannot_read_outside_its_folder(tmp_path, frame):
    outside = tmp_path / "outside.png"
    Image.new("RGB", (300, 200), (1, 2, 3)).save(outside)
    run_dir = _crafted(tmp_path, frame)
    (run_dir / "link.png").symlink_to(outside)
    run = load(run_dir)
    with pytest.raises(RecordingError, match="leaves the run folder"):
        run.frame_image(run.steps[0])
    report = write_report(run)
    html = report.read_text()
    assert "root:x:0:0" not in html and "<img" not in html  # nothing of it read or shown
    assert "outside the run folder" in html  # the report says why the frame is not shown
    thumbs = list((report.parent / f"{report.stem}_files").glob("*"))
    assert thumbs == []  # nothing outside was thumbnailed into the report


def test_report_and_loaders_keep_working_for_frames_inside(tmp_path):
    run_dir = tmp_path / "ok"
    with Recorder(run_dir, RunHeader(task="t", surface="browser")) as recorder:
        frame = recorder.save_frame(Image.new("RGB", (40, 30), "red"))
        recorder.append(StepRecord(index=1, frame=frame))
        recorder.finish("finished")
    run = load(run_dir)
    assert run.frame_image(run.steps[0]).size == (40, 30)
    report = write_report(run)
    assert len(list((report.parent / f"{report.stem}_files").glob("*.jpg"))) == 1
