"""Model mode: Step3-VL describes the screen within a stated length and lists its elements
(role, label, box) through one tool call, so a user can move through them one by one."""

from __future__ import annotations

import re
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field, ValidationError, field_validator

from guiagent.core.env import Frame
from guiagent.core.geometry import CoordSpace, Point, Rect, Size, model_to_sent, sent_to_frame
from guiagent.core.redact import Redactor
from guiagent.models.budget import plan_image
from guiagent.models.openai_client import ModelClient, image_content
from guiagent.models.profiles import ModelProfile, get_profile
from guiagent.narrate.narrator import NarrateError, Scope, _crop, _overlaps, _scale_rect, finish
from guiagent.narrate.schema import Item, Region

TOOL_NAME = "describe_screen"
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")


class ModelNarrationError(ValueError):
    """The model's answer held no usable description."""


class ModelElement(BaseModel):
    """One element as the model names it; ``box`` is x1, y1, x2, y2 in model space."""

    role: str = "text"
    label: str = ""
    box: tuple[float, float, float, float]
    state: list[str] = Field(default_factory=list)

    @field_validator("box", mode="before")
    @classmethod
    def _box(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if {"x1", "y1", "x2", "y2"} <= value.keys():
                value = [value["x1"], value["y1"], value["x2"], value["y2"]]
            elif {"x", "y", "width", "height"} <= value.keys():
                x, y = float(value["x"]), float(value["y"])
                value = [x, y, x + float(value["width"]), y + float(value["height"])]
            elif {"x", "y"} <= value.keys():
                value = [value["x"], value["y"]]
        if isinstance(value, str):
            value = [float(n) for n in _NUMBER.findall(value)]
        if isinstance(value, (list, tuple)):
            flat: list[Any] = []
            for v in value:
                flat.extend(v if isinstance(v, (list, tuple)) else [v])
            numbers = [float(v) for v in flat]
            if len(numbers) == 2:  # a point: a box of no size
                numbers = numbers * 2
            if len(numbers) != 4:
                raise ValueError(f"a box needs 4 numbers (x1, y1, x2, y2), got {len(numbers)}")
            x1, y1, x2, y2 = numbers
            return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
        return value

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value or []


def describe_tool(space: CoordSpace, sent: Size, max_words: int) -> dict[str, Any]:
    coords = space.describe(sent)
    return {
        "type": "function",
        "function": {
            "name": TOOL_NAME,
            "description": (
                "Report what the screen shows to a blind user: a concise description and "
                "the visible elements in reading order."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "description": {
                        "type": "string",
                        "description": f"What the screen shows, at most {max_words} words.",
                    },
                    "elements": {
                        "type": "array",
                        "description": "Visible elements in reading order.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "role": {
                                    "type": "string",
                                    "description": "heading, text, button, link, textbox, "
                                    "checkbox, menu, dialog, image, ...",
                                },
                                "label": {"type": "string"},
                                "box": {
                                    "type": "array",
                                    "items": {"type": "number"},
                                    "description": f"[x1, y1, x2, y2] in {coords}",
                                },
                                "state": {"type": "array", "items": {"type": "string"}},
                            },
                            "required": ["role", "label", "box"],
                        },
                    },
                },
                "required": ["description", "elements"],
            },
        },
    }


def limit_words(text: str, max_words: int) -> str:
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    logger.info("model description cut from {} to {} words", len(words), max_words)
    return " ".join(words[:max_words]).rstrip(",;:") + "…"


