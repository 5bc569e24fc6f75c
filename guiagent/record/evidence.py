"""What a step stores about its target so a replay can find it again when the screen changed.

``evidence`` of a StepRecord (all keys optional):

- ``dom``: the element under the point ``{tag, text, role, id, css_path, type, box}``;
  ``box`` in screen points (CSS px in a browser) as ``{x, y, width, height}``;
- ``text``: the OCR text under the point (frame pixels ``text_box`` [x1, y1, x2, y2]);
- ``crop``: path of a PNG crop around the point, ``crop_box`` its [x1, y1, x2, y2] in frame
  pixels, so the point sits at ``(x - crop_box[0], y - crop_box[1])`` inside it;
- ``neighbours``: nearby texts ``[{text, box}]`` (frame pixels) for relative positioning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from guiagent.record.trajectory import Recorder

DEFAULT_RADIUS = 40


def box_xywh(box: Any) -> tuple[float, float, float, float] | None:
    """Read a box as (x, y, width, height) from ``{x,y,width,height}``, ``{left,top,..}`` or [x1,y1,x2,y2]."""
    if box is None:
        return None
    if isinstance(box, Mapping):
        x = box.get("x", box.get("left"))
        y = box.get("y", box.get("top"))
        w, h = box.get("width"), box.get("height")
        if None in (x, y, w, h):
            return None
        return (float(x), float(y), float(w), float(h))
    if hasattr(box, "left") and hasattr(box, "width"):
        return (float(box.left), float(box.top), float(box.width), float(box.height))
    if isinstance(box, Sequence) and len(box) == 4:
        x1, y1, x2, y2 = (float(v) for v in box)
        return (x1, y1, x2 - x1, y2 - y1)
    return None


def element_field(element: Any, name: str) -> Any:
    if isinstance(element, Mapping):
        return element.get(name)
    return getattr(element, name, None)


def dom_at_point(elements: Sequence[Any], x: float, y: float) -> dict[str, Any] | None:
    """The smallest element whose box (screen points) contains the point, as a plain dict."""
    best: tuple[float, Any] | None = None
    for element in elements:
        box = box_xywh(element_field(element, "box"))
        if box is None:
            continue
        bx, by, bw, bh = box
        if bx <= x <= bx + bw and by <= y <= by + bh:
            area = bw * bh
            if best is None or area < best[0]:
                best = (area, element)
    if best is None:
        return None
    element = best[1]
    keys = ("tag", "text", "role", "id", "css_path", "type", "name", "label", "placeholder")
    out = {
        k: element_field(element, k) for k in keys if element_field(element, k) not in (None, "")
    }
    bx, by, bw, bh = box_xywh(element_field(element, "box"))  # type: ignore[misc]
    out["box"] = {"x": bx, "y": by, "width": bw, "height": bh}
    return out


def crop_box_around(
    image: Image.Image, x: float, y: float, radius: int = DEFAULT_RADIUS
) -> list[int]:
    """A [x1, y1, x2, y2] box of about 2*radius around the point, clamped to the image."""
    cx, cy = round(x), round(y)
    return [
        max(0, cx - radius),
        max(0, cy - radius),
        min(image.width, cx + radius),
        min(image.height, cy + radius),
    ]


def collect_evidence(
    recorder: Recorder,
    image: Image.Image,
    frame_point: tuple[float, float],
    dom: dict[str, Any] | None = None,
    text: str | None = None,
    text_box: Sequence[float] | None = None,
    neighbours: list[dict[str, Any]] | None = None,
    radius: int = DEFAULT_RADIUS,
) -> dict[str, Any]:
    """Build a step's ``evidence`` dict, saving the crop around ``frame_point`` through the recorder."""
    box = crop_box_around(image, frame_point[0], frame_point[1], radius)
    evidence: dict[str, Any] = {"crop": recorder.save_crop(image, box), "crop_box": box}
    if dom:
        evidence["dom"] = dom
    if text:
        evidence["text"] = text
        if text_box is not None:
            evidence["text_box"] = [float(v) for v in text_box]
    if neighbours:
        evidence["neighbours"] = neighbours
    return evidence


async def dom_evidence(
    env: Any, x: float, y: float, elements: Sequence[Any] | None = None
) -> dict[str, Any] | None:
    """The DOM evidence of screen point (x, y): the element a click there acts on, with its
    accessible role and name, DOM path, rank among its kind and the named texts around it
    (see guiagent.record.dom_probe); else the smallest of ``elements`` under the point."""
    from guiagent.record.dom_probe import element_at, has_dom

    if has_dom(env):
        node = await element_at(env, x, y, neighbours=True)
        if node is not None:
            return node
    return dom_at_point(elements, x, y) if elements else None
