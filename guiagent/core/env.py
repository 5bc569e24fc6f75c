"""The Environment seam: observe() a Frame, act() on a screen-space action, close()."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel

from guiagent.core.actions import BaseAction
from guiagent.core.geometry import FrameTransform, Rect, Size


@dataclass(frozen=True)
class EncodedImage:
    """The bytes an image was decoded from, when the surface handed it over encoded."""

    data: bytes
    format: str  # "JPEG"
    quality: int
    image: Image.Image  # the decoded image these bytes are (by identity)


@dataclass
class Frame:
    """Captured pixels (RGB, device pixels) and where they sit on the screen."""

    image: Image.Image
    transform: FrameTransform
    surface: str  # "browser" | "desktop" | "image"
    captured_at: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)  # url, title, monitor, ...
    _digest: str | None = field(default=None, repr=False)
    # the capture's own encoding of ``image`` (a JPEG from the browser at the size sent to
    # the model): sent and recorded as is when the image was not replaced since
    encoded: EncodedImage | None = field(default=None, repr=False, compare=False)

    def encoded_as(self, fmt: str, quality: int) -> bytes | None:
        """The captured bytes of this very image in ``fmt`` at ``quality``; None when there are
        none, they are another format or quality, or the image was replaced (a redaction or a
        zoom makes a new image: frames are never modified in place)."""
        encoded = self.encoded
        if encoded is None or encoded.image is not self.image:
            return None
        wanted = "JPEG" if fmt.upper() in ("JPG", "JPEG") else fmt.upper()
        return encoded.data if (encoded.format, encoded.quality) == (wanted, quality) else None

    @property
    def size(self) -> Size:
        return Size(self.image.width, self.image.height)

    @property
    def digest(self) -> str:
        """Content hash of the pixels (sha1 hex), computed once."""
        if self._digest is None:
            self._digest = hashlib.sha1(self.image.tobytes()).hexdigest()
        return self._digest

    def array(self) -> np.ndarray:
        return np.asarray(self.image)

    @classmethod
    def from_image(cls, image: Image.Image, surface: str = "image", **meta: Any) -> Frame:
        image = image.convert("RGB")
        return cls(
            image=image,
            transform=FrameTransform(Size(image.width, image.height)),
            surface=surface,
            meta=meta,
        )


class ActResult(BaseModel):
    ok: bool = True
    detail: str = ""


class SurfaceGoneError(RuntimeError):
    """The surface went away or refused an action (browser crashed, X server gone, ...)."""


@runtime_checkable
class Environment(Protocol):
    """One surface the agent sees and acts on. Actions arrive in screen coordinates."""

    surface: str

    async def observe(self) -> Frame: ...

    async def act(self, action: BaseAction) -> ActResult: ...

    async def close(self) -> None: ...


# --- capabilities: what some environments offer beyond observe/act ------------------------
# Checked with isinstance (runtime-checkable), never by probing attribute names.


@runtime_checkable
class DomSource(Protocol):
    """An environment that can list the page's elements (a browser)."""

    async def dom_elements(
        self, in_viewport: bool = True, accessible_names: bool = True
    ) -> list[dict[str, Any]]: ...


@runtime_checkable
class FocusSource(Protocol):
    """An environment that can say which element has the keyboard focus (a browser)."""

    async def focused_element(self) -> dict[str, Any] | None: ...


@runtime_checkable
class FocusProbe(Protocol):
    """An environment that can say whether the focused text field is at a point (a browser)."""

    async def focused_at(self, x: float, y: float) -> bool: ...


@runtime_checkable
class EncodedSource(Protocol):
    """An environment that can capture its frame already encoded as JPEG, with
    :attr:`Frame.encoded` set, when the model is sent the frame at its own size
    (``fit(size) == size``): a browser page over CDP. No lossless capture, decode and
    re-encode. None when it cannot this time (then ``observe()``)."""

    async def observe_encoded(self, fit: Callable[[Size], Size], quality: int) -> Frame | None: ...


@runtime_checkable
class AccessibleFocus(Protocol):
    """An environment that can say, from the accessibility bus, which object of the
    application at a screen point has the keyboard focus and what it holds (a desktop with
    AT-SPI): ``{"app", "focused", "at_point", "chain"}``, each object ``{role, name, states,
    box, count, text}`` (a password text: no ``text``; ``at_point``: the text field there),
    ``chain`` the objects at the point, deepest first (``{role, name, states}``); None when
    it cannot tell there."""

    async def accessible_focus(self, x: float, y: float) -> dict[str, Any] | None: ...


@runtime_checkable
class FullPageSource(Protocol):
    """An environment whose frame may be the whole document, not only the viewport."""

    full_page: bool


@runtime_checkable
class PageHolder(Protocol):
    """An environment driving one Playwright page (``page.goto`` opens a URL)."""

    page: Any


@runtime_checkable
class HoverHint(Protocol):
    """A page whose pointer presses wait for hover styles to be drawn (a browser), and that
    can be told, from a page read made just before the press, whether any can be: a caller
    that reads the page anyway adds ``hover_styled_js`` (an expression) to its read and
    passes the answer to ``note_hover_styled``, and the next press spares its own check."""

    hover_styled_js: str

    def note_hover_styled(self, styled: bool) -> None: ...


@runtime_checkable
class X11Surface(Protocol):
    """An environment on an X display (its name, e.g. ``:99``, lists windows and titles)."""

    display: str | None


@runtime_checkable
class WindowList(Protocol):
    """An environment that can list its top-level windows: ``{"title", "x", "y", "width",
    "height"}`` each, in screen points (a desktop)."""

    async def windows(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class KillSwitchHolder(Protocol):
    """An environment that checks a kill switch between any two input events it sends."""

    killswitch: Any


@runtime_checkable
class QuietSource(Protocol):
    """An environment that can tell when its surface has stopped changing, from events
    rather than pixels (a browser page): None when it cannot tell this time."""

    async def wait_quiet(self, timeout_s: float) -> dict[str, Any] | None: ...


@runtime_checkable
class ChangeSource(Protocol):
    """An environment that can tell whether its surface may have changed: a token that
    stays the same while nothing that could change a pixel happened (a browser page);
    None when it cannot tell (something keeps drawing: video, canvas, animations...)."""

    async def change_token(self) -> str | None: ...


@runtime_checkable
class StillSource(Protocol):
    """An environment that can wait, cheaply, until its screen (or ``region`` of it, screen
    points) stays still for ``quiet_ms`` (a desktop: X DAMAGE events and grayscale
    thumbnails of small grabs): ``{"settled", "waited_ms", "polls", "how"}``, or None when
    it cannot tell this time."""

    async def wait_still(
        self, quiet_ms: float, timeout_s: float, region: Rect | None = None
    ) -> dict[str, Any] | None: ...


def dom_of(env: object) -> DomSource | None:
    return env if isinstance(env, DomSource) else None


def display_of(env: object) -> str | None:
    """The X display an environment is on, or None."""
    if isinstance(env, X11Surface) and isinstance(env.display, str) and env.display:
        return env.display
    return None
