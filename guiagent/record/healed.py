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
    from collections.abc import Mapping

# flattened step position -> {frame: the Frame the heal used, point: (x, y) screen point acted
# at, method: how it was found, live: the live DOM element (browser) or None}
Healed = dict[int, dict[str, Any]]


def _copy_file(run: Run, relative: str | None, out: Path) -> None:
    if not relative:
        return
    src, dst = run.file(relative), out / relative
    if src.is_file() and not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def _heal_step(
    step: StepRecord,
    frame: Frame,
    point: tuple[float, float],
    live: Mapping[str, Any] | None,
    method: str,
    recorder: Recorder,
) -> StepRecord:
    """``step`` acting at the healed point, with the evidence found there."""
    assert step.screen_action is not None
    old = step.screen_point()
    assert old is not None
    new = Point(*point)
    dx, dy = new.x - old[0], new.y - old[1]
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
    evidence.update(
        collect_evidence(recorder, frame.image, (fp.x, fp.y), dom=dict(live) if live else None)
    )
    return step.model_copy(
        update={
            "frame": frame_path,
            "frame_size": [frame.image.width, frame.image.height],
            "sent_size": None,
            "screen_action": moved.model_dump(),
            "trail": trail,
            "evidence": evidence,
            "outcome": "healed",
            "healed": {"method": method, "old_point": list(old), "new_point": [new.x, new.y]},
            "meta": {
                **step.meta,
                "transform": {
                    "origin": [frame.transform.origin.x, frame.transform.origin.y],
                    "scale": frame.transform.scale,
                },
            },
        }
    )


class _Rewriter:
    """Walks the steps in replay order (sub-steps depth first), replacing the healed ones."""

    def __init__(self, run: Run, healed: Healed, recorder: Recorder, out: Path) -> None:
        self.run, self.healed, self.recorder, self.out = run, healed, recorder, out
        self.position = 0

    def step(self, step: StepRecord) -> StepRecord:
        _copy_file(self.run, step.frame, self.out)
        _copy_file(self.run, (step.evidence or {}).get("crop"), self.out)
        if step.sub_steps:
            subs = [
                self.step(StepRecord.model_validate(s)).model_dump(mode="json")
                for s in step.sub_steps
            ]
            return step.model_copy(update={"sub_steps": subs})
        position, self.position = self.position, self.position + 1
        if position in self.healed and step.screen_action is not None:
            info = self.healed[position]
            if info.get("frame") is not None:
                return _heal_step(
                    step,
                    info["frame"],
                    info["point"],
                    info.get("live"),
                    info["method"],
                    self.recorder,
                )
        return step


def save_healed_run(run: Run, healed: Healed, out_dir: Path) -> Path:
    """Copy ``run`` to ``out_dir`` with healed steps' points, frames and evidence replaced
    (steps inside a skill or a scenario step too: they are found by their replay position)."""
    out_dir = Path(out_dir)
    if (out_dir / "steps.jsonl").exists():
        raise RecordingError(
            f"{out_dir}: a recording already exists there; choose another --save-healed directory"
        )
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
        rewriter = _Rewriter(run, healed, recorder, out_dir)
        for step in run.steps:
            recorder.append(rewriter.step(step))
        recorder.finish(run.header.status, run.header.stop_reason, run.header.answer)
    return out_dir
