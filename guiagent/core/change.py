"""Watching the screen: wait for it to settle, and notice when the agent goes round in circles.

Both work on pixels (frame digests and downscaled differences), never on the model; the loop
detector may also be given the text read near the last target (see :data:`NearText`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np
from PIL import Image

from guiagent.core.actions import BaseAction
from guiagent.core.env import Frame, QuietSource, StillSource
from guiagent.core.geometry import Point, Rect, Size

# --- frame difference -------------------------------------------------------------------

_TARGET_SIDE = 240  # long side of the grayscale thumbnail compared
_PIXEL_DELTA = 10  # a thumbnail pixel counts as changed past this many gray levels


def thumbnail(image: Image.Image) -> np.ndarray:
    """Downscaled grayscale (box filter) as int16, the unit frame_difference compares."""
    factor = max(1, round(max(image.width, image.height) / _TARGET_SIDE))
    small = image.reduce(factor) if factor > 1 else image
    return np.asarray(small.convert("L"), dtype=np.int16)


def bgra_thumbnail(raw: bytes | bytearray | memoryview, width: int, height: int) -> np.ndarray:
    """:func:`thumbnail` straight from a screen grab's BGRA bytes (mss): a view of the bytes,
    an area average down to the same size, then grayscale; no full-size copy or PIL image."""
    import cv2

    pixels = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 4)
    factor = max(1, round(max(width, height) / _TARGET_SIDE))
    small = pixels
    if factor > 1:
        size = (max(1, width // factor), max(1, height // factor))
        small = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGRA2GRAY).astype(np.int16)


def thumbnail_difference(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return 1.0
    return float(np.count_nonzero(np.abs(a - b) > _PIXEL_DELTA)) / a.size


def frame_difference(a: Frame, b: Frame) -> float:
    """Fraction (0..1) of changed pixels between two frames, on downscaled grayscale.

    Frames of different sizes are entirely different (1.0). A blinking caret or a
    moving pointer changes well under 0.002 of a full-screen frame.
    """
    if a.size != b.size:
        return 1.0
    if a.image is b.image:
        return 0.0
    return thumbnail_difference(thumbnail(a.image), thumbnail(b.image))


# Change near the last target, at full resolution: a field's new text or a counter's new
# number is a few hundred pixels, far under the whole-frame threshold, yet it is progress.
LOCAL_HALF = (320, 200)  # half width and height of the region compared around the target
_LOCAL_DELTA = 24  # gray levels for a pixel to count as changed
_LOCAL_MIN_PIXELS = 12
_CARET_SIDE = 3  # a changed area this thin on one side is a blinking caret or underline


def _real_change(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two grayscale arrays differ by more than a blinking caret."""
    ys, xs = np.nonzero(np.abs(a.astype(np.int16) - b.astype(np.int16)) > _LOCAL_DELTA)
    if len(xs) < _LOCAL_MIN_PIXELS:
        return False
    width, height = int(xs.max() - xs.min()) + 1, int(ys.max() - ys.min()) + 1
    return width > _CARET_SIDE and height > _CARET_SIDE


def changed_near(a: Image.Image, b: Image.Image, point: tuple[float, float] | None) -> bool:
    """Whether grayscale frames ``a`` and ``b`` differ, beyond a blinking caret, in the
    region around ``point`` (frame pixels), or anywhere when there is no point."""
    if a.size != b.size:
        return True
    if point is None:
        box = (0, 0, a.width, a.height)
    else:
        left, top, right, bottom = near_box(point, a.width, a.height)
        box = (int(left), int(top), int(right), int(bottom))
        if box[2] <= box[0] or box[3] <= box[1]:
            return False
    return _real_change(np.asarray(a.crop(box)), np.asarray(b.crop(box)))


def near_box(
    point: tuple[float, float], width: float, height: float
) -> tuple[float, float, float, float]:
    """The region (left, top, right, bottom, frame pixels) judged around ``point``."""
    x, y = point
    hw, hh = LOCAL_HALF
    return (max(0.0, x - hw), max(0.0, y - hh), min(width, x + hw), min(height, y + hh))


