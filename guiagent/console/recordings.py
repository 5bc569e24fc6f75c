"""The console's recordings: listing them, serving their files and reports, replaying them.

:class:`RecordingsMixin` is part of :class:`guiagent.console.runs.RunManager`; only images and
JSON are served from a recording, never a path leaving it.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any, Literal

from loguru import logger

from guiagent.console.live import (
    ConsoleError,
    ConsoleRun,
    EnvFactory,
    NotFoundError,
    RunSpec,
    _close_quietly,
)
from guiagent.core.env import Environment
from guiagent.record.trajectory import RUN_FILE, RecordingError, load, read_header

# what a recording folder may serve: pictures and data, never anything a browser runs
SERVED_TYPES = {
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".json": "application/json",
    ".jsonl": "application/json",
}
LOCAL_SCHEMES = ("file:", "chrome:", "chrome-extension:", "view-source:", "devtools:", "about:")
ALLOWED_ABOUT = ("about:blank",)


def refuse_local_url(url: str) -> None:
    """A start URL that would show local files or browser internals is refused (ConsoleError)."""
    lowered = url.strip().lower()
    if lowered in ALLOWED_ABOUT:
        return
    if lowered.startswith(LOCAL_SCHEMES) or lowered.startswith("/"):
        raise ConsoleError(
            f"start URL {url!r} would show local files or browser internals: refused "
            "(start the console with --allow-file-urls to allow file: URLs)",
            status=403,
        )


def _safe_name(name: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise NotFoundError(f"no recording named {name!r}")
    return name


class RecordingsMixin:
    """Recordings of a :class:`~guiagent.console.runs.RunManager`: list, serve, report, replay."""

    recordings_root: Path
    allow_file_urls: bool
    env_factory: EnvFactory
    runs: dict[str, ConsoleRun]
    _reports: dict[Path, int]

    # --- recordings -------------------------------------------------------------------------

    def recordings(self) -> list[dict[str, Any]]:
        root = self.recordings_root
        if not root.is_dir():
            return []
        out = []
        for path in root.iterdir():
            header_file = path / RUN_FILE
            if not header_file.is_file():
                continue
            try:
                header = read_header(path)  # a killed run shows as interrupted
            except (OSError, ValueError, RecordingError) as exc:
                out.append(
                    {
                        "name": path.name,
                        "task": "",
                        "status": "unreadable",
                        "error": str(exc),
                        "started_at": 0,
                    }
                )
                continue
            out.append(
                {
                    "name": path.name,
                    "task": header.task,
                    "surface": header.surface,
                    "status": header.status,
                    "steps": header.step_count,
                    "started_at": header.started_at,
                    "answer": header.answer,
                }
            )
        return sorted(out, key=lambda r: -float(r["started_at"] or 0))

    def _recording_dir(self, name: str) -> Path:
        path = self.recordings_root / _safe_name(name)
        if not (path / RUN_FILE).is_file():
            raise NotFoundError(f"no recording named {name!r} in {self.recordings_root}")
        return path

    async def report(self, name: str) -> Path:
        """The recording's report.html, (re)written when missing or older than the recording."""
        from guiagent.record.report import write_report

        path = self._recording_dir(name)
        if not path.resolve().is_relative_to(self.recordings_root.resolve()):
            raise NotFoundError(f"no recording named {name!r} in {self.recordings_root}")
        report = path / "report.html"
        sources = [p for p in (path / RUN_FILE, path / "steps.jsonl") if p.exists()]
        newest = max((p.stat().st_mtime for p in sources), default=0.0)
        # serve only a report this console wrote (an .html found in the folder may have been
        # planted there); rewrite it when the recording is newer
        written = self._reports.get(report.resolve())
        if (
            written is not None
            and report.is_file()
            and not report.is_symlink()
            and report.stat().st_mtime_ns == written
            and report.stat().st_mtime >= newest
        ):
            return report
        try:
            run = await asyncio.to_thread(load, path)
            if report.is_symlink():
                report.unlink()
            out = await asyncio.to_thread(write_report, run, report)
        except (RecordingError, OSError) as exc:
            raise ConsoleError(f"cannot write the report of {name}: {exc}") from exc
        self._reports[report.resolve()] = out.stat().st_mtime_ns
        return out

    def recording_file(self, name: str, relative: str) -> tuple[Path, str]:
        """A recording's image or JSON file and its media type. Anything else (HTML a page
        could plant to run with the console's origin), paths leaving the recording and
        symlinks pointing out of it are refused."""
        if "\x00" in relative:
            raise ConsoleError(f"a NUL byte in the file path {relative!r}")
        root = self._recording_dir(name).resolve()
        if not root.is_relative_to(self.recordings_root.resolve()):
            raise NotFoundError(f"no recording named {name!r} in {self.recordings_root}")
        target = (root / relative).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise NotFoundError(f"no file {relative!r} in recording {name!r}")
        media = SERVED_TYPES.get(target.suffix.lower())
        if media is None:
            raise ConsoleError(
                f"{relative!r}: only images and JSON are served from a recording", status=403
            )
        return target, media

    async def start_replay(
        self, name: str, mode: Literal["strict", "heal"] = "strict"
    ) -> ConsoleRun:
        path = self._recording_dir(name)
        try:
            recording = await asyncio.to_thread(load, path)
        except RecordingError as exc:
            raise ConsoleError(f"cannot read recording {name}: {exc}") from exc
        surface = recording.header.surface or "browser"
        url = next((s.meta.get("url") for s in recording.steps if s.meta.get("url")), None)
        if surface == "browser" and not url:
            raise ConsoleError("the recording names no page URL to replay on")
        if url and not self.allow_file_urls:
            refuse_local_url(url)  # a crafted recording must not open local files either
        spec = RunSpec(
            task=f"replay ({mode}) of {name}: {recording.header.task}",
            env="desktop" if surface == "desktop" else "browser",
            start_url=url,
            record=False,
        )
        run = ConsoleRun(secrets.token_hex(6), "replay", spec, None)
        self.runs[run.id] = run
        run.publish("run", **run.summary())
        run.task = asyncio.create_task(self._replay_task(run, recording, mode))
        return run

    async def _replay_task(
        self, run: ConsoleRun, recording: Any, mode: Literal["strict", "heal"]
    ) -> None:
        from guiagent.record.replay import replay

        env: Environment | None = None
        try:
            env = await self.env_factory(run.spec)
            run.status = "running"
            run.publish_state()
            grounder = None
            if mode == "heal":
                from guiagent.grounding.local import LocalGrounder

                grounder = LocalGrounder()
            from guiagent.agent.replay_act import executor_act  # the one step executor

            act = executor_act(env, None, None)
            report = await replay(recording, env, mode=mode, speed=0.0, grounder=grounder, act=act)
            run.steps = len(report.steps)
            for step in report.steps:
                run.publish("replay_step", **step.model_dump(mode="json"))
            run.status = "finished" if report.ok else "failed"
            run.result = {"status": run.status, "stop_reason": report.summary(), "steps": run.steps}
            run.publish("end", **run.result)
        except asyncio.CancelledError:
            run.status = "stopped"
            run.result = {"status": "stopped", "stop_reason": "stopped"}
            run.publish("end", **run.result)
        except Exception as exc:  # ReplayError, an env that would not start, ...
            logger.opt(exception=exc).error("console replay {} failed", run.id)
            run.status = "error"
            run.result = {"status": "error", "stop_reason": f"{type(exc).__name__}: {exc}"}
            run.publish("error", message=run.result["stop_reason"])
            run.publish("end", **run.result)
        finally:
            await _close_quietly(env, f"console replay {run.id}")
            run.publish_state()
            run.channel.close()
