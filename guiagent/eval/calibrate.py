"""Find out which coordinate convention a served model actually answers in.

A generated page of known targets (text buttons and icon-like shapes of several sizes,
spread over the frame) is rendered in headless Chromium and screenshotted. The model is
asked to click each target, one request per target; the prompt gives the image size but
never the coordinate space. Every answer is then read under each hypothesis (image
pixels, 0..1000, 0..1; a point, or a box taken as ``[x1, y1, x2, y2]`` or
``[x, y, w, h]`` and reduced to its centre) and scored against the true boxes.
"""

from __future__ import annotations

import asyncio
import html
import io
import re
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from loguru import logger
from PIL import Image
from playwright.async_api import Browser, async_playwright
from pydantic import BaseModel, Field

from guiagent.core.actions import PointShapeError
from guiagent.core.geometry import CoordSpace, Point, Rect, Size, model_bounds, model_to_sent
from guiagent.eval.browser import launch_chromium
from guiagent.eval.screenspot import image_message
from guiagent.models.budget import (
    DEFAULT_MAX_IMAGE_TOKENS,
    STEP3VL_RULE,
    ImageRule,
    encode_image,
    plan_image,
)
from guiagent.models.reply import Completion

BoxFormat = Literal["xyxy", "xywh"]
AnswerShape = Literal["point", "box", "none"]

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_BOX_KEYS = ("bbox", "box", "start_box", "bounding_box")
_POINT_KEYS = ("point", "coordinate", "coordinates", "position", "pos")


class CalibrationTarget(BaseModel):
    label: str  # unique words that name the target in its instruction
    kind: Literal["button", "icon"]
    instruction: str
    left: float
    top: float
    width: float
    height: float
    colour: str = "#2b6cb0"
    shape: Literal["square", "circle"] = "square"

    @property
    def rect(self) -> Rect:
        return Rect(self.left, self.top, self.width, self.height)


_BUTTONS = (
    "Save",
    "Open file",
    "Delete",
    "Print preview",
    "Export as PDF",
    "Help",
    "Sign in",
    "Next",
)
_ICONS = (
    ("red", "#d62828", "square"),
    ("green", "#2a9d8f", "circle"),
    ("orange", "#f77f00", "square"),
    ("purple", "#7b2cbf", "circle"),
    ("black", "#111111", "square"),
    ("pink", "#ff4d9d", "circle"),
)