# The text a reader finds in one frame near a point (frame pixels; the region of near_box),
# or None when it cannot read there. The agent makes one per frame (the page's DOM text in a
# browser, OCR on the desktop): core only compares what it returns.
NearText = Callable[[tuple[float, float]], str | None]


def _normal(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())


# --- settling ---------------------------------------------------------------------------


@dataclass
class SettleResult:
    frame: Frame  # the last frame captured
    settled: bool
    waited_ms: float
    polls: int = 0
    # "pixels" (frames compared), "events" (the surface said it is quiet), "xdamage" or
    # "grabs" (a desktop's thumbnails, looked at on X DAMAGE events or polled)
    how: str = "pixels"


async def settle(
    observe: Callable[[], Awaitable[Frame]],
    threshold: float = 0.002,
    quiet_ms: float = 300,
    timeout_s: float = 5,
    poll_ms: float = 50,
) -> SettleResult:
    """Poll ``observe`` until the screen stays within ``threshold`` of a reference frame
    for ``quiet_ms``, or ``timeout_s`` passes (then ``settled`` is False).

    The comparison is against the frame that started the quiet window, not the previous
    poll, so a slow steady drift (a progress bar) does not pass for calm.
    """
    start = time.monotonic()
    frame = await observe()
    reference = thumbnail(frame.image)
    quiet_since = time.monotonic()
    polls = 1
    while True:
        now = time.monotonic()
        if (now - quiet_since) * 1000 >= quiet_ms:
            return SettleResult(frame, True, (now - start) * 1000, polls)
        if now - start >= timeout_s:
            return SettleResult(frame, False, (now - start) * 1000, polls)
        delay = min(poll_ms / 1000, max(timeout_s - (now - start), 0.0))
        await asyncio.sleep(delay)
        frame = await observe()
        polls += 1
        current = thumbnail(frame.image)
        if thumbnail_difference(reference, current) > threshold:
            reference = current
            quiet_since = time.monotonic()


async def settle_env(
    env: object,
    observe: Callable[[], Awaitable[Frame]],
    threshold: float = 0.002,
    quiet_ms: float = 300,
    timeout_s: float = 5,
    poll_ms: float = 50,
    ahead: Callable[[], Awaitable[object]] | None = None,
) -> SettleResult:
    """Settle ``env``: from its own events when it can tell (a browser page: network,
    timers, DOM mutations, animations, fonts; a desktop: X DAMAGE and grayscale thumbnails of
    grabs, see StillSource), then one frame; else by pixels (:func:`settle`).

    ``ahead``: a capture run beside a page's quiet wait, which ``observe`` reuses when the
    page says nothing changed since it began (its change token): a page already quiet, or
    one whose last change was painted before the capture, then costs one capture, not a
    wait followed by a capture.
    """
    if isinstance(env, StillSource):  # a desktop: DAMAGE events and small thumbnails
        start = time.monotonic()
        try:
            still = await env.wait_still(quiet_ms, timeout_s)
        except Exception:  # a surface error shows again in observe below
            still = None
        if still is not None:
            frame = await observe()
            waited = (time.monotonic() - start) * 1000
            polls = int(still.get("polls", 1)) + 1
            return SettleResult(frame, bool(still["settled"]), waited, polls, str(still["how"]))
    if isinstance(env, QuietSource):
        start = time.monotonic()
        waiting = env.wait_quiet(timeout_s)
        outcomes = await asyncio.gather(
            waiting, *([ahead()] if ahead is not None else []), return_exceptions=True
        )
        # a surface error (of the wait or of the capture ahead) shows again in observe below
        report = outcomes[0] if not isinstance(outcomes[0], BaseException) else None
        for outcome in outcomes:
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
        if report is not None:
            frame = await observe()
            waited = (time.monotonic() - start) * 1000
            return SettleResult(frame, bool(report.get("settled")), waited, 1, "events")
    return await settle(observe, threshold, quiet_ms, timeout_s, poll_ms)


# --- loop detection ---------------------------------------------------------------------


