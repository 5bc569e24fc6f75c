"""The recording format: a run directory of ``run.json``, ``steps.jsonl`` and content-addressed frames.

A run directory holds:

- ``run.json``: the :class:`RunHeader`, written when the run starts and rewritten
  atomically (temp file + ``os.replace``) when it ends;
- ``steps.jsonl``: one :class:`StepRecord` per line, appended, flushed and fsync'ed per
  step, so a killed process loses at most the step it was writing;
- ``frames/<sha256-16hex>.<jpg|png>`` and ``crops/<sha256-16hex>.png``: images named by
  the hash of their file bytes, so the same pixels are written once and a reader can
  check a file against its name. JSON never carries base64.

Frames default to JPEG quality 90: measured here, a 1920x1080 screenshot encodes in
about 6 ms as JPEG q90 against about 31 ms as PNG compress_level=1 (50 ms at the default
level), which keeps the recorder inside the loop's per-step budget. Crops (small) are PNG.
See docs/RECORDING_FORMAT.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from loguru import logger
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT_VERSION = 1
RUN_FILE = "run.json"
STEPS_FILE = "steps.jsonl"
FRAMES_DIR = "frames"
CROPS_DIR = "crops"

# "interrupted" is never written: a reader reports it for a "running" run whose process is gone
RunStatus = Literal["running", "finished", "failed", "stopped", "crashed", "interrupted"]
StepOutcome = Literal["ok", "invalid", "denied", "error", "dry_run", "healed", "failed"]


class RecordingError(Exception):
    """A recording cannot be read or written as asked; the message names the file (and line)."""

    def __init__(self, message: str, run: Run | None = None) -> None:
        super().__init__(message)
        self.run = run  # what could be loaded before the damage, when anything could


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    url: str | None = None
    name: str | None = None
    profile: str | None = None


class RunHeader(BaseModel):
    model_config = ConfigDict(extra="allow")
    format_version: int = FORMAT_VERSION
    run_id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    task: str = ""
    surface: str = ""
    started_at: float = Field(default_factory=time.time)
    ended_at: float | None = None
    model: ModelInfo = Field(default_factory=ModelInfo)
    settings: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus = "running"
    stop_reason: str | None = None
    answer: str | None = None
    step_count: int = 0
    # who writes the run, so a reader can tell a live run from one whose process was killed
    pid: int | None = None
    process_started: str | None = None  # the pid's start time (/proc/<pid>/stat, clock ticks)
    host: str | None = None
    heartbeat_at: float | None = None  # rewritten with every step


class StepRecord(BaseModel):
    """One step of a run. Points: ``action`` is in model space, ``screen_action`` is what ran."""

    model_config = ConfigDict(extra="allow")
    index: int
    started_at: float = Field(default_factory=time.time)
    frame: str | None = None
    frame_size: list[int] | None = None
    sent_size: list[int] | None = None
    meta: dict[str, Any] = Field(default_factory=dict)
    request: dict[str, Any] = Field(default_factory=dict)
    reply: dict[str, Any] | None = None
    action: dict[str, Any] | None = None
    screen_action: dict[str, Any] | None = None
    trail: list[dict[str, Any]] = Field(default_factory=list)
    invalid: str | None = None
    policy: dict[str, Any] | None = None
    redactions: list[dict[str, Any]] = Field(default_factory=list)
    evidence: dict[str, Any] | None = None
    outcome: StepOutcome = "ok"
    error: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)
    variables: dict[str, Any] = Field(default_factory=dict)
    sub_steps: list[dict[str, Any]] = Field(default_factory=list)
    healed: dict[str, Any] | None = None

    @property
    def action_name(self) -> str | None:
        act = self.screen_action or self.action
        return str(act.get("action")) if act else None

    def frame_point(self, which: int = 0) -> tuple[float, float] | None:
        """The ``which``-th point of the action in frame pixels, from the trail."""
        if len(self.trail) > which:
            return as_point(self.trail[which].get("frame"))
        return None

    def screen_point(self, which: int = 0) -> tuple[float, float] | None:
        if len(self.trail) > which and self.trail[which].get("screen") is not None:
            return as_point(self.trail[which]["screen"])
        if self.screen_action and which == 0 and self.screen_action.get("x") is not None:
            return as_point([self.screen_action.get("x"), self.screen_action.get("y")])
        return None


TRAIL_KEYS = ("model", "sent", "frame", "screen")


def as_point(value: Any) -> tuple[float, float] | None:
    """``[x, y]`` of finite numbers as a tuple; None for anything else."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return None
    if not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in value):
        return None
    x, y = float(value[0]), float(value[1])
    return (x, y) if math.isfinite(x) and math.isfinite(y) else None


