"""What the embedded grounder is asked for and what it answers.

:class:`Target` (the request), :class:`GroundResult` (where the target is, in frame pixels)
and the named failures :class:`AmbiguousTarget` and :class:`TargetNotFound`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from guiagent.core.geometry import Point, Rect
from guiagent.grounding.dom import DomElement

Source = Literal["ocr", "template", "dom"]


# --- inputs ---------------------------------------------------------------------------


def _rect_from_any(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) == 4:
        return Rect(*(float(v) for v in value))
    if isinstance(value, dict):
        if {"x", "y", "width", "height"} <= value.keys():
            return Rect(value["x"], value["y"], value["width"], value["height"])
        return Rect(value["left"], value["top"], value["width"], value["height"])
    return value


class Target(BaseModel):
    """What to find. Exactly one of ``text`` and ``image``, or a ``role`` alone (DOM only:
    every element of that role, in reading order, ``nth`` choosing).

    - ``role``: button, link, input (textbox), checkbox, radio, select (combobox), ...;
      enforced on DOM elements; with OCR, input/select move the result from the label
      to the field outlined right of or below it; other roles only lower confidence;
    - ``nth``: 1-based, in reading order among the equally good matches;
    - ``near``: another text; the candidate closest to it wins;
    - ``in_region``: a Rect (frame pixels, or ``[left, top, width, height]``) or a text
      naming a container (DOM: the smallest section/form/list item/... holding that text;
      without DOM: the row of that text);
    - ``exact``: case-sensitive match of one element's or OCR line's whole text (default:
      case-insensitive, whitespace normalised, partial and fuzzy matches allowed at lower
      scores; never forgiving a differing sign, digit or currency symbol).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str | None = None
    image: Path | Image.Image | None = None
    role: str | None = None
    nth: int | None = Field(default=None, ge=1)
    near: str | None = None
    in_region: Rect | str | None = None
    exact: bool = False

    @field_validator("in_region", mode="before")
    @classmethod
    def _region(cls, value: Any) -> Any:
        return _rect_from_any(value)

    @field_validator("text", "near")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be blank")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if self.text is None and self.image is None and self.role:
            return self  # a role alone
        if (self.text is None) == (self.image is None):
            raise ValueError("give exactly one of text or image (or a role alone)")
        return self

    def describe(self) -> str:
        if self.text is not None:
            what = repr(self.text)
        elif self.image is not None:
            what = f"image {_image_name(self.image)}"
        else:
            what = "any"
        parts = [what]
        if self.role:
            parts.append(f"role={self.role}")
        if self.nth:
            parts.append(f"nth={self.nth}")
        if self.near:
            parts.append(f"near={self.near!r}")
        if self.in_region is not None:
            parts.append(f"in={_fmt_region(self.in_region)}")
        return " ".join(parts)


def _image_name(image: Path | Image.Image | None) -> str:
    if isinstance(image, Image.Image):
        return f"<{image.width}x{image.height} image>"
    return str(image)


def _fmt_rect(rect: Rect) -> str:
    return f"[{rect.left:.0f},{rect.top:.0f} {rect.width:.0f}x{rect.height:.0f}]"


def _fmt_region(region: Rect | str) -> str:
    return repr(region) if isinstance(region, str) else _fmt_rect(region)


# --- outputs and errors -----------------------------------------------------------------


class RejectedCandidate(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str
    box: Rect
    score: float
    reason: str

    @field_validator("box", mode="before")
    @classmethod
    def _box_in(cls, value: Any) -> Any:
        return _rect_from_any(value)

    @field_serializer("box")
    def _box(self, box: Rect) -> list[float]:
        return [box.left, box.top, box.width, box.height]


class GroundResult(BaseModel):
    """Where the target is: ``box`` and ``point`` (its centre) in frame pixels."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    box: Rect
    point: Point
    confidence: float = Field(ge=0.0, le=1.0)
    source: Source
    text: str = ""
    candidates_rejected: list[RejectedCandidate] = Field(default_factory=list)
    field: bool = False  # a label's text was resolved to the field it names
    element: DomElement | None = None  # the DOM element found (its ref, role, editable)

    @field_validator("box", mode="before")
    @classmethod
    def _box_in(cls, value: Any) -> Any:
        return _rect_from_any(value)

    @field_validator("point", mode="before")
    @classmethod
    def _point_in(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return Point(float(value[0]), float(value[1]))
        return value

    @field_serializer("box")
    def _box(self, box: Rect) -> list[float]:
        return [box.left, box.top, box.width, box.height]

    @field_serializer("point")
    def _point(self, point: Point) -> list[float]:
        return [point.x, point.y]


class GroundingError(LookupError):
    """Base of the grounder's named failures."""


class AmbiguousTarget(GroundingError):
    """Several candidates are equally good; ``candidates`` holds (text, box, score).

    ``anchor``: None when the target itself is ambiguous, else ``"near"`` or ``"in"``: the
    text the target was to be found near (or in) shows in several places.
    """

    def __init__(
        self,
        target: Target,
        candidates: list[tuple[str, Rect, float]],
        anchor: str | None = None,
    ) -> None:
        self.target = target
        self.candidates = candidates
        self.anchor = anchor
        listed = "; ".join(
            f"{text!r} at {_fmt_rect(box)} (score {score:.2f})" for text, box, score in candidates
        )
        if anchor is None:
            what = f"target {target.describe()} is ambiguous"
            hint = "Add nth, near or in_region to choose."
        else:
            helper = target.near if anchor == "near" else target.in_region
            what = f"the {anchor} text {helper!r} of target {target.describe()} is ambiguous"
            hint = f"Make the {anchor} text name one place."
        super().__init__(f"{what}: {len(candidates)} equally good matches: {listed}. {hint}")


class TargetNotFound(GroundingError):
    """Nothing matched; ``closest`` lists the texts seen that came nearest."""

    def __init__(self, target: Target, closest: list[str], detail: str = "") -> None:
        self.target = target
        self.closest = closest
        seen = ", ".join(repr(t) for t in closest) if closest else "no text at all"
        extra = f" ({detail})" if detail else ""
        super().__init__(f"target {target.describe()} not found{extra}; closest texts seen: {seen}")


class TargetDisabled(TargetNotFound):
    """The target is on the page but disabled (``disabled``, in a disabled fieldset, or
    ``aria-disabled``): a click or typing there would do nothing."""

    def __init__(self, target: Target, names: list[str]) -> None:
        super().__init__(target, names, detail="it is there but disabled")