class Ladder(IntEnum):
    """What the loop should do about repetition, in increasing order of severity."""

    NONE = 0  # carry on
    WARN = 1  # tell the model it is repeating itself (LoopDetector.warning_text())
    ZOOM = 2  # resend an enlarged crop around the last point (zoom_region())
    STUCK = 3  # stop the run with reason "stuck"


def _signature(action: BaseAction | None) -> str:
    if action is None:
        return "none"
    fields = {name for pair in action.point_fields for name in pair}
    args = {k: v for k, v in action.arguments().items() if k not in fields}
    return action.name + json.dumps(args, sort_keys=True, default=str)


def action_key(action: BaseAction | None, grid: float = 8.0) -> str:
    """The action kind, its other arguments, and its points rounded to ``grid``."""
    if action is None:
        return "none"
    points = ";".join(f"{round(x / grid)},{round(y / grid)}" for x, y in action.points())
    return f"{_signature(action)}@{points}" if points else _signature(action)


@dataclass(frozen=True)
class _Entry:
    digest: str
    signature: str
    points: tuple[tuple[float, float], ...]
    has_action: bool
    thumb: np.ndarray | None = None
    gray: Image.Image | None = None  # full resolution, for change near the target
    text_near: NearText | None = None
    texts: dict[tuple[float, float], str | None] = field(default_factory=dict, compare=False)

    def text_at(self, point: tuple[float, float]) -> str | None:
        """The text read near ``point`` in this entry's frame, read once per point."""
        if self.text_near is None:
            return None
        if point not in self.texts:
            try:
                self.texts[point] = _normal(self.text_near(point))
            except Exception:  # a reader that fails says nothing; pixels still judge
                self.texts[point] = None
        return self.texts[point]

    def same_as(self, other: _Entry, tolerance: float) -> bool:
        if self.digest != other.digest or self.signature != other.signature:
            return False
        if len(self.points) != len(other.points):
            return False
        return all(
            abs(ax - bx) <= tolerance and abs(ay - by) <= tolerance
            for (ax, ay), (bx, by) in zip(self.points, other.points, strict=True)
        )


