"""One console run's live state: its spec, event channel, pause control and approvals.

Everything here lives on the web server's event loop. Each run keeps its whole event log, so
a browser tab that connects late (or reconnects) catches up, and a tab that goes away only
drops its own subscription: the run goes on.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from loguru import logger
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from guiagent.agent.control import RunControl
from guiagent.core.actions import BaseAction
from guiagent.core.env import ActResult, Environment, Frame
from guiagent.core.geometry import CoordSpace
from guiagent.core.redact import Redactor

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


async def _close_quietly(closer: Any, what: str) -> None:
    """Close an agent or environment at the end of a run; a failure there is logged, not raised."""
    if closer is None:
        return
    try:
        await closer.close()
    except Exception as exc:
        logger.warning("{}: closing failed: {}", what, exc)
