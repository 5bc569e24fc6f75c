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
from typing import Any

import numpy as np
from loguru import logger

from guiagent.core.env import Frame
from guiagent.core.geometry import FrameTransform, Rect
from guiagent.grounding.buttons import ButtonReader
from guiagent.grounding.candidates import (
    _Candidate,
    _contains,
    _in_reading_order,
    _iou,
    _reject,
)
from guiagent.grounding.dom import (
    DOM_SNAPSHOT_JS,
    DomBox,
    DomElement,
    _canonical_role,
)
from guiagent.grounding.fields import field_beside, find_field_box, named_by_other
from guiagent.grounding.ocr import OcrEngine, ScreenReader, TextBox, reading_order, shared_engine
from guiagent.grounding.targets import (
    AmbiguousTarget,
    GroundingError,
    GroundResult,
    RejectedCandidate,
    Source,
    Target,
    TargetDisabled,
    TargetNotFound,
    _fmt_rect,
    _fmt_region,
    _image_name,
)
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
    "TargetDisabled",
    "TargetNotFound",
    "TemplateError",
    "TextBox",
    "match_text",
]


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
    def ocr_engine(self) -> OcrEngine:
        """The OCR engine this grounder reads with (shared: never build one per step)."""
        return self._engine if self._engine is not None else shared_engine()

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
        candidates, source = self._find_candidates(frame, target, elements, transform, rejected)

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

    def _find_candidates(
        self,
        frame: Frame,
        target: Target,
        elements: list[DomElement],
        transform: FrameTransform,
        rejected: list[RejectedCandidate],
    ) -> tuple[list[_Candidate], Source]:
        """The candidates for ``target`` and the source they came from (template, dom or ocr)."""
        source: Source
        if target.image is not None:
            candidates = self._template_candidates(frame, target)
            source = "template"
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
                self._refuse_disabled(target, candidates, rejected)
            if not candidates:
                candidates = self._ocr_candidates(frame, target.text, target.exact)
        if target.role and source == "ocr" and _canonical_role(target.role) in _FIELD_ROLES:
            lines = [line.box for line in self.read_text(frame)]  # this frame's: cached
            candidates = [_field_for_label(frame, c, lines) for c in candidates]
        elif target.role and source != "dom":
            for candidate in candidates:
                candidate.score *= 0.9  # pixels cannot confirm the role
        return candidates, source

    def _refuse_disabled(
        self, target: Target, candidates: list[_Candidate], rejected: list[RejectedCandidate]
    ) -> None:
        """A disabled element that names the target better than any enabled one: the target
        is there but takes no input (its pixels must not be clicked instead)."""
        disabled = [r for r in rejected if r.reason == "disabled"]
        best_disabled = max((r.score for r in disabled), default=0.0)
        best = max((c.score for c in candidates), default=0.0)
        if best_disabled >= self.dom_preference and best_disabled > best + self.tie_margin:
            raise TargetDisabled(target, [r.text for r in disabled])

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
        tier = _one_place_per_label([c for c in found if c.score >= best - self.tie_margin])
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
            if not element.shown_at_all or box.width <= 0 or box.height <= 0:
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
            if not element.shown_at_all or box.width <= 0 or box.height <= 0:
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
        texts = {
            name for e in elements or [] if e.shown_at_all for name in e.names() if len(name) <= 80
        }
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


def _field_for_label(frame: Frame, candidate: _Candidate, lines: list[Rect]) -> _Candidate:
    """Swap an OCR'd label for the field it names (role input/select), if one is drawn and
    no other text (``lines``: the frame's OCR lines) stands between them: that one's field."""
    box = find_field_box(np.asarray(frame.image.convert("L")), candidate.box)
    if box is not None:
        centre = candidate.box.centre
        own = next((line for line in lines if line.contains(centre)), candidate.box)
        if named_by_other(own, box, [line for line in lines if not line.contains(centre)]):
            box = None
    if box is None:
        return _Candidate(candidate.text, candidate.box, candidate.score * 0.8, candidate.source)
    return _Candidate(candidate.text, box, candidate.score * 0.95, candidate.source, field=True)


def _intersects(a: Rect, b: Rect) -> bool:
    return a.left < b.right and b.left < a.right and a.top < b.bottom and b.top < a.bottom


# Re-exported for callers that sort TextBoxes themselves.
__all__ += ["RejectedCandidate", "TextMatch", "normalise", "reading_order", "similarity", "sub_box"]


def _one_place_per_label(tier: list[_Candidate]) -> list[_Candidate]:
    """A <label> and the field it names are one place for an anchor: keep the label."""

    def norm(text: str | None) -> str:
        return " ".join((text or "").split()).casefold()

    labels = {
        norm(c.element.text) for c in tier if c.element is not None and c.element.tag == "label"
    }
    if not labels:
        return tier
    named_by_label = [
        c
        for c in tier
        if c.field
        or (c.element is not None and c.element.tag != "label" and norm(c.element.label) in labels)
    ]
    return [c for c in tier if c not in named_by_label] or tier
