"""ScreenSpot-style grounding evaluation: point-in-box accuracy by element type and source.

Rows come in the published shapes: ScreenSpot and ScreenSpot-v2 give ``bbox`` as
``[x, y, w, h]``; ScreenSpot-Pro gives ``[x1, y1, x2, y2]`` beside ``img_size`` and calls
the type ``ui_type``. A grounder is any async callable ``(image, instruction) -> (x, y)``
in the image's pixels, or ``None`` when its answer held no readable point (counted in
the ``wrong_format`` bucket).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from loguru import logger
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from guiagent.core.actions import ActionSpace, Click, PointShapeError, parse_point
from guiagent.core.geometry import CoordSpace, Point, Rect, Size, model_to_sent, sent_to_frame
from guiagent.models.budget import (
    DEFAULT_MAX_IMAGE_TOKENS,
    STEP3VL_RULE,
    ImageRule,
    encode_image,
    mime_type,
    plan_image,
)
from guiagent.models.reply import Completion

Grounder = Callable[[Image.Image, str], Awaitable[tuple[float, float] | None]]
BoxFormat = Literal["xywh", "xyxy"]


class DatasetError(ValueError):
    """A dataset file or row that cannot be read."""


class ScreenSpotRow(BaseModel):
    model_config = ConfigDict(extra="allow")

    img_filename: str
    bbox: list[float] = Field(min_length=4, max_length=4)
    instruction: str = Field(min_length=1)
    data_type: str = "unknown"
    data_source: str = "unknown"
    img_size: list[int] | None = None
    bbox_format: BoxFormat | None = None

    @model_validator(mode="before")
    @classmethod
    def _aliases(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "data_type" not in data and "ui_type" in data:
            data["data_type"] = data["ui_type"]
        if "data_source" not in data:
            for key in ("application", "group", "platform"):
                if key in data:
                    data["data_source"] = data[key]
                    break
        return data

    def box(self, default_format: BoxFormat | None = None) -> Rect:
        """The target box in image pixels. ``img_size`` present means ScreenSpot-Pro's xyxy."""
        fmt = self.bbox_format or default_format or ("xyxy" if self.img_size else "xywh")
        a, b, c, d = self.bbox
        if fmt == "xyxy":
            return Rect.from_corners(a, b, c, d)
        return Rect(a, b, c, d)