def step_shape_problem(step: StepRecord) -> str | None:
    """What is malformed in a step's trail or sizes (fields pydantic leaves loose), or None."""
    for n, point in enumerate(step.trail):
        for key in TRAIL_KEYS:
            value = point.get(key)
            if value is not None and as_point(value) is None:
                return f"trail point {n}: {key} is not [x, y]: {value!r:.60}"
    for name in ("frame_size", "sent_size"):
        size = getattr(step, name)
        if size is not None and (len(size) != 2 or min(size) < 1):
            return f"{name} is not [width, height]: {size!r:.60}"
    return None


class Run(BaseModel):
    """A loaded recording."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    header: RunHeader
    steps: list[StepRecord] = Field(default_factory=list)
    path: Path
    load_errors: list[str] = Field(default_factory=list)

    def file(self, relative: str) -> Path:
        """A file of this run; a path that leaves the run folder (``..``, absolute, a symlink
        out) is refused: a crafted ``steps.jsonl`` must not make a reader open other files."""
        return confined(self.path, relative)

    def frame_image(self, step: StepRecord) -> Image.Image | None:
        """The frame a step saw, as RGB, or None when the step has none."""
        if not step.frame:
            return None
        path = self.file(step.frame)
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except (OSError, ValueError) as exc:
            raise RecordingError(f"{path}: cannot read frame of step {step.index}: {exc}") from exc


# --- writing --------------------------------------------------------------------------


def confined(root: Path, relative: str) -> Path:
    """``root / relative``, refused (RecordingError) when it resolves outside ``root``."""
    if "\x00" in relative:
        raise RecordingError(f"{root}: a file path with a NUL byte: {relative!r}")
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise RecordingError(f"{root}: file path {relative!r} leaves the run folder; refused")
    return target


def _private_file(path: Path, mode: str = "wb") -> Any:
    """Open a new file readable by its owner only (0600), whatever the umask."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, 0o600), mode)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with _private_file(tmp) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def encode_image(image: Image.Image, fmt: str = "jpg", quality: int = 90) -> tuple[bytes, str]:
    """Encode for the recording; returns (bytes, extension)."""
    fmt = fmt.lower()
    buf = io.BytesIO()
    if fmt in ("jpg", "jpeg"):
        image.convert("RGB").save(buf, format="JPEG", quality=quality)
        return buf.getvalue(), "jpg"
    if fmt == "png":
        image.save(buf, format="PNG", compress_level=1)
        return buf.getvalue(), "png"
    raise ValueError(f"unsupported frame format {fmt!r}: use 'jpg' or 'png'")


