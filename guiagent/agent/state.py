"""What one run carries from turn to turn (:class:`RunState`), and one turn's working data."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from guiagent.agent.budget import BudgetTracker
from guiagent.agent.config import RunResult
from guiagent.agent.policy import Verdict
from guiagent.core.actions import ActionSpace, BaseAction
from guiagent.core.change import LoopDetector
from guiagent.core.env import Frame
from guiagent.core.geometry import FrameTransform, Point, PointTrail, Rect, Size
from guiagent.models.budget import ImagePlan
from guiagent.models.reply import Completion
from guiagent.models.step3vl import Conversation
from guiagent.record.trajectory import StepRecord


@dataclass
class RunState:
    """One run of :meth:`Agent.run`: the conversation, the budget, the loop watch, the result."""

    task: str
    tracker: BudgetTracker
    detector: LoopDetector = field(default_factory=LoopDetector)
    conversation: Conversation | None = None
    previous_text: str | None = None  # the last request's text (prefix reuse)
    invalid_in_row: int = 0
    invalid_total: int = 0
    notes: list[str] = field(default_factory=list)  # said to the model with the next screenshot
    zoom_next: Rect | None = None  # the next screenshot is this region, enlarged
    index: int = 0
    steps_done: int = 0
    result: RunResult | None = None  # set: the loop ends


@dataclass
class Turn:
    """One step of the loop, filled in phase by phase."""

    step: StepRecord
    timings: dict[str, float] = field(default_factory=dict)
    frame: Frame | None = None
    dom: list[dict[str, Any]] | None = None
    redactions: list[dict[str, Any]] = field(default_factory=list)
    plan: ImagePlan | None = None
    image_bytes: bytes = b""
    space: ActionSpace | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    completion: Completion | None = None
    action: BaseAction | None = None  # as the model gave it (model space)
    trails: list[PointTrail] = field(default_factory=list)
    screen_action: BaseAction | None = None  # what the environment gets (screen space)
    verdict: Verdict | None = None
    policy: dict[str, Any] | None = None
    event: dict[str, Any] = field(default_factory=dict)  # the executor's record of the input
    acted: bool = False  # the action reached the executor (the loop watch then looks)

    def timed(self, phase: str, started: float) -> None:
        self.timings[phase] = (time.perf_counter() - started) * 1000.0


def zoom_frame(frame: Frame, region: Rect, factor: float = 2.0) -> Frame:
    """An enlarged crop of ``frame`` whose transform still maps its pixels to the right screen points."""
    box = (int(region.left), int(region.top), int(region.right), int(region.bottom))
    crop = frame.image.crop(box)
    image = crop.resize((round(crop.width * factor), round(crop.height * factor)), Image.BICUBIC)
    origin = frame.transform.frame_to_screen(Point(box[0], box[1]))
    transform = FrameTransform(
        Size(image.width, image.height), origin=origin, scale=frame.transform.scale * factor
    )
    return Frame(
        image=image,
        transform=transform,
        surface=frame.surface,
        meta={**frame.meta, "zoom": list(box)},
    )