class ModelDescriber:
    """Asks a served VLM for a description and a grounded element list."""

    def __init__(
        self,
        client: ModelClient,
        profile: ModelProfile | None = None,
        max_words: int = 60,
        max_elements: int = 60,
        max_completion_tokens: int = 4096,
    ) -> None:
        if max_words < 1:
            raise ValueError(f"max_words must be >= 1, got {max_words}")
        self.client = client
        self.profile = profile or get_profile("step3-vl")
        self.max_words = max_words
        self.max_elements = max_elements
        self.max_completion_tokens = max_completion_tokens

    def messages(self, frame: Frame, sent: Size) -> list[dict[str, Any]]:
        image = frame.image if frame.size == sent else frame.image.resize((sent.width, sent.height))
        system = (
            "You describe computer screens to blind and low-vision users. Be concise and "
            "factual; never read out passwords or anything blacked out. Answer by calling "
            f"{TOOL_NAME} once."
        )
        prompt = (
            f"Describe this screen in at most {self.max_words} words, then list its visible "
            "elements (headings, text, buttons, links, fields, checkboxes, menus, dialogs) "
            "in reading order with their role, label and box "
            f"([x1, y1, x2, y2] in {self.profile.coord_space.describe(sent)})."
        )
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": [image_content(image), {"type": "text", "text": prompt}]},
        ]

    async def describe(
        self, frame: Frame, scope: Scope, redactor: Redactor, hidden: list[Rect]
    ) -> Any:
        if scope.kind in ("pointer", "focused"):
            raise NarrateError(f"model mode narrates the screen or a --region, not {scope.kind}")
        offset = Point(0.0, 0.0)
        if scope.kind == "region" and scope.rect is not None:
            rect = _scale_rect(scope.rect, frame.transform)
            frame = _crop(frame, rect)
            offset = Point(max(rect.left, 0.0), max(rect.top, 0.0))
            hidden = [Rect(h.left - offset.x, h.top - offset.y, h.width, h.height) for h in hidden]
        plan = plan_image(frame.size, self.profile.max_image_tokens, self.profile.image_rule)
        tools = [describe_tool(self.profile.coord_space, plan.sent, self.max_words)]
        completion = await self.client.complete(
            self.messages(frame, plan.sent),
            tools,
            max_completion_tokens=self.max_completion_tokens,
        )
        reply = completion.reply
        call = next((c for c in reply.tool_calls if c.name == TOOL_NAME), None)
        args: dict[str, Any] = call.arguments if call is not None else {}
        description = str(args.get("description") or reply.content or "").strip()
        if not description:
            raise ModelNarrationError(
                f"the model gave no description (finish_reason={completion.finish_reason}, "
                f"tool calls: {[c.name for c in reply.tool_calls]})"
            )
        description = limit_words(redactor.redact_text(description), self.max_words)
        items: list[Item] = []
        redacted = len(hidden)
        raw = args.get("elements") or []
        if not isinstance(raw, list):
            logger.warning("model elements is a {}, not a list: ignored", type(raw).__name__)
            raw = []
        for index, entry in enumerate(raw[: self.max_elements]):
            try:
                element = ModelElement.model_validate(entry)
            except ValidationError as exc:
                logger.warning("model element {} skipped: {}", index, exc.errors()[0]["msg"])
                continue
            rect = self._to_frame(element.box, plan.sent, frame.size)
            if any(_overlaps(rect, h) or h.contains(rect.centre) for h in hidden):
                continue
            items.append(
                Item(
                    role=element.role.strip().lower() or "text",
                    label=redactor.redact_text(element.label.strip()),
                    state=element.state,
                    box=[
                        round(rect.left + offset.x, 1),
                        round(rect.top + offset.y, 1),
                        round(rect.width, 1),
                        round(rect.height, 1),
                    ],
                    source="model",
                )
            )
        regions = [Region(kind="body", items=items)] if items else []
        return finish(regions, frame.surface, redacted, description=description, mode="model")

    async def name_crop(self, crop: Frame, max_words: int = 8) -> str:
        """A short name for an image or icon the accessibility tree leaves unnamed and OCR
        cannot read ("" when the model has none)."""
        plan = plan_image(crop.size, self.profile.max_image_tokens, self.profile.image_rule)
        image = (
            crop.image
            if crop.size == plan.sent
            else crop.image.resize((plan.sent.width, plan.sent.height))
        )
        prompt = (
            f"This is one image or icon from a screen. In at most {max_words} words, what does "
            "it show or do? Answer with the name only, as a screen reader would say it."
        )
        messages = [
            {"role": "user", "content": [image_content(image), {"type": "text", "text": prompt}]}
        ]
        completion = await self.client.complete(messages, None, max_completion_tokens=512)
        text = (completion.reply.content or "").strip().strip('."')
        return limit_words(text, max_words) if text else ""

    def _to_frame(self, box: tuple[float, float, float, float], sent: Size, frame: Size) -> Rect:
        space = self.profile.coord_space
        corners = []
        for x, y in ((box[0], box[1]), (box[2], box[3])):
            p = sent_to_frame(model_to_sent(Point(x, y), space, sent), sent, frame)
            corners.append(Point(min(max(p.x, 0.0), frame.width), min(max(p.y, 0.0), frame.height)))
        return Rect.from_corners(corners[0].x, corners[0].y, corners[1].x, corners[1].y)
