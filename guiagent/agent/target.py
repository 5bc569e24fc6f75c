"""What an action lands on, by every name it goes by: visible text, accessible name, role,
CSS-drawn text. The policy matches its words against all of them, so an icon-only button
with ``aria-label="Delete account"`` or a label drawn by ``::before`` is judged like a
button that says it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _box(element: dict[str, Any]) -> tuple[float, float, float, float] | None:
    box = element.get("box")
    try:
        if isinstance(box, dict):
            return (float(box["x"]), float(box["y"]), float(box["width"]), float(box["height"]))
        if box is not None:
            x, y, w, h = (float(v) for v in box)
            return (x, y, w, h)
        return (
            float(element["x"]),
            float(element["y"]),
            float(element["width"]),
            float(element["height"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def element_at(dom: Sequence[dict[str, Any]], x: float, y: float) -> dict[str, Any] | None:
    """The smallest element whose box (screen points) holds the point."""
    best: tuple[float, dict[str, Any]] | None = None
    for element in dom:
        box = _box(element)
        if box is None:
            continue
        bx, by, bw, bh = box
        if bx <= x <= bx + bw and by <= y <= by + bh and (best is None or bw * bh < best[0]):
            best = (bw * bh, element)
    return best[1] if best else None


def target_fields(dom: Sequence[dict[str, Any]], x: float, y: float) -> dict[str, str | None]:
    """The names of the element under the point, as :class:`ActionContext` fields.

    ``name`` is the element's accessible name, else that of the control it sits in
    (``owner_name``: a ``<span>`` inside ``<button aria-label=...>``); ``pseudo`` is the
    text of its ``::before``/``::after``.
    """
    element = element_at(dom, x, y)
    if element is None:
        return {}
    text = " ".join(
        t for t in (element.get("text"), element.get("more_text")) if isinstance(t, str) and t
    )
    names = [element.get("name"), element.get("owner_name")]
    name = " | ".join(n for n in names if isinstance(n, str) and n) or None
    role = element.get("role") or element.get("tag")
    css = element.get("pseudo")
    return {
        "target_text": text or None,
        "target_name": name,
        "target_role": role if isinstance(role, str) else None,
        "target_css_text": css if isinstance(css, str) and css else None,
    }


def needs_ocr(fields: dict[str, str | None]) -> bool:
    """Nothing readable in the DOM (an icon, a canvas, text drawn by an image or by CSS the
    browser does not report): the policy then reads the pixels at the point."""
    return not any(fields.get(k) for k in ("target_text", "target_name", "target_css_text"))


def is_password_at(dom: Sequence[dict[str, Any]], x: float, y: float) -> bool:
    """The element under the point is a password field."""
    element = element_at(dom, x, y)
    if element is None:
        return False
    return bool(element.get("password")) or str(element.get("type") or "").lower() == "password"
