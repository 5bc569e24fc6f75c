"""Exports of a run: an animated GIF, an MP4 (through ffmpeg), a scenario YAML
(guiagent.record.export_scenario) and a Playwright script (guiagent.record.export_playwright)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from guiagent.record.export_playwright import export_playwright
from guiagent.record.export_scenario import ExportError, export_scenario, scenario_data
from guiagent.record.trajectory import Run, StepRecord

__all__ = [
    "ExportError",
    "export_gif",
    "export_mp4",
    "export_playwright",
    "export_scenario",
    "marked_frame",
    "scenario_data",
]

GIF_WIDTH = 640
FRAME_MS = 800


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
