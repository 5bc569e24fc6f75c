"""The embedded grounder: finds on-screen targets without a GPU or a model server.

Three sources, tried in this order:

- ``dom``: in a browser, the page's elements (text, labels, placeholders, aria-labels,
  roles, CSS boxes) as :class:`DomElement` dicts; exact and cheap;
- ``ocr``: RapidOCR over the frame (see :mod:`guiagent.grounding.ocr`: cached per frame and
  re-read only where the screen changed);
- ``template``: OpenCV multi-scale template matching for image targets.

:meth:`LocalGrounder.ground` returns a :class:`GroundResult` in frame pixels, or raises
:class:`AmbiguousTarget` (several equally good candidates, each named with its box) or
:class:`TargetNotFound` (with the closest texts that were seen).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from loguru import logger
from PIL import Image
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_serializer,
    field_validator,
    model_validator,
)

from guiagent.core.env import Frame
from guiagent.core.geometry import FrameTransform, Point, Rect
from guiagent.grounding.buttons import ButtonReader
from guiagent.grounding.fields import field_beside, find_field_box
from guiagent.grounding.ocr import OcrEngine, ScreenReader, TextBox, reading_order, shared_engine
from guiagent.grounding.template import TemplateError, load_template, match_template
from guiagent.grounding.text import (
    TextMatch,
    match_text,
    normalise,
    similarity,
    sub_box,
)

__all__ = [
    "DOM_SNAPSHOT_JS",
    "AmbiguousTarget",
    "DomBox",
    "DomElement",
    "GroundResult",
    "GroundingError",
    "LocalGrounder",
    "Target",
    "TargetNotFound",
    "TemplateError",
    "TextBox",
    "match_text",
]

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


class DomBox(BaseModel):
    """An element's box in CSS pixels of the viewport (getBoundingClientRect)."""

    x: float
    y: float
    width: float
    height: float


