"""Exports of a run: an animated GIF, an MP4 (through ffmpeg) and a scenario YAML."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, ImageDraw

from guiagent.record.trajectory import Run, StepRecord

GIF_WIDTH = 640
FRAME_MS = 800


class ExportError(Exception):
    """An export cannot be made (no frames, ffmpeg missing or failing, unwritable file)."""


def marked_frame(run: Run, step: StepRecord, width: int | None = GIF_WIDTH) -> Image.Image | None:
    """The step's frame with a ring at each recorded point, downscaled to ``width``."""
    image = run.frame_image(step)
    if image is None:
        return None
    draw = ImageDraw.Draw(image)
    radius = max(8, image.width // 100)
    for n in range(len(step.trail)):
        point = step.frame_point(n)
        if point is not None:
            x, y = point
            colour = (224, 0, 77) if n == 0 else (9, 105, 218)
            draw.ellipse(
                (x - radius, y - radius, x + radius, y + radius),
                outline=colour,
                width=max(2, radius // 3),
            )
    if width and image.width > width:
        image = image.resize(
            (width, max(1, round(image.height * width / image.width))), Image.Resampling.BILINEAR
        )
    return image


def _frames(run: Run, width: int | None) -> list[Image.Image]:
    frames = [f for step in run.steps if (f := marked_frame(run, step, width)) is not None]
    if not frames:
        raise ExportError(f"{run.path}: the run has no frames to export")
    return frames


def export_gif(run: Run, out: Path, width: int = GIF_WIDTH, frame_ms: int = FRAME_MS) -> Path:
    frames = _frames(run, width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paletted = [f.convert("P", palette=Image.Palette.ADAPTIVE, colors=128) for f in frames]
    paletted[0].save(
        out, save_all=True, append_images=paletted[1:], duration=frame_ms, loop=0, optimize=False
    )
    return out


def export_mp4(run: Run, out: Path, width: int | None = 1280, frame_ms: int = FRAME_MS) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ExportError(
            "ffmpeg is not on PATH: install it (apt-get install ffmpeg) or export a GIF with --gif"
        )
    frames = _frames(run, width)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        size = frames[0].size
        for n, frame in enumerate(frames):
            (frame if frame.size == size else frame.resize(size)).save(
                Path(tmp) / f"{n:06d}.png", compress_level=1
            )
        cmd = [
            ffmpeg,
            "-y",
            "-loglevel",
            "error",
            "-framerate",
            f"{1000 / frame_ms:g}",
            "-i",
            str(Path(tmp) / "%06d.png"),
            "-vf",
            "scale=trunc(iw/2)*2:trunc(ih/2)*2",
            "-pix_fmt",
            "yuv420p",
            "-r",
            "25",
            str(out),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ExportError(
            f"ffmpeg failed ({done.returncode}) writing {out}: {done.stderr.strip()[-500:]}"
        )
    return out


def _label(step: StepRecord) -> str | None:
    evidence = step.evidence or {}
    dom = evidence.get("dom") or {}
    for value in (
        dom.get("text"),
        evidence.get("text"),
        dom.get("label"),
        dom.get("placeholder"),
        dom.get("name"),
    ):
        if isinstance(value, str) and value.strip() and len(value) <= 80:
            return value.strip()
    return None


def _is_input(step: StepRecord) -> bool:
    dom = (step.evidence or {}).get("dom") or {}
    return dom.get("tag") in ("input", "textarea") or dom.get("role") in (
        "textbox",
        "searchbox",
        "combobox",
    )


def _input_label(step: StepRecord) -> str | None:
    dom = (step.evidence or {}).get("dom") or {}
    for key in ("label", "placeholder", "name", "text"):
        value = dom.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return (step.evidence or {}).get("text")


def _target(step: StepRecord) -> Any:
    label = _label(step)
    if label:
        return label
    point = step.screen_point()
    return {"at": [round(point[0], 1), round(point[1], 1)]} if point else None


def scenario_steps(run: Run) -> list[dict[str, Any]]:
    """Each executed step as a scenario step: targets by visible text when known, else by point."""
    out: list[dict[str, Any]] = []
    steps = [
        s
        for s in run.steps
        if s.screen_action and s.outcome not in ("invalid", "denied", "dry_run", "error")
    ]
    previous: StepRecord | None = None
    for step in steps:
        action = step.screen_action or {}
        kind = action.get("action")
        if kind in ("finish", "fail"):
            break
        if kind in ("click", "double_click", "right_click"):
            target = _target(step)
            if target is not None:
                out.append({kind: target})
        elif kind == "type":
            text = str(action.get("text", ""))
            if step.variables.get("name") and "value_hash" in step.variables:
                text = "${" + str(step.variables["name"]) + "}"
            spec: dict[str, Any] = {"text": text}
            if (
                previous is not None
                and previous.screen_action
                and previous.screen_action.get("action") == "click"
                and _is_input(previous)
            ):
                label = _input_label(previous)
                if label and out and out[-1].get("click") in (label, _target(previous)):
                    out.pop()  # "type into" clicks the field itself
                if label:
                    spec["into"] = label
            out.append({"type": spec})
        elif kind == "key":
            out.append({"press": "+".join(action.get("keys", []))})
        elif kind == "scroll":
            scroll: dict[str, Any] = {
                "direction": action.get("direction", "down"),
                "amount": action.get("amount", 3),
            }
            if action.get("x") is not None:
                scroll["at"] = [round(float(action["x"]), 1), round(float(action["y"]), 1)]
            out.append({"scroll": scroll})
        elif kind == "drag":
            out.append(
                {
                    "drag": {
                        "from": {"at": [action["x1"], action["y1"]]},
                        "to": {"at": [action["x2"], action["y2"]]},
                    }
                }
            )
        # waits are left out: the scenario runner waits for the screen to settle after each step
        previous = step
    return out


def export_scenario(run: Run, out: Path) -> Path:
    header = run.header
    first_meta = next((s.meta for s in run.steps if s.meta.get("url")), {})
    if first_meta.get("url"):
        target: dict[str, Any] = {"url": first_meta["url"]}
    elif header.settings.get("command"):
        target = {"command": header.settings["command"]}
    elif header.settings.get("start_url"):
        target = {"url": header.settings["start_url"]}
    else:
        raise ExportError(
            f"{run.path}: the run records neither a page URL nor a launch command, so the scenario has no target"
        )
    data = {"name": header.task or header.run_id, "target": target, "steps": scenario_steps(run)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out
