"""A stand-in "model" that answers from a live page's DOM (for demos and end-to-end tests).

It is NOT Step3-VL: it plays a fixed plan (click this element, type that text, finish),
and for each click it reads the element's box from the DOM at request time and scales
its centre into the image the request carried, in the coordinate space it was told to
use. So it checks the whole coordinate chain (frame, sent image, model space) the same way
a real model's answer would go through it. It runs as the responder of
:class:`~guiagent.testing.fake_server.FakeModelServer`, on the server's thread, and
reaches the page on the page's own event loop.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any, Literal

import numpy as np
from loguru import logger
from PIL import Image
from pydantic import BaseModel

from guiagent.core.change import zoom_region
from guiagent.core.geometry import CoordSpace, Point, Rect, Size, sent_to_model
from guiagent.testing.fake_server import FakeReply, FakeRequest


class OracleStep(BaseModel):
    kind: Literal["click", "double_click", "type", "key", "finish", "fail", "raw"]
    selector: str | None = None  # a Playwright selector, for pointer actions
    text: str | None = None  # for type / finish / fail
    keys: list[str] | None = None
    raw: FakeReply | None = None  # answer this verbatim (e.g. a malformed reply)


class DomOracle:
    def __init__(
        self,
        page: Any,
        plan: list[OracleStep],
        loop: asyncio.AbstractEventLoop,
        space: CoordSpace = CoordSpace.IMAGE,
        *,
        from_history: bool = False,
    ) -> None:
        self.page = page
        # answer the step the request's history has reached (one tool turn per step done)
        # instead of the next one in order: a request sent again after a failure, maybe to
        # another server behind a router, gets the same answer
        self.from_history = from_history
        self.plan = list(plan)
        self.loop = loop
        self.space = space
        self.position = 0
        self.answers: list[FakeReply] = []
        self.last_click: Point | None = None  # CSS pixels: where the agent would zoom

    async def __call__(self, request: FakeRequest) -> FakeReply:
        if self.from_history:
            self.position = sum(1 for m in request.messages if m.get("role") == "tool")
        if self.position >= len(self.plan):
            reply = FakeReply(
                content="",
                reasoning="The plan is done.",
                tool_calls=[("finish", {"answer": "done"})],
            )
        else:
            step = self.plan[self.position]
            self.position += 1
            reply = await self._answer(step, request)
        self.answers.append(reply)
        return reply

    async def _on_page(self, coro: Any) -> Any:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def _answer(self, step: OracleStep, request: FakeRequest) -> FakeReply:
        if step.kind == "raw" and step.raw is not None:
            return step.raw
        if step.kind in ("click", "double_click"):
            point = await self._point_of(step.selector or "body", request)
            args = {"x": round(point.x, 3), "y": round(point.y, 3)}
            return FakeReply(
                reasoning=f"(stand-in) The target {step.selector} is at {args} in {self.space.value} space.",
                tool_calls=[(step.kind, args)],
            )
        if step.kind == "type":
            return FakeReply(
                reasoning="(stand-in) Typing.", tool_calls=[("type", {"text": step.text or ""})]
            )
        if step.kind == "key":
            return FakeReply(
                reasoning="(stand-in) Pressing keys.",
                tool_calls=[("key", {"keys": step.keys or ["enter"]})],
            )
        name = "finish" if step.kind == "finish" else "fail"
        field = "answer" if name == "finish" else "reason"
        return FakeReply(
            reasoning="(stand-in) Done.", tool_calls=[(name, {field: step.text or ""})]
        )

    async def _point_of(self, selector: str, request: FakeRequest) -> Point:
        async def locate() -> tuple[dict[str, float] | None, float]:
            box = await self.page.locator(selector).first.bounding_box()
            width = await self.page.evaluate("() => window.innerWidth")
            return box, float(width)

        box, viewport_width = await self._on_page(locate())
        if box is None:
            raise ValueError(f"stand-in model: {selector!r} is not visible on the page")
        sent = request.image_size or Size(int(viewport_width), int(viewport_width))
        view = await self._view_of(request)
        left, top, width = (view.left, view.top, view.width) if view else (0.0, 0.0, viewport_width)
        per_css_px = sent.width / width  # sent pixels per CSS pixel (dpr and resize folded in)
        css_centre = Point(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        self.last_click = css_centre
        centre = Point((css_centre.x - left) * per_css_px, (css_centre.y - top) * per_css_px)
        logger.debug("stand-in model: {} centre {} in a {} image", selector, centre, sent)
        return sent_to_model(centre, self.space, sent)

    async def _view_of(self, request: FakeRequest) -> Rect | None:
        """The part of the viewport (CSS pixels) the request's image shows, when it is the
        agent's 2x zoom around the last click rather than the whole viewport (None)."""
        image = request.image
        if self.last_click is None or image is None:
            return None

        async def shoot() -> tuple[bytes, float, float]:
            size = await self.page.evaluate("() => [window.innerWidth, window.innerHeight]")
            return await self.page.screenshot(), float(size[0]), float(size[1])

        png, width, height = await self._on_page(shoot())
        shot = Image.open(io.BytesIO(png)).convert("L")
        per_css = shot.width / width
        zoom = zoom_region(Size(int(width), int(height)), self.last_click, factor=2)
        sample = (160, max(1, round(160 * image.height / image.width)))
        sent = np.asarray(image.convert("L").resize(sample), dtype=np.float32)

        def distance(view: Rect) -> float:
            crop = shot.crop(
                (round(view.left * per_css), round(view.top * per_css),
                 round(view.right * per_css), round(view.bottom * per_css))
            )  # fmt: skip
            return float(np.abs(np.asarray(crop.resize(sample), dtype=np.float32) - sent).mean())

        return zoom if distance(zoom) < distance(Rect(0, 0, width, height)) else None