def content_name(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


class Recorder:
    """Writes one run directory. One writer; calls are serialised by a lock."""

    def __init__(
        self,
        run_dir: Path | str,
        header: RunHeader,
        frame_format: str = "jpg",
        quality: int = 90,
        redact: Callable[[Any], Any] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        # applied to every record written (steps, run.json): the last net for secrets
        self.redact: Callable[[Any], Any] = redact or (lambda data: data)
        self.header = header
        self.frame_format = frame_format
        self.quality = quality
        self._lock = threading.Lock()
        self._known: set[str] = set()
        self._finished = False
        try:
            # screenshots live here: readable by the owner only
            for folder in (self.run_dir, self.run_dir / FRAMES_DIR, self.run_dir / CROPS_DIR):
                if not folder.is_dir():
                    folder.mkdir(mode=0o700, parents=True)
                    os.chmod(folder, 0o700)  # whatever the umask
        except OSError as exc:
            raise RecordingError(f"{self.run_dir}: cannot create the run directory: {exc}") from exc
        if (self.run_dir / STEPS_FILE).exists() and (self.run_dir / STEPS_FILE).stat().st_size > 0:
            raise RecordingError(
                f"{self.run_dir / STEPS_FILE}: a recording already exists here; pick a new directory"
            )
        self._steps = _private_file(self.run_dir / STEPS_FILE, "ab")  # kept open for the run
        header.pid = os.getpid()
        header.process_started = process_start_time(header.pid)
        header.host = socket.gethostname()
        header.heartbeat_at = time.time()
        self._write_header()
        logger.debug("recording run {} to {}", header.run_id, self.run_dir)

    def _write_header(self) -> None:
        data = self.redact(self.header.model_dump(mode="json"))
        _atomic_write(
            self.run_dir / RUN_FILE, json.dumps(data, indent=2, ensure_ascii=False).encode()
        )

    def _save_bytes(self, folder: str, data: bytes, ext: str) -> str:
        relative = f"{folder}/{content_name(data)}.{ext}"
        with self._lock:
            if relative in self._known:
                return relative
            path = self.run_dir / relative
            if not path.exists():
                # temp + rename: a killed writer never leaves a half file under a valid name
                tmp = path.with_name(f".{path.name}.tmp")
                with _private_file(tmp) as fh:
                    fh.write(data)
                os.replace(tmp, path)
            self._known.add(relative)
        return relative

    def save_frame(
        self, image: Image.Image, fmt: str | None = None, encoded: bytes | None = None
    ) -> str:
        """Save a frame once (content-addressed) and return its path relative to the run dir.
        ``encoded``: ``image`` already encoded in the recording's format and quality (the
        JPEG a browser captured and the model was sent), written as is."""
        if encoded is not None and fmt is None and self.jpeg:
            return self._save_bytes(FRAMES_DIR, encoded, "jpg")
        data, ext = encode_image(image, fmt or self.frame_format, self.quality)
        return self._save_bytes(FRAMES_DIR, data, ext)

    @property
    def jpeg(self) -> bool:
        return self.frame_format.lower() in ("jpg", "jpeg")

    def save_crop(
        self, image: Image.Image, box: tuple[float, float, float, float] | list[float]
    ) -> str:
        """Save the ``box`` (x1, y1, x2, y2, frame pixels, clamped to the image) as a PNG crop."""
        x1, y1, x2, y2 = (round(v) for v in box)
        x1, x2 = sorted((max(0, min(image.width, x1)), max(0, min(image.width, x2))))
        y1, y2 = sorted((max(0, min(image.height, y1)), max(0, min(image.height, y2))))
        if x2 - x1 < 1 or y2 - y1 < 1:
            raise ValueError(
                f"crop box {list(box)} is empty on a {image.width}x{image.height} image"
            )
        data, ext = encode_image(image.crop((x1, y1, x2, y2)), "png")
        return self._save_bytes(CROPS_DIR, data, ext)

    def append(self, step: StepRecord) -> None:
        line = (
            json.dumps(self.redact(step.model_dump(mode="json")), ensure_ascii=False).encode()
            + b"\n"
        )
        with self._lock:
            if self._finished:
                raise RecordingError(
                    f"{self.run_dir}: recording already finished; cannot append step {step.index}"
                )
            self._steps.write(line)
            self._steps.flush()
            os.fsync(self._steps.fileno())
            self.header.step_count += 1
            self.header.heartbeat_at = time.time()
            self._write_header()

    def finish(
        self, status: RunStatus, stop_reason: str | None = None, answer: str | None = None
    ) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self.header.status = status
            self.header.stop_reason = stop_reason
            if answer is not None:
                self.header.answer = answer
            self.header.ended_at = time.time()
            self._steps.close()
            self._write_header()
        logger.debug("run {} {} ({} steps)", self.header.run_id, status, self.header.step_count)

    @property
    def finished(self) -> bool:
        return self._finished

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._finished:
            return
        if exc is None:
            self.finish("stopped", stop_reason="recorder closed without finish()")
        elif isinstance(exc, (KeyboardInterrupt,)) or type(exc).__name__ == "CancelledError":
            self.finish("stopped", stop_reason=f"interrupted: {type(exc).__name__}")
        else:
            self.finish("crashed", stop_reason=f"{type(exc).__name__}: {exc}")


# --- reading --------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()


def process_start_time(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot), to tell a reused pid apart; Linux only."""
    fields = _proc_stat(pid)
    return fields[19] if fields and len(fields) > 19 else None


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` is still the live process that started at ``started``."""
    if not Path("/proc/self/stat").exists():  # no procfs: the pid alone
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True
    fields = _proc_stat(pid)
    if not fields or fields[0] in ("Z", "X"):  # gone, or killed and not yet reaped
        return False
    return started is None or len(fields) <= 19 or fields[19] == started


def interruption(header: RunHeader) -> str | None:
    """Why a ``running`` run is in fact over (its writer is gone), or None."""
    if header.status != "running" or header.pid is None:
        return None
    if header.host and header.host != socket.gethostname():
        return None  # another machine's run: it cannot be judged from here
    if process_alive(header.pid, header.process_started):
        return None
    return f"the process (pid {header.pid}) ended without finishing the recording"


def _as_interrupted(header: RunHeader, steps: list[StepRecord] | None) -> RunHeader:
    why = interruption(header)
    if why is None:
        return header
    count = len(steps) if steps is not None else header.step_count
    last = steps[-1].index if steps else None
    where = f"last complete step {last}" if last is not None else "no complete step"
    return header.model_copy(
        update={
            "status": "interrupted",
            "stop_reason": f"interrupted: {why}; {where}",
            "step_count": count,
            "ended_at": header.heartbeat_at,
        }
    )


def read_header(run_path: Path | str) -> RunHeader:
    """Only a run's header (for listings), with a killed run shown as ``interrupted``.

    Raises :class:`RecordingError` naming the file when run.json is missing or damaged.
    """
    errors: list[str] = []
    path = Path(run_path)
    if not (path / RUN_FILE).is_file():
        raise RecordingError(f"{path / RUN_FILE}: missing")
    header = _read_header(path, errors, strict=True)
    assert header is not None
    return _as_interrupted(header, None)


def _read_header(run_path: Path, errors: list[str], strict: bool) -> RunHeader | None:
    path = run_path / RUN_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"{path}: not valid JSON ({exc})"
        if strict:
            raise RecordingError(msg) from exc
        errors.append(msg)
        return None
    if not isinstance(raw, dict):
        msg = f"{path}: expected a JSON object, got {type(raw).__name__}"
        if strict:
            raise RecordingError(msg)
        errors.append(msg)
        return None
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise RecordingError(
            f"{path}: format_version {version!r} is not supported; this guiagent reads versions 1..{FORMAT_VERSION}"
            " (upgrade guiagent to read newer recordings)"
        )
    try:
        return RunHeader.model_validate(raw)
    except ValidationError as exc:
        msg = f"{path}: invalid header: {exc.errors(include_url=False)[0]['loc']} {exc.errors()[0]['msg']}"
        if strict:
            raise RecordingError(msg) from exc
        errors.append(msg)
        return None


def _read_steps(run_path: Path, errors: list[str]) -> list[StepRecord]:
    path = run_path / STEPS_FILE
    steps: list[StepRecord] = []
    if not path.exists():
        errors.append(f"{path}: missing (no step was recorded)")
        return steps
    data = path.read_bytes()
    lines = data.split(b"\n")
    truncated_tail = not data.endswith(b"\n") and data != b""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        is_last = number == len(lines)
        try:
            raw = json.loads(line.decode("utf-8"))
            if not isinstance(raw, dict):
                raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
            step = StepRecord.model_validate(raw)
            problem = step_shape_problem(step)
            if problem is not None:
                errors.append(f"{path}:{number}: step {step.index}: {problem} (ignored)")
                step = step.model_copy(update={"trail": [], "frame_size": None, "sent_size": None})
            steps.append(step)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first["loc"])
            errors.append(f"{path}:{number}: invalid step: {loc}: {first['msg']}")
        except (UnicodeDecodeError, ValueError) as exc:
            kind = (
                "truncated line (the writer stopped mid-step)"
                if is_last and truncated_tail
                else "corrupt line"
            )
            errors.append(f"{path}:{number}: {kind}: {exc}")
    return steps


def load(path: Path | str, strict: bool = False) -> Run:
    """Read a run directory (or its run.json).

    Damage (a truncated or corrupt line, an unreadable run.json) is listed in
    ``Run.load_errors`` with file and line, and every readable step is still returned;
    with ``strict=True`` the first damage raises :class:`RecordingError` (the partial run is
    on ``.run``). A missing run.json means the process died before writing it: the run
    is rebuilt from steps.jsonl with status ``"crashed"``. An unknown format_version
    always raises.
    """
    run_path = Path(path)
    if run_path.is_file() and run_path.name in (RUN_FILE, STEPS_FILE):
        run_path = run_path.parent
    if not run_path.is_dir():
        raise RecordingError(f"{run_path}: no such run directory")
    if not (run_path / RUN_FILE).exists() and not (run_path / STEPS_FILE).exists():
        raise RecordingError(
            f"{run_path}: not a recording (neither {RUN_FILE} nor {STEPS_FILE} is there)"
        )
    errors: list[str] = []
    header = _read_header(run_path, errors, strict)
    steps = _read_steps(run_path, errors)
    if header is None:
        header = RunHeader(
            run_id=run_path.name,
            status="crashed",
            stop_reason=f"{RUN_FILE} missing or unreadable: the process stopped before writing it",
            started_at=steps[0].started_at if steps else 0.0,
            step_count=len(steps),
        )
    header = _as_interrupted(header, steps)
    run = Run(header=header, steps=steps, path=run_path, load_errors=errors)
    for err in errors:
        logger.warning("recording damage: {}", err)
    if strict and errors:
        raise RecordingError(
            errors[0] + (f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""), run=run
        )
    return run
