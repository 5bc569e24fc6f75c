"""The Environment seam: observe() a Frame, act() on a screen-space action, close()."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel

from guiagent.core.actions import BaseAction
from guiagent.core.geometry import FrameTransform, Size


@dataclass
class Frame:
    """Captured pixels (RGB, device pixels) and where they sit on the screen."""

    image: Image.Image
    transform: FrameTransform
    surface: str  # "browser" | "desktop" | "image"
    captured_at: float = field(default_factory=time.time)
    meta: dict[str, Any] = field(default_factory=dict)  # url, title, monitor, ...
    _digest: str | None = field(default=None, repr=False)

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
