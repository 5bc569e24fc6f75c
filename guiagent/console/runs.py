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
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loguru import logger
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator

from guiagent.agent.config import AgentConfig, RunResult
from guiagent.agent.control import RunControl
from guiagent.agent.policy import (
    CallbackApprover,
    Policy,
    PolicyError,
    Verdict,
    describe_action,
)
from guiagent.app import RunSettings, build_parts, make_agent
from guiagent.core.actions import BaseAction
from guiagent.core.env import ActResult, Environment, Frame
from guiagent.core.geometry import CoordSpace, Point
from guiagent.core.killswitch import KillSwitch
from guiagent.core.redact import Redactor
from guiagent.record.trajectory import RUN_FILE, RecordingError, load, read_header

if TYPE_CHECKING:
    from guiagent.agent.loop import Agent

RunKind = Literal["task", "replay"]
RunStatus = Literal["starting", "running", "finished", "failed", "stopped", "error"]
EnvFactory = Callable[["RunSpec"], Awaitable[Environment]]

MAX_FRAMES_PER_RUN = 400
MAX_IMAGES = 32
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class ConsoleError(Exception):
    """A request the console cannot honour; ``status`` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFoundError(ConsoleError):
    status = 404


class ConflictError(ConsoleError):
    status = 409


class RunSpec(BaseModel):
    """What the run form sends."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=4000)
    env: Literal["browser", "desktop"] = "browser"
    start_url: str | None = None
    display: str | None = None
    model_url: str | None = None
    model_name: str | None = None
    max_steps: int = Field(default=30, ge=1, le=500)
    dry_run: bool = False
    policy_path: str | None = None
    coord_space: CoordSpace | None = None
    record: bool = True

    @field_validator("task")
    @classmethod
    def _task_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the task must not be blank")
        return value.strip()

    @field_validator(
        "start_url", "display", "model_url", "model_name", "policy_path", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value


class StillEnv:
    """An environment showing one still image: lets the model answer questions about a picture."""

    surface = "image"

    def __init__(self, frame: Frame) -> None:
        self.frame = frame

    async def observe(self) -> Frame:
        return self.frame

    async def act(self, action: BaseAction) -> ActResult:
        return ActResult(ok=False, detail="a still image cannot be acted on")

    async def close(self) -> None:
        return None


class Channel:
    """An append-only event log with live subscribers (one asyncio.Queue per watcher)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.closed = False

    def publish(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        event = {**data, "seq": len(self.events), "kind": kind, "time": time.time()}
        self.events.append(event)
        for queue in self._subscribers:
            queue.put_nowait(event)
        return event

    def close(self) -> None:
        self.closed = True
        self.disconnect_all()

    def disconnect_all(self) -> None:
        """End every watcher's stream (the server is going down); the log stays."""
        for queue in self._subscribers:
            queue.put_nowait(None)

    @property
    def watchers(self) -> int:
        return len(self._subscribers)

    async def subscribe(
        self, after: int = -1, heartbeat_s: float | None = None
    ) -> AsyncIterator[dict[str, Any] | None]:
        """Past events with ``seq > after``, then live ones until the channel closes.

        With ``heartbeat_s``, yields None after that long without an event (keep-alives).
        """
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            backlog = [e for e in self.events if e["seq"] > after]
            last = after
            for event in backlog:
                last = event["seq"]
                yield event
            if self.closed:
                return
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), heartbeat_s)
                except TimeoutError:
                    yield None
                    continue
                if event is None:
                    return
                if event["seq"] > last:
                    last = event["seq"]
                    yield event
        finally:
            self._subscribers.discard(queue)


class ConsoleControl(RunControl):
    """RunControl that says when the loop is really waiting (not just asked to pause)."""

    def __init__(self, on_wait: Callable[[bool], None]) -> None:
        super().__init__()
        self._on_wait = on_wait

    async def wait_if_paused(self) -> None:
        if not self.paused:
            return
        self._on_wait(True)
        try:
            await super().wait_if_paused()
        finally:
            self._on_wait(False)


class Approval:
    def __init__(self, approval_id: str, info: dict[str, Any]) -> None:
        self.id = approval_id
        self.info = info
        self.future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()


class ConsoleRun:
    """One run (an agent task or a replay) as the console sees it."""

    def __init__(self, run_id: str, kind: RunKind, spec: RunSpec, run_dir: Path | None) -> None:
        self.id = run_id
        self.kind: RunKind = kind
        self.spec = spec
        self.run_dir = run_dir
        self.status: RunStatus = "starting"
        self.waiting = False  # paused and actually waiting between two actions
        self.channel = Channel()
        self.control = ConsoleControl(self._waiting_changed)
        self.frames: OrderedDict[str, bytes] = OrderedDict()
        self.approvals: dict[str, Approval] = {}
        self.last_frame: Frame | None = None
        self.env: Environment | None = None  # while the run is live
        self.steps = 0
        self.created_at = time.time()
        self.result: dict[str, Any] | None = None
        self.task: asyncio.Task[None] | None = None
        # the agent's redactor once it is made; until then the built-in credential patterns.
        # Every event and summary leaving the console passes it.
        self.redactor = Redactor()

    def redact(self, text: str) -> str:
        return self.redactor.redact_text(text)

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running")

    def summary(self) -> dict[str, Any]:
        return self.redactor.redact_data(self._summary())

    def _summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_kind": self.kind,
            "task": self.spec.task,
            "env": self.spec.env,
            "status": self.status,
            "paused": self.control.paused,
            "waiting": self.waiting,
            "steps": self.steps,
            "created_at": self.created_at,
            "recording": self.run_dir.name if self.run_dir else None,
            "result": self.result,
            "pending_approvals": [a.info for a in self.approvals.values() if not a.future.done()],
            "watchers": self.channel.watchers,
        }

    def publish(self, kind: str, **data: Any) -> None:
        self.channel.publish(kind, self.redactor.redact_data(data))

    def publish_state(self) -> None:
        self.publish("state", status=self.status, paused=self.control.paused, waiting=self.waiting)

    def _waiting_changed(self, waiting: bool) -> None:
        self.waiting = waiting
        self.publish_state()

    def store_frame(self, key: str, data: bytes) -> None:
        self.frames[key] = data
        while len(self.frames) > MAX_FRAMES_PER_RUN:
            self.frames.popitem(last=False)


def encode_jpeg(image: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", text.lower()).strip("-")[:40] or "run"


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


async def default_env_factory(spec: RunSpec) -> Environment:
    """A new headless Chromium page, or the X desktop (``spec.display`` or $DISPLAY)."""
    if spec.env == "desktop":
        from guiagent.envs.desktop import DesktopEnv

        return await DesktopEnv(display=spec.display).start()
    from guiagent.envs.browser import BrowserEnv

    return await BrowserEnv(start_url=spec.start_url, headless=True).start()


class RunManager:
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


async def _close_quietly(closer: Any, what: str) -> None:
    """Close an agent or environment at the end of a run; a failure there is logged, not raised."""
    if closer is None:
        return
    try:
        await closer.close()
    except Exception as exc:
        logger.warning("{}: closing failed: {}", what, exc)