class DomElement(BaseModel):
    """One page element as the browser environment reports it (see :data:`DOM_SNAPSHOT_JS`).

    Accepted dict shape (unknown keys ignored; only ``box`` is required)::

        {"tag": "input", "text": "", "role": null, "type": "password",
         "label": "Password", "placeholder": "Password", "aria_label": null,
         "name": null, "value": null, "title": null, "alt": null, "id": "password",
         "box": {"x": 24, "y": 180, "width": 280, "height": 38},
         "visible": true, "enabled": true, "checked": null}

    ``label`` is the text of the element's <label>s (or aria-labelledby); ``aria_label``
    also accepts ``ariaLabel``; ``name`` is an accessible name if the source has one.
    The shape :meth:`BrowserEnv.dom_elements` returns is accepted as is (its
    ``disabled: true`` means ``enabled: false``; ``interactive``/``password`` are ignored,
    the role is derived from tag and type).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tag: str = ""
    text: str = ""
    role: str | None = None
    type: str | None = None
    label: str | None = None
    placeholder: str | None = None
    aria_label: str | None = Field(
        default=None, validation_alias=AliasChoices("aria_label", "ariaLabel")
    )
    name: str | None = None
    value: str | None = None
    title: str | None = None
    alt: str | None = None
    id: str | None = None
    box: DomBox
    visible: bool = True
    enabled: bool = True
    checked: bool | None = None
    editable: bool | None = None  # takes typed text (None: the source does not say)
    ref: int | None = None  # the browser's handle on this element (hit test, scroll, focus)
    clipped: bool = False  # entirely cut away by a scrolling ancestor
    ax_name: str | None = None  # the accessible name from the browser's accessibility tree
    ax_role: str | None = None  # the role from that tree (Chromium's names)

    @model_validator(mode="before")
    @classmethod
    def _disabled_flag(cls, data: Any) -> Any:
        # BrowserEnv.dom_elements() reports "disabled" rather than "enabled".
        if isinstance(data, dict) and "enabled" not in data and "disabled" in data:
            data = {**data, "enabled": not data["disabled"]}
        return data

    @field_validator("tag")
    @classmethod
    def _lower_tag(cls, value: str) -> str:
        return value.lower()

    @property
    def effective_role(self) -> str:
        if self.role:
            return self.role.lower()
        derived = self._tag_role()
        if derived == "generic" and self.ax_role:
            ax = _canonical_role(self.ax_role)
            if ax in _INTERACTIVE_ROLES:  # e.g. a div the browser exposes as a button
                return ax
        return derived

    def _tag_role(self) -> str:
        kind = (self.type or "").lower()
        if self.tag == "a":
            return "link"
        if self.tag == "button" or (self.tag == "input" and kind in _BUTTON_INPUTS):
            return "button"
        if self.tag == "input" and kind in ("checkbox", "radio"):
            return kind
        if self.tag in ("input", "textarea") or self.editable:
            return "textbox"
        if self.tag == "select":
            return "combobox"
        if re.fullmatch(r"h[1-6]", self.tag):
            return "heading"
        return {"li": "listitem", "label": "label", "img": "img", "option": "option"}.get(
            self.tag, "generic"
        )

    @property
    def interactive(self) -> bool:
        return self.effective_role in _INTERACTIVE_ROLES

    @property
    def container(self) -> bool:
        return self.tag in _CONTAINER_TAGS or (self.role or "").lower() in _CONTAINER_ROLES

    def names(self) -> list[str]:
        """The texts a person might use to name this element."""
        values = [
            self.text,
            self.ax_name,
            self.label,
            self.aria_label,
            self.placeholder,
            self.title,
            self.alt,
            self.name,
        ]
        if self.effective_role == "button" and self.tag == "input":
            values.append(self.value)
        return list(dict.fromkeys(v for v in values if v and v.strip()))

    def frame_box(self, transform: FrameTransform) -> Rect:
        top_left = transform.screen_to_frame(Point(self.box.x, self.box.y))
        bottom_right = transform.screen_to_frame(
            Point(self.box.x + self.box.width, self.box.y + self.box.height)
        )
        return Rect.from_corners(top_left.x, top_left.y, bottom_right.x, bottom_right.y)


_BUTTON_INPUTS = {"button", "submit", "reset", "image"}
_INTERACTIVE_ROLES = {
    "button",
    "link",
    "textbox",
    "checkbox",
    "radio",
    "combobox",
    "listbox",
    "option",
    "tab",
    "menuitem",
    "switch",
    "searchbox",
    "slider",
    "spinbutton",
    "menuitemcheckbox",
    "menuitemradio",
    "treeitem",
}
_CONTAINER_TAGS = {
    "section",
    "form",
    "li",
    "ul",
    "ol",
    "nav",
    "header",
    "footer",
    "main",
    "aside",
    "fieldset",
    "dialog",
    "table",
    "tr",
    "article",
    "details",
}
_CONTAINER_ROLES = {
    "region",
    "dialog",
    "group",
    "listitem",
    "list",
    "form",
    "navigation",
    "row",
    "tabpanel",
}
_ROLE_SYNONYMS = {
    "input": "textbox",
    "field": "textbox",
    "textfield": "textbox",
    "text field": "textbox",
    "edit": "textbox",
    "entry": "textbox",
    "textarea": "textbox",
    "searchbox": "textbox",
    "select": "combobox",
    "dropdown": "combobox",
    "listbox": "combobox",
    "check box": "checkbox",
    "radio button": "radio",
    "radiobutton": "radio",
    "image": "img",
    "icon": "img",
}


def _canonical_role(role: str) -> str:
    role = " ".join(role.lower().split())
    return _ROLE_SYNONYMS.get(role, role)


# JavaScript for page.evaluate(): returns the list of dicts DomElement accepts.
DOM_SNAPSHOT_JS = r"""
() => {
  const wanted = 'a,button,input,select,textarea,label,summary,option,img,[role],[aria-label],[title],' +
    'h1,h2,h3,h4,h5,h6,p,span,li,td,th,section,form,ul,ol,nav,header,footer,main,aside,fieldset,' +
    'dialog,table,tr,article,details,legend,div';
  const out = [];
  const vw = window.innerWidth, vh = window.innerHeight;
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  for (const el of document.querySelectorAll(wanted)) {
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0 || r.bottom < 0 || r.right < 0 || r.top > vh || r.left > vw) continue;
    const tag = el.tagName.toLowerCase();
    let ownText = '';
    for (const node of el.childNodes) if (node.nodeType === 3) ownText += node.textContent;
    const isLeafish = clean(ownText) !== '' || ['button', 'a', 'label', 'option', 'summary', 'li', 'td', 'th', 'legend'].includes(tag);
    const interesting = isLeafish || el.matches('input,select,textarea,img,[role],[aria-label],[title],section,form,ul,ol,nav,header,footer,main,aside,fieldset,dialog,table,tr,article,details');
    if (!interesting) continue;
    const style = getComputedStyle(el);
    const visible = style.visibility !== 'hidden' && style.display !== 'none' && parseFloat(style.opacity || '1') > 0;
    let label = null;
    if (el.labels && el.labels.length) label = clean(Array.from(el.labels).map((l) => l.innerText).join(' '));
    const by = el.getAttribute('aria-labelledby');
    if (!label && by) label = clean(by.split(/\s+/).map((id) => (document.getElementById(id) || {}).innerText || '').join(' '));
    out.push({
      tag, text: clean(el.innerText).slice(0, 300), role: el.getAttribute('role'),
      type: el.getAttribute('type'), label, placeholder: el.getAttribute('placeholder'),
      aria_label: el.getAttribute('aria-label'), title: el.getAttribute('title'),
      alt: el.getAttribute('alt'), id: el.id || null,
      value: (tag === 'input' || tag === 'select' || tag === 'textarea') ? String(el.value) : null,
      box: {x: r.x, y: r.y, width: r.width, height: r.height},
      visible, enabled: !el.disabled && el.getAttribute('aria-disabled') !== 'true',
      checked: (el.type === 'checkbox' || el.type === 'radio') ? !!el.checked : null,
    });
  }
  return out;
}
"""


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


# --- candidates -----------------------------------------------------------------------


@dataclass
class _Candidate:
    text: str
    box: Rect
    score: float
    source: Source
    element: DomElement | None = None
    field: bool = False  # resolved from a label to its field


def _iou(a: Rect, b: Rect) -> float:
    x1, y1 = max(a.left, b.left), max(a.top, b.top)
    x2, y2 = min(a.right, b.right), min(a.bottom, b.bottom)
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def _contains(outer: Rect, inner: Rect, slack: float = 1.0) -> bool:
    return (
        outer.left - slack <= inner.left
        and outer.top - slack <= inner.top
        and inner.right <= outer.right + slack
        and inner.bottom <= outer.bottom + slack
    )


def _reject(candidate: _Candidate, reason: str) -> RejectedCandidate:
    return RejectedCandidate(
        text=candidate.text, box=candidate.box, score=round(candidate.score, 4), reason=reason
    )


def _reading_key(candidate: _Candidate) -> tuple[float, float]:
    return (candidate.box.centre.y, candidate.box.left)


def _in_reading_order(candidates: list[_Candidate]) -> list[_Candidate]:
    ordered = sorted(candidates, key=_reading_key)
    rows: list[list[_Candidate]] = []
    for candidate in ordered:
        if rows:
            anchor = rows[-1][0].box
            if (
                abs(candidate.box.centre.y - anchor.centre.y)
                <= max(anchor.height, candidate.box.height) / 2
            ):
                rows[-1].append(candidate)
                continue
        rows.append([candidate])
    return [c for row in rows for c in sorted(row, key=lambda c: c.box.left)]


# --- the grounder -----------------------------------------------------------------------


class LocalGrounder:
    """Embedded grounding by DOM, OCR and template matching; no GPU, no server.

    One OCR engine serves many grounders: pass ``engine`` (or leave it out to use
    :func:`~guiagent.grounding.ocr.shared_engine`). Each grounder keeps its own read cache.
    """

    def __init__(
        self,
        engine: OcrEngine | None = None,
        *,
        fuzzy_threshold: float = 0.8,
        template_threshold: float = 0.8,
        tie_margin: float = 0.02,
        dom_preference: float = 0.75,
        incremental: bool = True,
        read_buttons: bool = True,
    ) -> None:
        self._engine = engine
        self._reader: ScreenReader | None = None
        self._buttons: ButtonReader | None = None
        self.read_buttons = read_buttons
        self.fuzzy_threshold = fuzzy_threshold
        self.template_threshold = template_threshold
        self.tie_margin = tie_margin
        self.dom_preference = dom_preference
        self.incremental = incremental

    @property
    def reader(self) -> ScreenReader:
        if self._reader is None:
            self._reader = ScreenReader(
                self._engine if self._engine is not None else shared_engine()
            )
        return self._reader

    # -- reading ---------------------------------------------------------------------

    def read_text(self, frame: Frame) -> list[TextBox]:
        """Every text line on the frame, reading order, boxes in frame pixels."""
        return self.reader.read(frame, incremental=self.incremental)

    def find_text(self, frame: Frame, text: str, exact: bool = False) -> list[TextBox]:
        """The places ``text`` appears (sub-boxes of longer lines), best match first."""
        found = self._ocr_candidates(frame, text, exact)
        found.sort(key=lambda c: -c.score)
        return [TextBox(text=c.text, box=c.box, confidence=round(c.score, 4)) for c in found]

    async def aread_text(self, frame: Frame) -> list[TextBox]:
        return await asyncio.to_thread(self.read_text, frame)

    async def afind_text(self, frame: Frame, text: str, exact: bool = False) -> list[TextBox]:
        return await asyncio.to_thread(self.find_text, frame, text, exact)

    # -- grounding -------------------------------------------------------------------

    async def aground(
        self,
        frame: Frame,
        target: Target | str,
        dom: list[DomElement] | list[dict[str, Any]] | None = None,
        transform: FrameTransform | None = None,
    ) -> GroundResult:
        return await asyncio.to_thread(self.ground, frame, target, dom, transform)

    def ground(
        self,
        frame: Frame,
        target: Target | str,
        dom: list[DomElement] | list[dict[str, Any]] | None = None,
        transform: FrameTransform | None = None,
    ) -> GroundResult:
        """Locate ``target`` on ``frame``.

        ``dom``: page elements (dicts of the :class:`DomElement` shape, CSS pixels) with
        ``transform`` mapping CSS pixels to frame pixels (default: the frame's own).
        Raises :class:`AmbiguousTarget`, :class:`TargetNotFound` or
        :class:`~guiagent.grounding.template.TemplateError`.
        """
        if isinstance(target, str):
            target = Target(text=target)
        transform = transform or frame.transform
        elements = [
            e if isinstance(e, DomElement) else DomElement.model_validate(e) for e in dom or []
        ]
        rejected: list[RejectedCandidate] = []

        if target.image is not None:
            candidates = self._template_candidates(frame, target)
            source: Source = "template"
        elif target.text is None:  # a role alone: every element of that role
            if not elements:
                raise TargetNotFound(
                    target, [], detail="a target by role alone needs the page's elements"
                )
            candidates = self._role_candidates(elements, transform, frame, target, rejected)
            source = "dom"
        else:
            assert target.text is not None
            candidates, source = [], "ocr"
            if elements:
                candidates = self._dom_candidates(elements, transform, frame, target, rejected)
                if candidates and max(c.score for c in candidates) >= self.dom_preference:
                    source = "dom"
                else:
                    candidates = []
            if not candidates:
                candidates = self._ocr_candidates(frame, target.text, target.exact)
        if target.role and source == "ocr" and _canonical_role(target.role) in _FIELD_ROLES:
            candidates = [_field_for_label(frame, c) for c in candidates]
        elif target.role and source != "dom":
            for candidate in candidates:
                candidate.score *= 0.9  # pixels cannot confirm the role

        region = (
            self._resolve_region(frame, target, elements, transform)
            if target.in_region is not None
            else None
        )
        if region is not None:
            inside = [c for c in candidates if region.contains(c.box.centre)]
            rejected.extend(
                _reject(c, f"outside region {_fmt_rect(region)}")
                for c in candidates
                if c not in inside
            )
            if not inside:
                raise TargetNotFound(
                    target,
                    [c.text for c in candidates][:5] or self._closest(frame, target),
                    detail=f"no match inside {_fmt_region(target.in_region or region)}",
                )
            candidates = inside

        if not candidates:
            raise TargetNotFound(target, self._closest(frame, target, elements))

        chosen = self._choose(frame, target, candidates, elements, transform, rejected)
        logger.debug(
            "grounded {} -> {} via {} ({:.2f})",
            target.describe(),
            _fmt_rect(chosen.box),
            source,
            chosen.score,
        )
        return GroundResult(
            box=chosen.box,
            point=chosen.box.centre,
            confidence=max(0.0, min(1.0, chosen.score)),
            source=source,
            text=chosen.text,
            candidates_rejected=rejected,
            field=chosen.field,
            element=chosen.element,
        )

    # -- choosing among candidates ---------------------------------------------------

    def _choose(
        self,
        frame: Frame,
        target: Target,
        candidates: list[_Candidate],
        elements: list[DomElement],
        transform: FrameTransform,
        rejected: list[RejectedCandidate],
    ) -> _Candidate:
        candidates = sorted(candidates, key=lambda c: -c.score)
        distinct: list[_Candidate] = []
        for candidate in candidates:
            if any(_iou(candidate.box, kept.box) > 0.5 for kept in distinct):
                rejected.append(_reject(candidate, "overlaps a better match"))
            else:
                distinct.append(candidate)
        best = distinct[0].score
        tier = [c for c in distinct if c.score >= best - self.tie_margin]
        rejected.extend(_reject(c, "lower score") for c in distinct if c not in tier)
        tier = self._prefer_controls(tier, rejected)

        if target.near is not None:
            anchors = self._anchors(frame, target.near, elements, transform)
            if len(anchors) > 1:
                raise AmbiguousTarget(
                    target, [(target.near, box, 1.0) for box in anchors], anchor="near"
                )
            if not anchors:
                raise TargetNotFound(
                    target,
                    self._closest(frame, target, elements),
                    detail=f"near text {target.near!r} not found",
                )

            def distance(candidate: _Candidate) -> float:
                usable = [a for a in anchors if _iou(a, candidate.box) < 0.5] or anchors
                return min(candidate.box.centre.distance(a.centre) for a in usable)

            tier.sort(key=distance)
            rejected.extend(_reject(c, f"farther from {target.near!r}") for c in tier[1:])
            return tier[0]
        if target.nth is not None:
            ordered = _in_reading_order(tier)
            if target.nth > len(ordered):
                raise TargetNotFound(
                    target,
                    [c.text for c in ordered],
                    detail=f"asked for match {target.nth} but only {len(ordered)} found",
                )
            chosen = ordered[target.nth - 1]
            rejected.extend(
                _reject(c, f"not match {target.nth} in reading order")
                for c in ordered
                if c is not chosen
            )
            return chosen
        if len(tier) > 1:
            ordered = _in_reading_order(tier)
            raise AmbiguousTarget(target, [(c.text, c.box, round(c.score, 4)) for c in ordered])
        return tier[0]

    @staticmethod
    def _prefer_controls(
        tier: list[_Candidate], rejected: list[RejectedCandidate]
    ) -> list[_Candidate]:
        """Among equally good DOM matches keep controls over their labels and the innermost box."""
        if not any(c.element is not None for c in tier):
            return tier
        if any(c.element is not None and c.element.interactive for c in tier):
            kept = [c for c in tier if c.element is None or c.element.interactive]
            rejected.extend(
                _reject(c, "a control with the same name is preferred")
                for c in tier
                if c not in kept
            )
            tier = kept
        inner = [
            c
            for c in tier
            if not any(o is not c and _contains(c.box, o.box) and c.box != o.box for o in tier)
        ]
        rejected.extend(
            _reject(c, "contains a better-fitting element") for c in tier if c not in inner
        )
        return inner or tier

    def _anchors(
        self, frame: Frame, text: str, elements: list[DomElement], transform: FrameTransform
    ) -> list[Rect]:
        """Boxes of the best matches of a helper text (for near / in_region)."""
        found: list[_Candidate] = []
        if elements:
            found = [
                c
                for c in self._dom_candidates(elements, transform, frame, Target(text=text), [])
                if c.score >= self.dom_preference
            ]
        if not found:
            found = self._ocr_candidates(frame, text, False)
        if not found:
            return []
        best = max(c.score for c in found)
        tier = [c for c in found if c.score >= best - self.tie_margin]
        # one place counts once: an element and its own inner element, or a DOM and OCR box
        distinct: list[Rect] = []
        for box in sorted((c.box for c in tier), key=lambda b: b.width * b.height):
            if not any(
                _iou(box, kept) > 0.5 or _contains(box, kept, 2.0) or _contains(kept, box, 2.0)
                for kept in distinct
            ):
                distinct.append(box)
        return _in_reading_order_boxes(distinct)

    def _resolve_region(
        self, frame: Frame, target: Target, elements: list[DomElement], transform: FrameTransform
    ) -> Rect:
        region = target.in_region
        if isinstance(region, Rect):
            return region
        assert isinstance(region, str)
        anchors = self._anchors(frame, region, elements, transform)
        if not anchors:
            raise TargetNotFound(
                target,
                self._closest(frame, target, elements),
                detail=f"region {region!r} not found",
            )
        if len(anchors) > 1:
            raise AmbiguousTarget(target, [(region, box, 1.0) for box in anchors], anchor="in")
        anchor = anchors[0]
        containers = [
            box
            for element in elements
            if element.container and element.visible
            for box in [element.frame_box(transform)]
            if _contains(box, anchor) and box.width * box.height > anchor.width * anchor.height
        ]
        if containers:
            return min(containers, key=lambda b: b.width * b.height)
        # Without a DOM: the row the region's text sits on, across the whole frame.
        return Rect(
            0.0, anchor.top - anchor.height * 0.75, float(frame.size.width), anchor.height * 2.5
        )

    # -- sources -----------------------------------------------------------------------

    def _ocr_candidates(self, frame: Frame, text: str, exact: bool) -> list[_Candidate]:
        found = self._line_candidates(self.read_text(frame), text, exact)
        if not found and self.read_buttons and frame.surface == "desktop":
            # a glyph on a small button: read the buttons one by one
            found = self._line_candidates(self.buttons.read(frame.image), text, exact)
        return found

    @property
    def buttons(self) -> ButtonReader:
        if self._buttons is None:
            self._buttons = ButtonReader(
                self._engine if self._engine is not None else shared_engine()
            )
        return self._buttons

    def _line_candidates(self, lines: list[TextBox], text: str, exact: bool) -> list[_Candidate]:
        found = []
        for line in lines:
            match = match_text(text, line.text, exact, self.fuzzy_threshold)
            if match is None:
                continue
            box = sub_box(line.box, line.text, match.start, match.end)
            shown = normalise(line.text)[match.start : match.end]
            found.append(
                _Candidate(shown, box, match.score * (0.85 + 0.15 * line.confidence), "ocr")
            )
        return found

    def _dom_candidates(
        self,
        elements: list[DomElement],
        transform: FrameTransform,
        frame: Frame,
        target: Target,
        rejected: list[RejectedCandidate],
    ) -> list[_Candidate]:
        assert target.text is not None
        wanted_role = _canonical_role(target.role) if target.role else None
        bounds = Rect(0.0, 0.0, float(frame.size.width), float(frame.size.height))
        found = []
        for element in elements:
            best: TextMatch | None = None
            best_name = ""
            for name in element.names():
                match = match_text(target.text, name, target.exact, self.fuzzy_threshold)
                # A long container text that merely contains the target is not a match.
                if match and match.kind != "exact" and element.container:
                    continue
                if match and (best is None or match.score > best.score):
                    best, best_name = match, name
            if best is None:
                continue
            box = element.frame_box(transform)
            candidate = _Candidate(normalise(best_name), box, best.score, "dom", element)
            if not element.visible or box.width <= 0 or box.height <= 0:
                rejected.append(_reject(candidate, "hidden"))
            elif not _intersects(box, bounds):
                rejected.append(_reject(candidate, "outside the frame"))
            elif not element.enabled:
                rejected.append(_reject(candidate, "disabled"))
            elif wanted_role and element.effective_role != wanted_role:
                field = (
                    _dom_field_beside(element, elements, transform, wanted_role)
                    if wanted_role in _FIELD_ROLES and not element.interactive
                    else None
                )
                if field is not None:  # a label's text names the field it sits beside
                    found.append(
                        _Candidate(
                            candidate.text,
                            field.frame_box(transform),
                            best.score * 0.95,
                            "dom",
                            field,
                            field=True,
                        )
                    )
                    continue
                rejected.append(
                    _reject(candidate, f"role is {element.effective_role}, not {wanted_role}")
                )
            else:
                found.append(candidate)
        return found

    def _role_candidates(
        self,
        elements: list[DomElement],
        transform: FrameTransform,
        frame: Frame,
        target: Target,
        rejected: list[RejectedCandidate],
    ) -> list[_Candidate]:
        """Every shown, enabled element of the target's role (a target by role alone)."""
        assert target.role is not None
        wanted = _canonical_role(target.role)
        bounds = Rect(0.0, 0.0, float(frame.size.width), float(frame.size.height))
        found = []
        for element in elements:
            if element.effective_role != wanted:
                continue
            box = element.frame_box(transform)
            names = element.names()
            candidate = _Candidate(names[0] if names else wanted, box, 1.0, "dom", element)
            if not element.visible or box.width <= 0 or box.height <= 0:
                rejected.append(_reject(candidate, "hidden"))
            elif not _intersects(box, bounds):
                rejected.append(_reject(candidate, "outside the frame"))
            elif not element.enabled:
                rejected.append(_reject(candidate, "disabled"))
            else:
                found.append(candidate)
        return found

    def _template_candidates(self, frame: Frame, target: Target) -> list[_Candidate]:
        assert target.image is not None
        template = load_template(target.image)
        gray = np.asarray(frame.image.convert("L"))
        matches = match_template(gray, template, frame.transform.scale, self.template_threshold)
        name = _image_name(target.image)
        return [_Candidate(name, m.box, max(0.0, min(1.0, m.score)), "template") for m in matches]

    def _closest(
        self, frame: Frame, target: Target, elements: list[DomElement] | None = None, limit: int = 5
    ) -> list[str]:
        if target.text is None:
            return []
        texts = {name for e in elements or [] if e.visible for name in e.names() if len(name) <= 80}
        texts.update(line.text for line in self.read_text(frame))
        ranked = sorted(texts, key=lambda t: -similarity(target.text or "", t))
        return ranked[:limit]


_FIELD_ROLES = {"textbox", "combobox"}


def _in_reading_order_boxes(boxes: list[Rect]) -> list[Rect]:
    return [c.box for c in _in_reading_order([_Candidate("", b, 0.0, "dom") for b in boxes])]


def _dom_field_beside(
    label: DomElement, elements: list[DomElement], transform: FrameTransform, role: str
) -> DomElement | None:
    """The shown, enabled field of ``role`` that the text element ``label`` sits beside."""
    fields = [
        e
        for e in elements
        if e.effective_role == role and e.visible and e.enabled and e is not label
    ]
    boxes = [f.frame_box(transform) for f in fields]
    box = field_beside(label.frame_box(transform), boxes)
    return None if box is None else fields[boxes.index(box)]


def _field_for_label(frame: Frame, candidate: _Candidate) -> _Candidate:
    """Swap an OCR'd label for the field it names (role input/select), if one is drawn."""
    box = find_field_box(np.asarray(frame.image.convert("L")), candidate.box)
    if box is None:
        return _Candidate(candidate.text, candidate.box, candidate.score * 0.8, candidate.source)
    return _Candidate(candidate.text, box, candidate.score * 0.95, candidate.source, field=True)


def _intersects(a: Rect, b: Rect) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


# Re-exported for callers that sort TextBoxes themselves.
__all__ += ["RejectedCandidate", "TextMatch", "normalise", "reading_order", "similarity", "sub_box"]
