"""One self-contained HTML report of a run: header, then a timeline of steps with click markers.

Frames are not inlined: small JPEG thumbnails go to ``<report stem>_files/`` beside the
HTML (content-addressed like the frames, loaded lazily) and link to the full frames by
relative path, so a 1000-step run stays a few MB of thumbnails and a small HTML file.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from loguru import logger
from PIL import Image

from guiagent.core.redact import scrub
from guiagent.record.trajectory import RecordingError, Run, StepRecord

THUMB_WIDTH = 480
THUMB_QUALITY = 70
_TEMPLATES = Path(__file__).with_name("templates")


def _relative(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target, start)).as_posix()


def _thumbnail(
    run: Run, frame: str, files_dir: Path, cache: dict[str, Any]
) -> tuple[str, int, int, int] | str:
    """(thumb path, thumb height, frame width, frame height) for a frame, written once; or
    what is wrong with the frame file (missing, truncated, not an image)."""
    if frame in cache:
        return cache[frame]
    try:
        src = run.file(frame)  # refuses a path leaving the run folder
    except RecordingError as exc:
        logger.warning("report: {}", exc)
        cache[frame] = f"{frame} is outside the run folder: not shown"
        return cache[frame]
    if not src.is_file():
        logger.warning("report: frame {} is missing", src)
        cache[frame] = f"{frame} is missing"
        return cache[frame]
    dst = files_dir / f"{Path(frame).stem}.jpg"
    try:
        with Image.open(src) as im:
            width, height = im.size
            thumb_h = max(1, round(height * THUMB_WIDTH / width))
            if not dst.exists():
                im.draft("RGB", (THUMB_WIDTH, thumb_h))  # JPEG: decode at a reduced scale
                thumb = im.convert("RGB").resize((THUMB_WIDTH, thumb_h), Image.Resampling.BILINEAR)
                thumb.save(dst, "JPEG", quality=THUMB_QUALITY)
                os.chmod(dst, 0o600)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        dst.unlink(missing_ok=True)
        logger.warning("report: frame {} cannot be read: {}", src, exc)
        cache[frame] = f"{frame} cannot be read ({type(exc).__name__}: {exc})"
        return cache[frame]
    cache[frame] = (dst.name, thumb_h, width, height)
    return cache[frame]


def step_number(run: Run, step: StepRecord) -> int:
    """The step's number as people see it, from 1: scenario recordings index their steps from 0."""
    return step.index + 1 if run.header.settings.get("kind") == "scenario" else step.index


def _action_text(step: StepRecord) -> str:
    action = step.action or step.screen_action
    if not action:
        # a scenario's check (expect, wait_for...): its label, "step 4 (expect "x")", minus the number
        label = str((getattr(step, "scenario_step", None) or {}).get("label") or "")
        return re.sub(r"^step \d+ \((.*)\)$", r"\1", label) or "(no action)"
    args = ", ".join(
        f"{k}={v!r}" if isinstance(v, str) else f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in action.items()
        if k != "action"
    )
    return f"{action.get('action')}({args})"


def _step_view(
    run: Run, step: StepRecord, out_dir: Path, files_dir: Path, cache: dict[str, Any]
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "index": step.index,
        "number": step_number(run, step),
        "outcome": step.outcome,
        "action_text": _action_text(step),
        "error": step.error,
        "invalid": step.invalid,
        "policy": step.policy,
        "healed": step.healed,
        "timings": [(k, f"{v:.0f}") for k, v in step.timings.items()],
        "sub_count": len(step.sub_steps),
        "markers": [],
        "thumb": None,
    }
    reply = step.reply or {}
    view["reasoning"] = reply.get("reasoning")
    view["content"] = reply.get("content")
    calls = reply.get("tool_calls")
    view["tool_calls"] = json.dumps(calls, indent=1, ensure_ascii=False) if calls else None
    view["meta_line"] = " · ".join(
        str(step.meta[k]) for k in ("title", "url", "monitor") if step.meta.get(k)
    )
    if step.frame:
        thumb = _thumbnail(run, step.frame, files_dir, cache)
        if isinstance(thumb, str):
            view["frame_problem"] = thumb
            problems = cache.setdefault("__problems__", [])
            problems.append(f"{run.path}: step {step.index}: frame {thumb}")
        else:
            name, thumb_h, width, height = thumb
            view["thumb"] = f"{files_dir.name}/{name}"
            view["thumb_height"] = thumb_h
            view["full"] = _relative(run.file(step.frame), out_dir)
            for n in range(len(step.trail)):
                point = step.frame_point(n)
                if point is not None:
                    view["markers"].append(
                        {
                            "x": round(point[0], 2),
                            "y": round(point[1], 2),
                            "left": round(point[0] / width * 100, 4),
                            "top": round(point[1] / height * 100, 4),
                            "end": n > 0,
                        }
                    )
    return view


def write_report(run: Run, out: Path | None = None) -> Path:
    """Write the report (default ``<run>/report.html``); returns its path."""
    out = Path(out) if out is not None else run.path / "report.html"
    if out.is_dir():
        out = out / "report.html"
    out_dir = out.parent.resolve()
    files_dir = out_dir / f"{out.stem}_files"
    try:
        files_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingError(
            f"{files_dir}: cannot create the report's files directory: {exc}"
        ) from exc
    cache: dict[str, Any] = {}
    steps = [_step_view(run, step, out_dir, files_dir, cache) for step in run.steps]
    frame_problems = cache.get("__problems__", [])
    header = run.header
    duration = f"{header.ended_at - header.started_at:.1f} s" if header.ended_at else ""
    env = Environment(
        loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    html = env.get_template("report.html.j2").render(
        header=header,
        steps=steps,
        load_errors=[*run.load_errors, *frame_problems],
        thumb_width=THUMB_WIDTH,
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(header.started_at)),
        duration=duration,
    )
    # the recording was redacted when written; scrub again for older or edited recordings
    out.write_text(scrub(html), encoding="utf-8")
    os.chmod(out, 0o600)
    logger.debug("report of {} steps written to {}", len(steps), out)
    return out
