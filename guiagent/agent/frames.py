"""What the loop sees each turn: the frame and the page's elements read at once, and in a
browser the JPEG the model is sent, straight from Chromium, when redaction needs no pixels.

The JPEG path (Chromium's JPEG of the viewport when the model is sent the frame at its own
size, decoded once, then sent and recorded as the very bytes captured; a frame sent smaller
stays lossless, see guiagent.envs.browser_capture) is taken only when redaction would
neither read nor paint pixels: no pixel pass in the redactor (the final OCR pass once
secrets are known, OCR, the bullet scan without a DOM), no zoom pending, and, once the DOM
snapshot is in, nothing to black out (a password field, secret text, a region). Otherwise
the frame is captured again, losslessly, with a fresh DOM snapshot, and redacted from those
pixels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from guiagent.agent.config import AgentConfig
from guiagent.agent.sensing import dom_snapshot, observe_settled
from guiagent.core.env import EncodedSource, Environment, Frame
from guiagent.core.geometry import Size
from guiagent.core.redact import Redactor

Dom = list[dict[str, Any]] | None


async def observe_with_dom(
    env: Environment,
    config: AgentConfig,
    redactor: Redactor,
    fit: Callable[[Size], Size],
    zoom_pending: bool = False,
) -> tuple[Frame, Dom]:
    """A settled frame and the page's elements, read in parallel (one round trip each).

    The frame carries the captured JPEG (:attr:`Frame.encoded`) only when redacting it with
    this DOM snapshot touches no pixel; else it is the lossless full-resolution frame."""
    capture: Callable[[], Awaitable[Frame]] = env.observe
    encoded = isinstance(env, EncodedSource) and encoded_allowed(config, redactor, zoom_pending)
    if encoded:
        capture = _encoded_capture(env, fit, config.jpeg_quality)
    snapshot: dict[str, Dom] = {}

    async def frame_and_dom(capture: Callable[[], Awaitable[Frame]]) -> Frame:
        # the loop reads texts, values, boxes and the names the page script computes; the
        # accessibility tree's names (four more round trips) serve grounding, not the loop
        frame, snapshot["dom"] = await asyncio.gather(
            capture(), dom_snapshot(env, accessible_names=False)
        )
        return frame

    frame = await observe_settled(env, config, lambda: frame_and_dom(capture))
    dom = snapshot.get("dom")
    if frame.encoded is not None and needs_full_pixels(redactor, frame, dom):
        frame = await frame_and_dom(env.observe)  # the page again, losslessly, with its DOM
        dom = snapshot.get("dom")
    return frame, dom


def encoded_allowed(config: AgentConfig, redactor: Redactor, zoom_pending: bool) -> bool:
    """Whether this turn may take the captured JPEG (before the DOM says what is on screen):
    the model is sent JPEG, no zoom crops the frame, and no pixel pass is due."""
    return (
        config.image_format == "jpeg"
        and not zoom_pending
        and not redactor.reads_pixels(has_dom=True)
    )


def needs_full_pixels(redactor: Redactor, frame: Frame, dom: Dom) -> bool:
    """Whether redacting ``frame`` with ``dom`` reads or paints pixels (then from the lossless
    frame): no DOM (the page was navigating: the bullet scan runs), a pixel pass, windows to
    black out, or any other box to black out."""
    if dom is None or redactor.reads_pixels(has_dom=True) or redactor.window_titles:
        return True
    return bool(redactor.layout_boxes(frame, dom))


def _encoded_capture(
    env: EncodedSource, fit: Callable[[Size], Size], quality: int
) -> Callable[[], Awaitable[Frame]]:
    async def capture() -> Frame:
        frame = await env.observe_encoded(fit, quality)
        if frame is None:  # not this time (a moving view, no CDP): the lossless frame
            frame = await env.observe()  # type: ignore[attr-defined]
        return frame

    return capture