def calibration_targets(viewport: tuple[int, int] = (1280, 800)) -> list[CalibrationTarget]:
    """A fixed layout: buttons and icons alternating over a 4x4 grid, several sizes, offsets
    varying inside each cell so no two targets line up."""
    vw, vh = viewport
    cell_w, cell_h = vw / 4, vh / 4
    button_sizes = ((150, 48), (110, 32), (130, 40), (96, 28))
    icon_sides = (48, 32, 24, 40)
    buttons, icons = list(_BUTTONS), list(_ICONS)
    targets: list[CalibrationTarget] = []
    for index in range(16):
        col, row = index % 4, index // 4
        use_button = bool(buttons) and (index % 2 == 0 or not icons)
        if not use_button and not icons:
            break
        fx = 0.1 + 0.2 * ((index * 3 + row) % 4)  # 0.1 .. 0.7 of the cell
        fy = 0.1 + 0.2 * ((index * 5 + row) % 4)
        if use_button:
            label = buttons.pop(0)
            w, h = button_sizes[index // 2 % len(button_sizes)]
            w, h = min(w, cell_w * 0.8), min(h, cell_h * 0.6)
            kind: Literal["button", "icon"] = "button"
            instruction, colour, shape = f'the button labelled "{label}"', "#ffffff", "square"
        else:
            name, colour, shape = icons.pop(0)
            label = f"{name} {shape}"
            w = h = min(icon_sides[index // 2 % len(icon_sides)], cell_h * 0.6)
            kind, instruction = "icon", f"the {name} {shape} icon"
        left = col * cell_w + min(fx * cell_w, cell_w - w - 4)
        top = row * cell_h + min(fy * cell_h, cell_h - h - 4)
        targets.append(
            CalibrationTarget(
                label=label,
                kind=kind,
                instruction=instruction,
                left=round(left),
                top=round(top),
                width=w,
                height=h,
                colour=colour,
                shape=shape,  # type: ignore[arg-type]
            )
        )
    return targets


def calibration_page(targets: Sequence[CalibrationTarget]) -> str:
    """HTML with every target absolutely placed at its box."""
    parts = []
    for i, t in enumerate(targets):
        style = f"left:{t.left}px;top:{t.top}px;width:{t.width}px;height:{t.height}px"
        if t.kind == "button":
            parts.append(f'<button id="t{i}" style="{style}">{html.escape(t.label)}</button>')
        else:
            radius = "50%" if t.shape == "circle" else "4px"
            parts.append(
                f'<div id="t{i}" role="button" aria-label="{html.escape(t.label)}" '
                f'style="{style};background:{t.colour};border-radius:{radius}"></div>'
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        "html,body{margin:0;padding:0;overflow:hidden;background:#f4f4f6;font:15px sans-serif}"
        "button,div[role=button]{position:absolute;box-sizing:border-box;margin:0}"
        "button{border:1px solid #888;border-radius:6px;background:#fff;color:#111;padding:0;"
        "white-space:nowrap;overflow:hidden}"
        "</style></head><body>" + "".join(parts) + "</body></html>"
    )


def find_target(targets: Sequence[CalibrationTarget], text: str) -> CalibrationTarget | None:
    """The target an instruction text names (used by fakes that play the model)."""
    for target in sorted(targets, key=lambda t: -len(t.instruction)):
        if target.instruction in text:
            return target
    return None


async def render_targets(
    browser: Browser, viewport: tuple[int, int] = (1280, 800)
) -> tuple[Image.Image, list[CalibrationTarget]]:
    """Screenshot the target page; each target's box is re-read from the DOM (device pixels)."""
    targets = calibration_targets(viewport)
    context = await browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = await context.new_page()
        await page.set_content(calibration_page(targets))
        boxes = await page.evaluate(
            "(n) => Array.from({length: n}, (_, i) => {"
            " const r = document.getElementById('t' + i).getBoundingClientRect();"
            " return [r.left, r.top, r.width, r.height]; })",
            len(targets),
        )
        png = await page.screenshot(animations="disabled", caret="hide")
    finally:
        await context.close()
    measured = [
        t.model_copy(update={"left": b[0], "top": b[1], "width": b[2], "height": b[3]})
        for t, b in zip(targets, boxes, strict=True)
    ]
    image = await asyncio.to_thread(_decode_png, png)
    return image, measured


def _decode_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


# --- reading answers -----------------------------------------------------------------------


def answer_numbers(arguments: Any) -> list[float] | None:
    """The raw numbers of an answer: 2 (a point) or 4 (a box), or None if unreadable."""
    if isinstance(arguments, dict):
        if "x" in arguments and "y" in arguments:
            return _numbers([arguments["x"], arguments["y"]])
        if all(k in arguments for k in ("x1", "y1", "x2", "y2")):
            return _numbers([arguments[k] for k in ("x1", "y1", "x2", "y2")])
        for key in (*_BOX_KEYS, *_POINT_KEYS):
            if key in arguments:
                return answer_numbers(arguments[key])
        return None
    return _numbers(arguments)


def _numbers(value: Any) -> list[float] | None:
    found: list[float] = []
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        found = [float(value)]
    elif isinstance(value, str):
        found = [float(n) for n in _NUMBER.findall(value)]
    elif isinstance(value, (list, tuple)):
        for item in value:
            inner = _numbers(item)
            if inner is None:
                return None
            found.extend(inner)
    else:
        return None
    # single numbers are allowed here so nested lists like [[x], [y]] flatten
    return found if len(found) in (1, 2, 4) else None


def completion_numbers(completion: Completion) -> list[float] | None:
    reply = completion.reply
    for call in reply.tool_calls:
        numbers = answer_numbers(call.arguments)
        if numbers is not None and len(numbers) in (2, 4):
            return numbers
    for text in (reply.content, reply.reasoning or ""):
        numbers = _numbers(text) if text else None
        if numbers is not None and len(numbers) in (2, 4):
            return numbers
    return None


def read_answer(
    numbers: Sequence[float], space: CoordSpace, box_format: BoxFormat, sent: Size
) -> Point:
    """An answer's point in sent-image pixels under one hypothesis."""
    if len(numbers) == 2:
        x, y = numbers
    elif len(numbers) == 4:
        a, b, c, d = numbers
        x, y = ((a + c) / 2, (b + d) / 2) if box_format == "xyxy" else (a + c / 2, b + d / 2)
    else:
        raise PointShapeError(f"expected 2 or 4 numbers, got {len(numbers)}")
    return model_to_sent(Point(x, y), space, sent)


# --- scoring --------------------------------------------------------------------------------


class Hypothesis(BaseModel):
    space: CoordSpace
    box_format: BoxFormat
    hits: int = 0
    answered: int = 0
    total: int = 0
    out_of_range: int = 0  # answers outside the space's bounds: strong evidence against it
    mean_error_px: float | None = None  # mean distance to the target centre, sent-image pixels

    @property
    def accuracy(self) -> float:
        return self.hits / self.total if self.total else 0.0

    @property
    def key(self) -> str:
        return f"{self.space.value}/{self.box_format}"


class TargetAnswer(BaseModel):
    label: str
    kind: str
    box_sent: tuple[float, float, float, float]  # x1, y1, x2, y2
    numbers: list[float] | None = None
    shape: AnswerShape = "none"
    error: str | None = None


# below this share of readable answers calibrate recommends nothing
MIN_READABLE_SHARE = 0.5


class CalibrationReport(BaseModel):
    frame: tuple[int, int]
    sent: tuple[int, int]
    answers: list[TargetAnswer] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    shapes: dict[str, int] = Field(default_factory=dict)

    @property
    def best(self) -> Hypothesis:
        return max(
            self.hypotheses,
            key=lambda h: (
                h.hits,
                -h.out_of_range,
                -(h.mean_error_px if h.mean_error_px is not None else 1e18),
            ),
        )

    @property
    def answer_shape(self) -> AnswerShape:
        """What the model answers with, by majority: a point or a box."""
        counted = {k: v for k, v in self.shapes.items() if k != "none" and v}
        return max(counted, key=counted.__getitem__) if counted else "none"  # type: ignore[return-value]

    @property
    def coord_space(self) -> CoordSpace:
        return self.best.space

    @property
    def readable_share(self) -> float:
        """The share of targets whose answer held a point or a box (0 when nothing was asked)."""
        total = sum(self.shapes.values())
        return (total - self.shapes.get("none", 0)) / total if total else 0.0

    @property
    def can_recommend(self) -> bool:
        """At least half the answers were readable: fewer say nothing about the coordinates."""
        return self.readable_share >= MIN_READABLE_SHARE

    def settings(self) -> list[str]:
        """The command-line settings to use with this model (none when it cannot recommend)."""
        if not self.can_recommend:
            return []
        return [f"--coord-space {self.best.space.value}"]

    def summary(self) -> dict[str, Any]:
        best = self.best
        return {
            "frame": list(self.frame),
            "sent": list(self.sent),
            "answer_shape": self.answer_shape,
            "shapes": self.shapes,
            "best": {
                "space": best.space.value,
                "box_format": best.box_format,
                "accuracy": best.accuracy,
            },
            "hypotheses": [
                {
                    "space": h.space.value,
                    "box_format": h.box_format,
                    "accuracy": h.accuracy,
                    "hits": h.hits,
                    "answered": h.answered,
                    "out_of_range": h.out_of_range,
                    "mean_error_px": h.mean_error_px,
                }
                for h in self.hypotheses
            ],
            "readable_share": self.readable_share,
            "settings": self.settings(),
        }


def score(answers: Sequence[TargetAnswer], sent: Size) -> list[Hypothesis]:
    hypotheses = []
    for space in CoordSpace:
        limit_x, limit_y = model_bounds(space, sent)
        for box_format in ("xyxy", "xywh"):
            h = Hypothesis(space=space, box_format=box_format, total=len(answers))
            errors = []
            for answer in answers:
                if answer.numbers is None:
                    continue
                point = read_answer(answer.numbers, space, box_format, sent)  # type: ignore[arg-type]
                x1, y1, x2, y2 = answer.box_sent
                box = Rect.from_corners(x1, y1, x2, y2)
                h.answered += 1
                h.hits += int(box.contains(point))
                errors.append(point.distance(box.centre))
                xs = answer.numbers[0::2]
                ys = answer.numbers[1::2]
                if any(not (0 <= v <= limit_x * 1.001) for v in xs) or any(
                    not (0 <= v <= limit_y * 1.001) for v in ys
                ):
                    h.out_of_range += 1
            h.mean_error_px = sum(errors) / len(errors) if errors else None
            hypotheses.append(h)
    return hypotheses


# --- running --------------------------------------------------------------------------------


class CompletionClient(Protocol):
    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = ...
    ) -> Completion: ...


CALIBRATION_PROMPT = (
    "This screenshot is {width}x{height} pixels. Click {instruction}: call the click tool "
    "once with the location of its centre."
)


def calibration_tool() -> dict[str, Any]:
    """A click tool that does not state any coordinate convention."""
    return {
        "type": "function",
        "function": {
            "name": "click",
            "description": "Click a location on the screenshot.",
            "parameters": {
                "type": "object",
                "properties": {
                    "x": {"type": "number", "description": "horizontal position"},
                    "y": {"type": "number", "description": "vertical position"},
                },
                "required": ["x", "y"],
            },
        },
    }


async def calibrate(
    client: CompletionClient,
    max_image_tokens: int = DEFAULT_MAX_IMAGE_TOKENS,
    rule: ImageRule = STEP3VL_RULE,
    viewport: tuple[int, int] = (1280, 800),
    browser: Browser | None = None,
    concurrency: int = 4,
) -> CalibrationReport:
    """Ask the model to click every calibration target and score each hypothesis."""
    if browser is None:
        async with async_playwright() as playwright:
            own = await launch_chromium(playwright)
            try:
                return await calibrate(client, max_image_tokens, rule, viewport, own, concurrency)
            finally:
                await own.close()
    image, targets = await render_targets(browser, viewport)
    frame = Size(image.width, image.height)
    plan = plan_image(frame, max_image_tokens, rule)
    data = await asyncio.to_thread(encode_image, image, plan, "JPEG")
    tools = [calibration_tool()]
    gate = asyncio.Semaphore(max(1, concurrency))

    async def ask(target: CalibrationTarget) -> TargetAnswer:
        r = target.rect
        box = (r.left * plan.scale, r.top * plan.scale, r.right * plan.scale, r.bottom * plan.scale)
        answer = TargetAnswer(label=target.label, kind=target.kind, box_sent=box)
        text = CALIBRATION_PROMPT.format(
            width=plan.sent.width, height=plan.sent.height, instruction=target.instruction
        )
        try:
            async with gate:
                completion = await client.complete([image_message(data, "JPEG", text)], tools)
        except Exception as exc:
            logger.warning("calibration request for {!r} failed: {}", target.label, exc)
            answer.error = f"{type(exc).__name__}: {exc}"
            return answer
        answer.numbers = completion_numbers(completion)
        answer.shape = (
            "none" if answer.numbers is None else ("point" if len(answer.numbers) == 2 else "box")
        )
        return answer

    answers = list(await asyncio.gather(*(ask(t) for t in targets)))
    shapes = {"point": 0, "box": 0, "none": 0}
    for answer in answers:
        shapes[answer.shape] += 1
    return CalibrationReport(
        frame=(frame.width, frame.height),
        sent=(plan.sent.width, plan.sent.height),
        answers=answers,
        hypotheses=score(answers, plan.sent),
        shapes=shapes,
    )