class LoopDetector:
    """Climbs a ladder when the same action repeats on the same screen, or when the
    screen stops changing whatever the agent does.

    Call :meth:`observe` once per step with the digest of the frame the action was
    decided on and the action taken (None when no action ran). An action repeated
    ``repeat_threshold`` times within the last ``window`` steps gives WARN, once more
    ZOOM, once more STUCK; ``still_threshold`` consecutive actions on an unchanged screen
    count the same way. Two points within ``tolerance`` (screen points, per axis) are the
    same point, so 412,300 and 413,301 are one click. A changed screen starts afresh
    unless the agent oscillates back to a screen it already repeated itself on.

    Exact digests differ on any pixel (a blinking caret, a clock). Pass ``frame=`` too and
    a frame within ``same_screen`` (fraction of changed pixels, see frame_difference) of
    a recent one counts as that screen, unless the region around the last target (the
    last action's point, kept for typing and keys) changed by more than a blinking caret:
    a field's new text or a counter's new number is progress, however small. Pass
    ``text_near=`` too (a :data:`NearText` for this frame) and, only when the pixels say
    "no change", a different text read near the last target is progress as well.
    """

    def __init__(
        self,
        window: int = 6,
        repeat_threshold: int = 3,
        still_threshold: int = 4,
        tolerance: float = 8.0,
        same_screen: float = 0.002,
    ) -> None:
        if window < 1 or repeat_threshold < 2 or still_threshold < 2:
            raise ValueError("window must be >= 1 and thresholds >= 2")
        self.window = window
        self.repeat_threshold = repeat_threshold
        self.still_threshold = still_threshold
        self.tolerance = tolerance
        self.same_screen = same_screen
        self._history: deque[_Entry] = deque(maxlen=window)
        self._still_run = 0
        self.repeats = 0
        self.level = Ladder.NONE
        self.last_action: BaseAction | None = None
        self._target: tuple[float, float] | None = None  # frame pixels

    def reset(self) -> None:
        self._history.clear()
        self._still_run = 0
        self.repeats = 0
        self.level = Ladder.NONE
        self.last_action = None
        self._target = None

    def observe(
        self,
        frame_digest: str,
        action: BaseAction | None,
        frame: Frame | None = None,
        text_near: NearText | None = None,
    ) -> Ladder:
        # one grayscale conversion: the full-size gray judges change near the target, and
        # its reduction is the thumbnail the whole screen is compared on
        gray = frame.image.convert("L") if frame is not None else None
        thumb = thumbnail(gray) if gray is not None else None
        current = _Entry("", "", (), False, text_near=text_near)  # its text, read at most once
        if thumb is not None and gray is not None:
            own_digest = frame_digest
            for past in reversed(self._history):
                if (
                    past.thumb is None
                    or thumbnail_difference(past.thumb, thumb) > self.same_screen
                    or (past.gray is not None and changed_near(past.gray, gray, self._target))
                ):
                    continue
                if self._text_changed(past, current):  # the same pixels, other text: progress
                    text = current.text_at(self._target) if self._target else ""
                    frame_digest = (
                        f"{own_digest}+text:{hashlib.sha1(str(text).encode()).hexdigest()}"
                    )
                    continue  # an older screen with this text is still this screen
                frame_digest = past.digest
                break
        if frame is not None and action is not None and action.points():
            x, y = action.points()[0]
            target = frame.transform.screen_to_frame(Point(x, y))
            self._target = (target.x, target.y)
        entry = _Entry(
            digest=frame_digest,
            signature=_signature(action),
            points=tuple(action.points()) if action is not None else (),
            has_action=action is not None,
            thumb=thumb,
            gray=gray,
            text_near=text_near,
            texts=current.texts,
        )
        previous = self._history[-1] if self._history else None
        if previous is not None and previous.digest == frame_digest and action is not None:
            self._still_run += 1
        else:
            self._still_run = 1 if action is not None else 0
        self.repeats = 1 + sum(1 for e in self._history if e.same_as(entry, self.tolerance))
        self._history.append(entry)
        self.last_action = action
        score = max(
            self.repeats - self.repeat_threshold + 1, self._still_run - self.still_threshold + 1, 0
        )
        self.level = Ladder(min(score, int(Ladder.STUCK)))
        return self.level

    def _text_changed(self, past: _Entry, current: _Entry) -> bool:
        """Whether the text read near the last target differs (both frames read)."""
        if self._target is None or past.text_near is None or current.text_near is None:
            return False
        before = past.text_at(self._target)
        if before is None:
            return False
        after = current.text_at(self._target)
        return after is not None and after != before

    @property
    def last_point(self) -> tuple[float, float] | None:
        """The first point of the last action (screen coordinates as given), if any."""
        if self.last_action is None:
            return None
        points = self.last_action.points()
        return points[0] if points else None

    def warning_text(self) -> str:
        """What the loop tells the model when the ladder reads WARN (or worse)."""
        if self.last_action is not None and self.repeats >= self.repeat_threshold:
            what = f"you have done the same thing ({self.last_action.name}) {self.repeats} times on the same screen"
        else:
            what = f"the screen has not changed across your last {self._still_run} actions"
        return (
            f"Warning: {what}, and it had no visible effect. Do not repeat it. Look at the "
            "screenshot again: the target may be elsewhere, hidden, disabled or still loading. "
            "Try something different (another element, scrolling, the keyboard, waiting), or "
            "call fail if the task cannot be done."
        )

    def stuck_reason(self) -> str:
        return "stuck"


def zoom_region(frame_size: Size, point: Point | tuple[float, float], factor: float = 2) -> Rect:
    """A crop of ``1/factor`` of the frame on each axis, centred on ``point`` (frame
    pixels) and shifted to stay inside the frame: resent enlarged for a closer look."""
    if factor < 1:
        raise ValueError(f"zoom factor must be >= 1, got {factor}")
    px, py = (point.x, point.y) if isinstance(point, Point) else point
    width = frame_size.width / factor
    height = frame_size.height / factor
    left = min(max(px - width / 2, 0.0), frame_size.width - width)
    top = min(max(py - height / 2, 0.0), frame_size.height - height)
    return Rect(left, top, width, height)