def load_rows(path: str | Path) -> list[ScreenSpotRow]:
    """Read a dataset: a JSON array of rows, or JSON Lines."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"cannot read dataset {path}: {exc}") from exc
    stripped = text.lstrip()
    try:
        if stripped.startswith("["):
            raw = json.loads(text)
        else:
            raw = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not JSON or JSON Lines: {exc}") from exc
    rows = []
    for index, item in enumerate(raw):
        try:
            rows.append(ScreenSpotRow.model_validate(item))
        except ValidationError as exc:
            raise DatasetError(f"{path}: row {index} is not a ScreenSpot row: {exc}") from exc
    return rows


def find_image(row: ScreenSpotRow, image_dir: Path) -> Path:
    for candidate in (image_dir / row.img_filename, image_dir / "images" / row.img_filename):
        if candidate.exists():
            return candidate
    raise DatasetError(
        f"image {row.img_filename!r} not found in {image_dir} or {image_dir / 'images'}"
    )


# --- results -----------------------------------------------------------------------------


class RowResult(BaseModel):
    index: int
    instruction: str
    data_type: str
    data_source: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in image pixels
    point: tuple[float, float] | None = None
    hit: bool = False
    wrong_format: bool = False
    error: str | None = None
    distance: float | None = None  # from the point to the box centre, image pixels


class Bucket(BaseModel):
    total: int = 0
    correct: int = 0
    wrong_format: int = 0
    errors: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def add(self, result: RowResult) -> None:
        self.total += 1
        self.correct += int(result.hit)
        self.wrong_format += int(result.wrong_format)
        self.errors += int(result.error is not None)

    def summary(self) -> dict[str, Any]:
        return {**self.model_dump(), "accuracy": self.accuracy}


class EvalReport(BaseModel):
    overall: Bucket = Field(default_factory=Bucket)
    by_type: dict[str, Bucket] = Field(default_factory=dict)
    by_source: dict[str, Bucket] = Field(default_factory=dict)
    results: list[RowResult] = Field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.overall.accuracy

    @property
    def wrong_format(self) -> int:
        return self.overall.wrong_format

    def add(self, result: RowResult) -> None:
        self.results.append(result)
        self.overall.add(result)
        self.by_type.setdefault(result.data_type, Bucket()).add(result)
        self.by_source.setdefault(result.data_source, Bucket()).add(result)

    def summary(self) -> dict[str, Any]:
        return {
            "overall": self.overall.summary(),
            "by_type": {k: v.summary() for k, v in sorted(self.by_type.items())},
            "by_source": {k: v.summary() for k, v in sorted(self.by_source.items())},
        }


# --- running ---------------------------------------------------------------------------------


def _load_image(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


async def _run_row(
    index: int,
    row: ScreenSpotRow,
    image_dir: Path,
    grounder: Grounder,
    box_format: BoxFormat | None,
) -> RowResult:
    box = row.box(box_format)
    result = RowResult(
        index=index,
        instruction=row.instruction,
        data_type=row.data_type,
        data_source=row.data_source,
        box=box.as_xyxy(),
    )
    try:
        image = await asyncio.to_thread(_load_image, find_image(row, image_dir))
        answer = await grounder(image, row.instruction)
    except Exception as exc:
        logger.warning("row {}: grounding failed: {}", index, exc)
        result.error = f"{type(exc).__name__}: {exc}"
        return result
    if answer is None:
        result.wrong_format = True
        return result
    point = Point(float(answer[0]), float(answer[1]))
    result.point = (point.x, point.y)
    result.hit = box.contains(point)
    result.distance = point.distance(box.centre)
    return result


async def evaluate(
    rows: Sequence[ScreenSpotRow],
    grounder: Grounder,
    image_dir: str | Path,
    limit: int | None = None,
    concurrency: int = 1,
    on_result: Callable[[RowResult], None] | None = None,
    box_format: BoxFormat | None = None,
) -> EvalReport:
    """Ground every row (at most ``limit``) and score point-in-box accuracy.

    ``box_format`` forces how ``bbox`` is read for rows that do not say (by default
    ``xyxy`` when a row has ``img_size``, as ScreenSpot-Pro does, else ``xywh``).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    image_dir = Path(image_dir)
    selected = list(rows)[: limit if limit is not None else None]
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, row: ScreenSpotRow) -> RowResult:
        async with gate:
            result = await _run_row(index, row, image_dir, grounder, box_format)
        if on_result is not None:
            on_result(result)
        return result

    report = EvalReport()
    for result in await asyncio.gather(*(one(i, row) for i, row in enumerate(selected))):
        report.add(result)
    return report


# --- the model as a grounder -----------------------------------------------------------------


class CompletionClient(Protocol):
    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = ...
    ) -> Completion: ...


GROUNDING_PROMPT = (
    "Find the UI element described below in the {width}x{height} screenshot and click it "
    "by calling the click tool once at its centre.\nElement: {instruction}"
)


def image_message(data: bytes, fmt: str, text: str) -> dict[str, Any]:
    url = f"data:{mime_type(fmt)};base64,{base64.b64encode(data).decode('ascii')}"
    return {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": text},
        ],
    }


def answer_point(completion: Completion) -> tuple[float, float] | None:
    """The point a reply names: its first tool call with a point, else its text."""
    reply = completion.reply
    for call in reply.tool_calls:
        try:
            return parse_point(call.arguments)
        except PointShapeError:
            continue
    for text in (reply.content, reply.reasoning or ""):
        if not text:
            continue
        try:
            return parse_point(text)
        except PointShapeError:
            continue
    return None


def model_grounder(
    client: CompletionClient,
    coord_space: CoordSpace = CoordSpace.IMAGE,
    max_image_tokens: int = DEFAULT_MAX_IMAGE_TOKENS,
    rule: ImageRule = STEP3VL_RULE,
    fmt: str = "JPEG",
    prompt: str = GROUNDING_PROMPT,
) -> Grounder:
    """A grounder that asks the served model, with one ``click`` tool, and maps its answer
    back to the original image's pixels (model space -> sent image -> frame)."""
    space = ActionSpace([Click])

    async def ground(image: Image.Image, instruction: str) -> tuple[float, float] | None:
        frame = Size(image.width, image.height)
        plan = plan_image(frame, max_image_tokens, rule)
        data = await asyncio.to_thread(encode_image, image, plan, fmt)
        text = prompt.format(
            width=plan.sent.width, height=plan.sent.height, instruction=instruction
        )
        completion = await client.complete(
            [image_message(data, fmt, text)], space.tools_json(coord_space, plan.sent)
        )
        found = answer_point(completion)
        if found is None:
            return None
        sent = model_to_sent(Point(*found), coord_space, plan.sent)
        point = sent_to_frame(sent, plan.sent, frame)
        return (point.x, point.y)

    return ground
