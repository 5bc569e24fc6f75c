"""Write a healed replay back as a new recording, so the next strict replay matches the new screen."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guiagent.core.actions import action_from_dict
from guiagent.core.env import Frame
from guiagent.core.geometry import Point
from guiagent.record.evidence import collect_evidence
from guiagent.record.trajectory import Recorder, RecordingError, Run, RunHeader, StepRecord

if TYPE_CHECKING:
    from guiagent.record.replay import ReplayReport


def _copy_file(run: Run, relative: str | None, out: Path) -> None:
    if not relative:
        return
    src, dst = run.file(relative), out / relative
    if src.is_file() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _heal_step(step: StepRecord, result: Any, frame: Frame, recorder: Recorder) -> StepRecord:
    old = result.point
    new = Point(*result.new_point)
    dx, dy = new.x - old[0], new.y - old[1]
    assert step.screen_action is not None
    action = action_from_dict(step.screen_action)
    moved = action.with_points([(x + dx, y + dy) for x, y in action.points()])
    trail: list[dict[str, Any]] = []
    for point in step.trail:
        screen = point.get("screen")
        if screen is None:
            trail.append(point)
            continue
        new_screen = Point(float(screen[0]) + dx, float(screen[1]) + dy)
        new_frame = frame.transform.screen_to_frame(new_screen)
        # model/sent points belonged to the old frame; keep them for the record but mark them stale
        trail.append(
            {
                **point,
                "screen": [new_screen.x, new_screen.y],
                "frame": [new_frame.x, new_frame.y],
                "stale": ["model", "sent"],
            }
        )
    frame_path = recorder.save_frame(frame.image)
    evidence = dict(step.evidence or {})
    evidence.pop("text_box", None)
    fp = frame.transform.screen_to_frame(new)
    evidence.update(collect_evidence(recorder, frame.image, (fp.x, fp.y)))
    return step.model_copy(
        update={
            "frame": frame_path,
            "frame_size": [frame.image.width, frame.image.height],
            "sent_size": None,
            "screen_action": moved.model_dump(),
            "trail": trail,
            "evidence": evidence,
            "outcome": "healed",
            "healed": {
                "method": result.method,
                "old_point": old,
                "new_point": result.new_point,
                "score": result.score,
            },
            "meta": {
                **step.meta,
                "transform": {
                    "origin": [frame.transform.origin.x, frame.transform.origin.y],
                    "scale": frame.transform.scale,
                },
            },
        }
    )


def save_healed_run(
    run: Run, report: ReplayReport, healed_frames: dict[int, Frame], out_dir: Path
) -> Path:
    """Copy ``run`` to ``out_dir`` with healed steps' points, frames and evidence replaced."""
    out_dir = Path(out_dir)
    if (out_dir / "steps.jsonl").exists():
        raise RecordingError(
            f"{out_dir}: a recording already exists there; choose another --save-healed directory"
        )
    results = {r.index: r for r in report.steps if r.status == "healed"}
    header = RunHeader.model_validate(
        {
            **run.header.model_dump(),
            "run_id": uuid.uuid4().hex[:12],
            "started_at": time.time(),
            "status": "running",
            "step_count": 0,
            "settings": {**run.header.settings, "healed_from": run.header.run_id},
        }
    )
    recorder = Recorder(out_dir, header)
    with recorder:
        for step in run.steps:
            _copy_file(run, step.frame, out_dir)
            _copy_file(run, (step.evidence or {}).get("crop"), out_dir)
            if step.index in results and step.index in healed_frames and not step.sub_steps:
                step = _heal_step(step, results[step.index], healed_frames[step.index], recorder)
            recorder.append(step)
        recorder.finish(run.header.status, run.header.stop_reason, run.header.answer)
    return out_dir
