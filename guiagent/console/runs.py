"""The console's run manager: starts agent runs and replays, fans their events out to watchers.

Everything here lives on one event loop (the web server's): runs are asyncio tasks on it,
so the Playwright objects a run creates stay on the loop that made them. Each run keeps
its whole event log, so a browser tab that connects late (or reconnects) catches up, and
a tab that goes away only drops its own subscription: the run goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from PIL import Image, UnidentifiedImageError

from guiagent.agent.config import AgentConfig, RunResult
from guiagent.agent.policy import (
    CallbackApprover,
    Policy,
    PolicyError,
    Verdict,
    describe_action,
)
from guiagent.app import RunSettings, build_parts, make_agent
from guiagent.console.live import (
    MAX_FRAMES_PER_RUN,
    MAX_IMAGES,
    MAX_UPLOAD_BYTES,
    Approval,
    Channel,
    ConflictError,
    ConsoleControl,
    ConsoleError,
    ConsoleRun,
    EnvFactory,
    NotFoundError,
    RunKind,
    RunSpec,
    RunStatus,
    StillEnv,
    _close_quietly,
    encode_jpeg,
)
from guiagent.console.recordings import (
    ALLOWED_ABOUT,
    LOCAL_SCHEMES,
    SERVED_TYPES,
    RecordingsMixin,
    refuse_local_url,
)
from guiagent.core.actions import BaseAction
from guiagent.core.env import Environment, Frame
from guiagent.core.geometry import Point
from guiagent.core.killswitch import KillSwitch

if TYPE_CHECKING:
    from guiagent.agent.loop import Agent

__all__ = [  # what other modules import from here, wherever it now lives
    "ALLOWED_ABOUT",
    "LOCAL_SCHEMES",
    "MAX_FRAMES_PER_RUN",
    "MAX_IMAGES",
    "MAX_UPLOAD_BYTES",
    "SERVED_TYPES",
    "Approval",
    "Channel",
    "ConflictError",
    "ConsoleControl",
    "ConsoleError",
    "ConsoleRun",
    "EnvFactory",
    "NotFoundError",
    "RecordingsMixin",
    "RunKind",
    "RunManager",
    "RunSpec",
    "RunStatus",
    "StillEnv",
    "default_env_factory",
    "encode_jpeg",
    "refuse_local_url",
]


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


async def default_env_factory(spec: RunSpec) -> Environment:
    """A new headless Chromium page, or the X desktop (``spec.display`` or $DISPLAY)."""
    if spec.env == "desktop":
        from guiagent.envs.desktop import DesktopEnv

        return await DesktopEnv(display=spec.display).start()
    from guiagent.envs.browser import BrowserEnv

    return await BrowserEnv(start_url=spec.start_url, headless=True).start()


class RunManager(RecordingsMixin):
    """Starts runs and replays, answers approvals and questions, lists recordings."""

    def __init__(
        self,
        recordings_root: Path,
        *,
        default_model_url: str | None = None,
        env_factory: EnvFactory | None = None,
        agent_options: dict[str, Any] | None = None,
        settings: RunSettings | None = None,
        allow_file_urls: bool = False,
    ) -> None:
        """``settings``: skills, secrets, policy and kill switch of every run (default: as
        `guiagent run` has them without flags, from the GUIAGENT_* variables)."""
        self.recordings_root = Path(recordings_root)
        self.settings = settings or RunSettings.from_env()
        # skills and secrets are loaded once, now: a bad skill file stops the console at start,
        # and a run does not wait for them; every run gets its own kill switch
        self.parts = build_parts(self.settings)
        self.default_model_url = default_model_url
        self.env_factory: EnvFactory = env_factory or default_env_factory
        self.agent_options = dict(agent_options or {})  # extra AgentConfig fields for every run
        self.runs: dict[str, ConsoleRun] = {}
        self.images: OrderedDict[str, Frame] = OrderedDict()
        self._grounder: Any = None
        self._reports: dict[Path, int] = {}  # reports this console wrote: path -> mtime_ns
        self.allow_file_urls = allow_file_urls

    # --- runs -----------------------------------------------------------------------------

    def get(self, run_id: str) -> ConsoleRun:
        run = self.runs.get(run_id)
        if run is None:
            raise NotFoundError(f"no run with id {run_id!r}")
        return run

    def list_runs(self) -> list[dict[str, Any]]:
        return [r.summary() for r in sorted(self.runs.values(), key=lambda r: -r.created_at)]

    def _new_run_dir(self, label: str) -> Path:
        base = self.recordings_root / f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(label)}"
        path, n = base, 1
        while path.exists() or any(r.run_dir == path for r in self.runs.values()):
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path

    async def start(self, spec: RunSpec) -> ConsoleRun:
        if spec.start_url and not self.allow_file_urls:
            refuse_local_url(spec.start_url)
        model_url = spec.model_url or self.default_model_url
        if not model_url:
            raise ConsoleError("no model server: give a model URL (e.g. http://127.0.0.1:30000)")
        if spec.env == "browser" and not spec.start_url:
            raise ConsoleError("a browser run needs a start URL")
        if spec.policy_path:
            try:
                Policy.from_yaml(
                    spec.policy_path
                )  # a bad policy is the form's error, not the run's
            except PolicyError as exc:
                raise ConsoleError(str(exc)) from exc
        spec = spec.model_copy(update={"model_url": model_url})
        run_dir = self._new_run_dir(spec.task) if spec.record else None
        run = ConsoleRun(secrets.token_hex(6), "task", spec, run_dir)
        self.runs[run.id] = run
        run.publish("run", **run.summary())
        run.task = asyncio.create_task(self._run_task(run), name=f"console-run-{run.id}")
        return run

    async def _run_task(self, run: ConsoleRun) -> None:

        env: Environment | None = None
        agent: Agent | None = None
        try:
            env = await self.env_factory(run.spec)
            run.env = env
            spec = run.spec
            config = AgentConfig(
                **{
                    "settle_timeout_s": 1.0,
                    **self.agent_options,
                    "model_url": spec.model_url,
                    "model_name": spec.model_name,
                    "stream": True,
                    "max_steps": spec.max_steps,
                    "dry_run": spec.dry_run,
                    "policy_path": Path(spec.policy_path) if spec.policy_path else None,
                    "coord_space": spec.coord_space,
                    "record_dir": run.run_dir,
                }
            )
            agent = self.make_agent(run, env, config)
            run.redactor = agent.redactor
            run.status = "running"
            run.publish_state()
            await agent.run(spec.task)
        except asyncio.CancelledError:
            run.status = "stopped"
            run.result = {"status": "stopped", "stop_reason": run.control.stop_reason}
            run.publish("end", **run.result)
        except Exception as exc:  # the run fails; the console and other runs go on
            logger.error(
                "console run {} failed: {}", run.id, run.redact(f"{type(exc).__name__}: {exc}")
            )
            run.status = "error"
            run.result = {"status": "error", "stop_reason": f"{type(exc).__name__}: {exc}"}
            run.publish("error", message=run.result["stop_reason"])
            run.publish("end", **run.result)
        finally:
            self._cancel_approvals(run)
            run.env = None
            for closer in (agent, env):
                await _close_quietly(closer, f"console run {run.id}")
            run.publish_state()
            run.channel.close()

    def make_agent(self, run: ConsoleRun, env: Environment, config: AgentConfig) -> Agent:
        """The run's agent, assembled like `guiagent run`'s (guiagent.app): the same skills,
        secrets, policy and kill switch; approvals and events go to the console."""
        return make_agent(
            env,
            config,
            dataclasses.replace(self.parts, killswitch=KillSwitch()),
            approver=CallbackApprover(lambda a, v, f: self._approve(run, a, v, f)),
            control=run.control,
            on_event=lambda kind, data: self._on_event(run, kind, data),
        )

    def _on_event(self, run: ConsoleRun, kind: str, data: dict[str, Any]) -> Awaitable[None] | None:
        # "delta" is called synchronously from inside the model's HTTP stream: publish and return
        if kind == "delta":
            # only the prose: tool-call argument fragments may hold typed secrets
            if data.get("kind") in ("reasoning", "content"):
                run.publish(
                    "delta",
                    index=run.steps,
                    part=data["kind"],
                    text=run.redact(data.get("text", "")),
                )
            return None
        return self._on_async_event(run, kind, data)

    async def _on_async_event(self, run: ConsoleRun, kind: str, data: dict[str, Any]) -> None:
        if kind == "step":
            frame: Frame = data["frame"]
            run.steps = data["index"]
            run.last_frame = frame
            key = f"step-{data['index']}"
            run.store_frame(key, await asyncio.to_thread(encode_jpeg, frame.image))
            run.publish(
                "step",
                index=data["index"],
                frame=key,
                width=frame.size.width,
                height=frame.size.height,
                url=frame.meta.get("url"),
                title=frame.meta.get("title"),
            )
        elif kind == "reply":
            action = data.get("action")
            run.publish(
                "reply",
                index=data["index"],
                reasoning=run.redact(data.get("reasoning") or ""),
                action=action.name if action is not None else None,
                problem=data.get("problem"),
            )
        elif kind == "done":
            trail = data.get("trail") or []
            marker = trail[0].get("frame") if trail else None
            run.publish(
                "done",
                index=data["index"],
                outcome=data.get("outcome"),
                timings={k: round(v, 1) for k, v in (data.get("timings") or {}).items()},
                action=data.get("action"),
                marker=list(marker) if marker else None,
                policy=data.get("policy"),
            )
        elif kind == "end":
            result: RunResult = data["result"]
            run.status = result.status
            run.result = {
                "status": result.status,
                "answer": result.answer,
                "stop_reason": result.stop_reason,
                "steps": result.steps,
                "invalid_replies": result.invalid_replies,
                "recording": result.run_dir.name if result.run_dir else None,
            }
            run.publish("end", **run.result)

    async def _approve(
        self, run: ConsoleRun, action: BaseAction, verdict: Verdict, frame: Frame | None
    ) -> bool:
        if run.control.stop_requested:
            return False
        approval_id = secrets.token_hex(4)
        info: dict[str, Any] = {
            "id": approval_id,
            "run": run.id,
            "index": run.steps,
            "action": describe_action(action),
            "reason": verdict.reason,
            "rule": verdict.rule,
            "frame": None,
            "marker": None,
        }
        if frame is not None:
            key = f"ask-{approval_id}"
            run.store_frame(key, await asyncio.to_thread(encode_jpeg, frame.image))
            info.update(frame=key, width=frame.size.width, height=frame.size.height)
            points = action.points()
            if points:
                p = frame.transform.screen_to_frame(Point(*points[0]))
                info["marker"] = [round(p.x, 1), round(p.y, 1)]
        approval = Approval(approval_id, info)
        run.approvals[approval_id] = approval
        run.publish("ask", **info)
        try:
            approved = await approval.future
        finally:
            run.approvals.pop(approval_id, None)
        logger.info(
            "console run {}: {} {}", run.id, "approved" if approved else "denied", info["action"]
        )
        return approved

    def answer(self, run_id: str, approval_id: str, approve: bool) -> dict[str, Any]:
        run = self.get(run_id)
        approval = run.approvals.get(approval_id)
        if approval is None or approval.future.done():
            raise ConflictError(f"approval {approval_id!r} is not pending (already answered?)")
        approval.future.set_result(approve)
        run.publish("answered", id=approval_id, approved=approve)
        return {"id": approval_id, "approved": approve}

    def _cancel_approvals(self, run: ConsoleRun) -> None:
        for approval in list(run.approvals.values()):
            if not approval.future.done():
                approval.future.set_result(False)
                run.publish("answered", id=approval.id, approved=False)

    def pause(self, run_id: str) -> dict[str, Any]:
        run = self._active(run_id)
        if run.kind == "replay":
            raise ConflictError("a replay cannot be paused (stop it instead)")
        run.control.pause()
        run.publish_state()
        return run.summary()

    def resume(self, run_id: str) -> dict[str, Any]:
        run = self._active(run_id)
        run.control.resume()
        run.publish_state()
        return run.summary()

    def stop(self, run_id: str, reason: str = "stopped from the console") -> dict[str, Any]:
        run = self._active(run_id)
        run.control.stop(reason)
        if run.kind == "replay" and run.task is not None:
            run.task.cancel()  # a replay has no pause points: cancel it
        self._cancel_approvals(run)  # a run waiting for an answer must be able to stop
        run.publish_state()
        return run.summary()

    def _active(self, run_id: str) -> ConsoleRun:
        run = self.get(run_id)
        if not run.active:
            raise ConflictError(f"run {run_id} has ended ({run.status})")
        return run

    def frame(self, run_id: str, key: str) -> bytes:
        data = self.get(run_id).frames.get(key)
        if data is None:
            raise NotFoundError(f"run {run_id} has no frame {key!r} (or it was dropped)")
        return data

    def end_streams(self) -> None:
        """End all event streams now, so a server shutting down need not wait for open tabs."""
        for run in self.runs.values():
            run.channel.disconnect_all()

    async def close(self) -> None:
        """Stop every run and wait for them to end."""
        tasks = []
        for run in self.runs.values():
            if run.active:
                run.control.stop("the console is shutting down")
                self._cancel_approvals(run)
            if run.task is not None and not run.task.done():
                tasks.append(run.task)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=15)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)

    # --- questions about a screen -----------------------------------------------------------

    def add_image(self, data: bytes) -> dict[str, Any]:
        if len(data) > MAX_UPLOAD_BYTES:
            raise ConsoleError(f"image too large ({len(data)} bytes; at most {MAX_UPLOAD_BYTES})")
        try:
            with Image.open(io.BytesIO(data)) as im:
                image = im.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise ConsoleError(f"not an image the console can read: {exc}") from exc
        image_id = secrets.token_hex(6)
        self.images[image_id] = Frame.from_image(image)
        while len(self.images) > MAX_IMAGES:
            self.images.popitem(last=False)
        return {"id": image_id, "width": image.width, "height": image.height}

    def image_bytes(self, image_id: str) -> bytes:
        frame = self.images.get(image_id)
        if frame is None:
            raise NotFoundError(f"no uploaded image {image_id!r}")
        return encode_jpeg(frame.image)

    async def ask(
        self,
        question: str,
        *,
        image_id: str | None = None,
        run_id: str | None = None,
        model_url: str | None = None,
        local: bool = False,
    ) -> dict[str, Any]:
        """Answer a question about an uploaded image or a run's screen.

        With a model (given, the run's, or the console's default) and not ``local``, the
        model answers (visual question answering). Otherwise the local narration answers:
        the narrator on a live run's surface, else the text OCR reads in the image.
        """
        question = question.strip()
        if not question:
            raise ConsoleError("the question is empty")
        env: Environment | None = None
        if image_id:
            frame = self.images.get(image_id)
            if frame is None:
                raise NotFoundError(f"no uploaded image {image_id!r} (upload it again)")
        elif run_id:
            run = self.get(run_id)
            if run.last_frame is None:
                raise ConflictError(f"run {run_id} has no frame yet")
            frame = run.last_frame  # as the model saw it: already redacted
            env = run.env if run.active else None
            model_url = model_url or run.spec.model_url
        else:
            raise ConsoleError("ask about an uploaded image or a run's screen: give one")
        model_url = model_url or self.default_model_url
        if model_url and not local:
            answer = await self._ask_model(question, frame, model_url)
            return {"question": question, "answer": answer, "source": "model"}
        answer, source = await self._narrate(frame, env)
        return {"question": question, "answer": answer, "source": source}

    async def _ask_model(self, question: str, frame: Frame, model_url: str) -> str:
        from guiagent.agent.loop import Agent
        from guiagent.models.openai_client import ModelError

        agent = Agent(StillEnv(frame), AgentConfig(model_url=model_url))
        try:
            return await agent.ask(question, frame)
        except ModelError as exc:
            raise ConsoleError(f"the model could not answer: {exc}") from exc
        finally:
            await agent.close()

    def _local_grounder(self) -> Any:
        if self._grounder is None:
            from guiagent.grounding.local import LocalGrounder

            self._grounder = LocalGrounder()
        return self._grounder

    async def _narrate(self, frame: Frame, env: Environment | None) -> tuple[str, str]:
        """No model: the narrator on a live surface, else the text OCR reads in the frame."""
        if env is not None and getattr(env, "surface", None) in ("browser", "desktop"):
            try:
                from guiagent.narrate.narrator import Narrator

                narration = await Narrator(env, grounder=self._local_grounder()).narrate()
                return f"(local narration) {narration.text}", "narration"
            except Exception as exc:  # an unfinished or failing narrator: read the text instead
                logger.warning("local narration failed, reading the text instead: {}", exc)
        lines = await self._local_grounder().aread_text(frame)
        text = "; ".join(line.text for line in lines if line.text.strip())
        return (f"(text on screen) {text}" if text else "(no text found on this screen)"), "ocr"
