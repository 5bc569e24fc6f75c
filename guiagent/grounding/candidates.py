"""Candidate matches the embedded grounder weighs, and the geometry it weighs them with."""

from __future__ import annotations

from dataclasses import dataclass

from guiagent.core.geometry import Rect
from guiagent.grounding.dom import DomElement
from guiagent.grounding.targets import RejectedCandidate, Source

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
