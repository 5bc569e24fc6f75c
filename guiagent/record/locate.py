"""Find a recorded step's target on the live screen before acting, from its evidence.

In a browser with DOM evidence the DOM decides: strict replay acts only when the element at
the recorded point is the recorded one (role, name, id, DOM path: guiagent.record.match), so
rendering differences between machines (fonts, hinting, a DPR change) do not matter and no
pixels are grabbed; heal re-locates the element among every live one and confirms that a
click at its centre lands on it. Pixels decide only where there is no DOM (a desktop, a
recording without DOM evidence): the region around the point must look like the recorded
crop; heal then tries the OCR text, the crop at several scales, the named neighbours.
The model is asked last, only when one is given and the evidence does not decide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from guiagent.core.env import Environment, Frame
from guiagent.core.geometry import Point
from guiagent.record import compare, match
from guiagent.record.capture import RegionCapture, ScreenBox
from guiagent.record.dom_probe import candidates, element_at, has_dom
from guiagent.record.evidence import DEFAULT_RADIUS, box_xywh, crop_box_around, element_field
from guiagent.record.trajectory import RecordingError, Run, StepRecord

TEMPLATE_MIN_SCORE = 0.8
TEMPLATE_SCALES = (1.0, 0.9, 1.1, 0.8, 1.25, 0.67, 1.5)
OCR_RADIUS = 120  # frame pixels read around a recorded point to learn its text
DOM_KEYS = ("role", "name", "id", "css_path", "text", "label", "placeholder")

# (frame of now, description of the target) -> a frame point, or None when it cannot tell
ModelFallback = Callable[[Frame, str], Awaitable[tuple[float, float] | None]]


@dataclass
class Located:
    """Where a pointed step may act, or why it may not."""

    point: Point | None  # screen point to act at; None: do not act
    method: str = ""
    score: float | None = None
    threshold: float | None = None
    rule: str = ""
    healed: bool = False
    live: dict[str, Any] | None = None  # the live DOM element acted on
    frame: Frame | None = None  # the frame a heal used (saved with --save-healed)
    failure: str | None = None
    crops: dict[str, str] = field(default_factory=dict)


@dataclass
class Target:
    """What a pointed step's pixel check compares: the recorded crop and where it sits now."""

    fp: tuple[float, float]  # recorded frame point
    sp: tuple[float, float]  # recorded screen point
    box: list[int]  # the crop's box in the recorded frame's pixels
    expected: Image.Image
    screen_box: ScreenBox
    scale: float  # recorded frame pixels per screen point
    mask: Any = None  # pixels of ``expected`` to compare (None: all); redacted ones are left out
    coverage: float = 1.0  # the share of ``expected`` compared


class Locator:
    """Locates the targets of one replay (holds the environment, the capture, the out dir)."""

    def __init__(
        self,
        run: Run,
        env: Environment,
        heal: bool,
        out_dir: Path,
        threshold: float,
        settle_timeout: float,
        grounder: Any = None,
        model: ModelFallback | None = None,
    ) -> None:
        self.run, self.env, self.heal, self.out_dir = run, env, heal, out_dir
        self.threshold, self.settle_timeout = threshold, settle_timeout
        self.grounder, self.model = grounder, model
        self.capture = RegionCapture(env)
        self.dom = has_dom(env)

    async def close(self) -> None:
        await self.capture.close()

    async def locate(
        self, step: StepRecord, name: str, seen: Mapping[str, Any] | None = None
    ) -> Located:
        """``seen``: the element at the recorded point, already read for this step."""
        sp = step.screen_point()
        if sp is None:
            return Located(point=None, failure=f"step {step.index}: no recorded point")
        recorded = (step.evidence or {}).get("dom")
        if self.dom and isinstance(recorded, Mapping) and any(recorded.get(k) for k in DOM_KEYS):
            return await self._by_dom(step, name, sp, dict(recorded), seen)
        return await self._by_pixels(step, name, sp)

    # -- the DOM decides ----------------------------------------------------------------

    async def _by_dom(
        self,
        step: StepRecord,
        name: str,
        sp: tuple[float, float],
        recorded: dict[str, Any],
        seen: Mapping[str, Any] | None,
    ) -> Located:
        deadline = time.monotonic() + self.settle_timeout
        pause = 0.02
        live: dict[str, Any] | None = dict(seen) if seen else None
        while True:  # the page may still be catching up with the previous step
            if live is None:
                live = await element_at(self.env, *sp)
            differs = match.same_element(recorded, live)
            if differs is None and recorded.get("neighbours"):
                differs = await self._beside_elsewhere(recorded, sp, live or {})
            if differs is None:
                agreed = match.score(recorded, live or {})
                return Located(
                    point=Point(*sp),
                    method="dom",
                    score=round(agreed.score, 3),
                    rule=agreed.rule,
                    live=live,
                )
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(pause)
            pause = min(0.1, pause * 2)
            live = None
        where = f"step {step.index} ({name} at screen {sp[0]:.0f},{sp[1]:.0f})"
        why = (
            f"{where}: the element at the point is not the recorded target"
            f" ({_describe(recorded)}): found {_describe(live)}; {differs.rule}"
        )
        if not self.heal:
            return await self._failed(step, sp, why, differs.score)
        healed = await self._heal_dom(step, sp, recorded)
        if healed.point is None:
            return await self._failed(step, sp, f"{why}; heal: {healed.rule}", differs.score)
        return healed

    async def _beside_elsewhere(
        self, recorded: Mapping[str, Any], sp: tuple[float, float], live: Mapping[str, Any]
    ) -> match.Match | None:
        """The element at the point has the recorded name: None unless the texts recorded
        beside the target now sit elsewhere around it (a same-named button in another row)."""
        around = await element_at(self.env, *sp, neighbours=True)
        moved = match.neighbours_moved(
            recorded.get("neighbours") or [],
            (around or {}).get("neighbours") or [],
            match.element_name(recorded),
        )
        if moved is None:
            return None
        return match.Match(element=dict(live), score=0.0, disagreed=[moved])

    async def _heal_dom(
        self, step: StepRecord, sp: tuple[float, float], recorded: dict[str, Any]
    ) -> Located:
        elements, texts = await candidates(self.env)
        decision = match.decide(recorded, elements, texts)
        frame = await self.env.observe()
        chosen, method = decision.match, None
        if chosen is not None:
            method = _method(chosen)
        elif self.model is not None:
            chosen = await self._ask_model(frame, step, recorded)
            method = "model"
        if chosen is None:
            return Located(point=None, rule=decision.rule)
        centre = match.centre(chosen.element.get("box"))
        if centre is None:
            return Located(point=None, rule=f"the chosen element has no box: {chosen.rule}")
        landed = await element_at(self.env, *centre)
        if landed is None or landed.get("css_path") != chosen.element.get("css_path"):
            return Located(
                point=None,
                rule=f"{decision.rule}; but a click at its centre lands on {_describe(landed)}",
            )
        return Located(
            point=Point(*centre),
            method=method or "dom",
            score=round(chosen.score, 3),
            rule=decision.rule if method != "model" else f"model; {chosen.rule}",
            healed=True,
            live=landed,
            frame=frame,
        )

    async def _ask_model(
        self, frame: Frame, step: StepRecord, recorded: dict[str, Any]
    ) -> match.Match | None:
        assert self.model is not None
        point = await self.model(frame, describe_target(step))
        if point is None:
            return None
        screen = frame.transform.frame_to_screen(Point(*point))
        live = await element_at(self.env, screen.x, screen.y)
        if live is None:
            return None
        scored = match.score(recorded, live)
        return None if scored.veto else scored

    # -- pixels decide (no DOM) -----------------------------------------------------------

    async def _by_pixels(self, step: StepRecord, name: str, sp: tuple[float, float]) -> Located:
        target = self.target(step)
        if target is None:
            return Located(
                point=Point(*sp), method="unchecked", rule="no recorded crop or frame to compare"
            )
        if target.coverage < compare_min_coverage:
            return Located(
                point=Point(*sp),
                method="unchecked",
                rule=f"not checked ({target.coverage:.0%} of the recorded crop is left after redaction)",
            )
        score, actual = await self._compare(target)
        if score <= self.threshold:
            return Located(
                point=Point(*sp), method="pixels", score=round(score, 4), threshold=self.threshold
            )
        located = Located(point=None, score=round(score, 4), threshold=self.threshold)
        located.crops = self._save_crops(step, target.expected, actual)
        located.failure = (
            f"step {step.index} ({name} at screen {sp[0]:.0f},{sp[1]:.0f}): the screen around "
            f"the target differs from the recording: score {score:.3f} > threshold {self.threshold:.3f}"
            f" (expected {located.crops['expected']}, actual {located.crops['actual']},"
            f" side by side {located.crops['side_by_side']})"
        )
        if not self.heal:
            return located
        frame = await self.env.observe()
        healed = await self._heal_pixels(step, target, frame)
        if healed is None:
            located.failure += "; healing found no match from OCR text, crop or neighbours"
            return located
        method, point = healed
        return Located(
            point=point,
            method=method,
            score=located.score,
            threshold=self.threshold,
            healed=True,
            frame=frame,
        )

    def target(self, step: StepRecord) -> Target | None:
        fp, sp = step.frame_point(), step.screen_point()
        if fp is None or sp is None:
            return None
        scale = recorded_scale(step)
        found = self._evidence_crop(step)
        if (
            found is not None
            and found[1][0] <= fp[0] <= found[1][2]
            and found[1][1] <= fp[1] <= found[1][3]
        ):
            expected, box = found
        else:
            recorded = self.run.frame_image(step)
            if recorded is None:
                return None
            box = crop_box_around(recorded, fp[0], fp[1], DEFAULT_RADIUS)
            expected = compare.crop(recorded, box)
        screen_box = (
            sp[0] + (box[0] - fp[0]) / scale,
            sp[1] + (box[1] - fp[1]) / scale,
            sp[0] + (box[2] - fp[0]) / scale,
            sp[1] + (box[3] - fp[1]) / scale,
        )
        redacted = [
            [round(float(v)) for v in r["box"]]
            for r in step.redactions
            if isinstance(r, Mapping) and isinstance(r.get("box"), list) and len(r["box"]) == 4
        ]
        target = Target(fp, sp, box, expected, screen_box, scale)
        if redacted:
            # the recorder blacked these out: the live screen shows them, so leave them out
            target.mask = compare.unmasked(expected.size, (box[0], box[1]), redacted)
            target.coverage = float(target.mask.mean())
        return target

    def _evidence_crop(self, step: StepRecord) -> tuple[Image.Image, list[int]] | None:
        evidence = step.evidence or {}
        crop_path, crop_box = evidence.get("crop"), evidence.get("crop_box")
        if not crop_path or not isinstance(crop_box, list) or len(crop_box) != 4:
            return None
        box = [round(float(v)) for v in crop_box]
        try:
            with Image.open(self.run.file(str(crop_path))) as im:
                image = im.convert("RGB")
        except (OSError, ValueError, RecordingError):  # unreadable, or a path leaving the run
            return None
        if image.size != (box[2] - box[0], box[3] - box[1]):
            return None
        return image, box

    async def _compare(self, target: Target) -> tuple[float, Image.Image]:
        """Grab the target's region until it matches or settle_timeout passes; return the last score."""
        deadline = time.monotonic() + self.settle_timeout
        pause = 0.01
        while True:
            actual = await self.capture.grab(target.screen_box)
            score = compare.difference(target.expected, actual, target.mask)
            if score <= self.threshold or time.monotonic() >= deadline:
                return score, actual
            await asyncio.sleep(pause)
            pause = min(0.05, pause * 2)

    async def _failed(
        self, step: StepRecord, sp: tuple[float, float], why: str, score: float
    ) -> Located:
        """A DOM disagreement: keep the recorded and live crops side by side, and the pixel score."""
        located = Located(point=None, method="dom", rule=why)
        target = self.target(step)
        if target is not None:
            pixel_score, actual = await self._compare_once(target)
            located.score, located.threshold = round(pixel_score, 4), self.threshold
            located.crops = self._save_crops(step, target.expected, actual)
            relation = ">" if pixel_score > self.threshold else "<="
            why += (
                f"; the screen around it: score {pixel_score:.3f} {relation} threshold {self.threshold:.3f}"
                f" (expected {located.crops['expected']}, actual {located.crops['actual']},"
                f" side by side {located.crops['side_by_side']})"
            )
        else:
            located.score = round(score, 3)
        located.failure = why
        return located

    async def _compare_once(self, target: Target) -> tuple[float, Image.Image]:
        actual = await self.capture.grab(target.screen_box)
        return compare.difference(target.expected, actual, target.mask), actual

    def _save_crops(
        self, step: StepRecord, expected: Image.Image, actual: Image.Image
    ) -> dict[str, str]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        out = {}
        for key, image in (
            ("expected", expected),
            ("actual", actual),
            ("side_by_side", side_by_side(expected, actual)),
        ):
            path = self.out_dir / f"step{step.index:04d}-{key.replace('_', '-')}.png"
            image.save(path)
            out[key] = str(path)
        return out

    async def _heal_pixels(
        self, step: StepRecord, target: Target, frame: Frame
    ) -> tuple[str, Point] | None:
        attempts: tuple[Callable[[], Awaitable[tuple[str, tuple[float, float]] | None]], ...] = (
            lambda: self._heal_ocr(step, target.fp, frame),
            lambda: asyncio.to_thread(heal_template, target, frame),
            lambda: self._heal_neighbours(step, target.fp, frame),
        )
        for attempt in attempts:
            hit = await attempt()
            if hit:
                return hit[0], frame.transform.frame_to_screen(Point(*hit[1]))
        if self.model is not None:
            point = await self.model(frame, describe_target(step))
            if point is not None:
                return "model", frame.transform.frame_to_screen(Point(*point))
        return None

    async def _heal_ocr(
        self, step: StepRecord, fp: tuple[float, float], frame: Frame
    ) -> tuple[str, tuple[float, float]] | None:
        """The text under the recorded point, found again on the new frame; returns a frame point."""
        if self.grounder is None:
            return None
        text = (step.evidence or {}).get("text")
        if not text:
            recorded = self.run.frame_image(step)
            if recorded is None:
                return None
            # read only around the point: OCR of a whole frame costs seconds, of a crop far less
            box = crop_box_around(recorded, fp[0], fp[1], OCR_RADIUS)
            x, y = fp[0] - box[0], fp[1] - box[1]
            for tb in await read_text(self.grounder, Frame.from_image(recorded.crop(box))):
                xywh = box_xywh(element_field(tb, "box"))
                if xywh and xywh[0] <= x <= xywh[0] + xywh[2] and xywh[1] <= y <= xywh[1] + xywh[3]:
                    text = element_field(tb, "text")
                    break
        if not text:
            return None
        points = _text_centres(await read_text(self.grounder, frame), str(text))
        if len(points) == 1:
            return ("ocr_text", points[0])
        if len(points) > 1:
            best = min(points, key=lambda p: Point(*p).distance(Point(*fp)))
            return (f"ocr_text(nearest of {len(points)})", best)
        return None

    async def _heal_neighbours(
        self, step: StepRecord, fp: tuple[float, float], frame: Frame
    ) -> tuple[str, tuple[float, float]] | None:
        """Keep the offset from a recorded neighbouring text that is still on screen (unique)."""
        neighbours = (step.evidence or {}).get("neighbours") or []
        if self.grounder is None or not neighbours:
            return None
        found = await read_text(self.grounder, frame)
        for neighbour in neighbours:
            old = _centre(neighbour.get("box"))
            hits = _text_centres(found, str(neighbour.get("text") or ""))
            if old is not None and len(hits) == 1:
                return (
                    f"neighbour:{neighbour.get('text')}",
                    (hits[0][0] + fp[0] - old[0], hits[0][1] + fp[1] - old[1]),
                )
        return None


compare_min_coverage = 0.1  # a crop with less left after redaction is not compared


def heal_template(target: Target, frame: Frame) -> tuple[str, tuple[float, float]] | None:
    """Find the recorded crop on the new frame at several scales; returns a frame point."""
    base = frame.transform.scale / target.scale
    best: tuple[float, tuple[float, float], float] | None = None
    for factor in TEMPLATE_SCALES:
        found = compare.template_match(frame.image, target.expected, base * factor)
        if found is not None and (best is None or found[0] > best[0]):
            best = (found[0], found[1], base * factor)
        if best is not None and best[0] >= 0.97:
            break
    if best is None or best[0] < TEMPLATE_MIN_SCORE:
        return None
    score, (mx, my), scale = best
    point = (
        mx + (target.fp[0] - target.box[0]) * scale,
        my + (target.fp[1] - target.box[1]) * scale,
    )
    label = (
        f"template({score:.2f})" if scale == base else f"template({score:.2f}, x{scale / base:g})"
    )
    return (label, point)


def side_by_side(expected: Image.Image, actual: Image.Image) -> Image.Image:
    """The recorded crop (left) and the live one (right) on one image, labelled."""
    height = max(expected.height, actual.height) + 16
    out = Image.new("RGB", (expected.width + actual.width + 8, height), "white")
    out.paste(expected, (0, 16))
    out.paste(actual, (expected.width + 8, 16))
    draw = ImageDraw.Draw(out)
    draw.text((2, 2), "recorded", fill=(0, 0, 0))
    draw.text((expected.width + 10, 2), "now", fill=(0, 0, 0))
    return out


def recorded_scale(step: StepRecord) -> float:
    transform = step.meta.get("transform") or {}
    if isinstance(transform, Mapping) and transform.get("scale"):
        return float(transform["scale"])
    if step.meta.get("scale"):
        return float(step.meta["scale"])
    return 1.0


async def read_text(grounder: Any, frame: Frame) -> list[Any]:
    if hasattr(grounder, "aread_text"):
        return list(await grounder.aread_text(frame))
    return list(await asyncio.to_thread(grounder.read_text, frame))


def _centre(box: Any) -> tuple[float, float] | None:
    xywh = box_xywh(box)
    return None if xywh is None else (xywh[0] + xywh[2] / 2, xywh[1] + xywh[3] / 2)


def _text_centres(found: list[Any], text: str) -> list[tuple[float, float]]:
    wanted = compare.normalise_text(text)
    return [
        c
        for tb in found
        if wanted
        and compare.normalise_text(str(element_field(tb, "text") or "")) == wanted
        and (c := _centre(element_field(tb, "box"))) is not None
    ]


def _describe(element: Mapping[str, Any] | None) -> str:
    if not element:
        return "nothing"
    role = element.get("role") or element.get("tag") or "element"
    name = element.get("name") or element.get("text") or element.get("label") or ""
    extra = f" #{element['id']}" if element.get("id") else ""
    return f"{role} {str(name)[:60]!r}{extra}" if name else f"{role}{extra}"


def _method(chosen: match.Match) -> str:
    """The strongest signal that agreed: dom:id, dom:name, dom:field, dom:neighbours or dom:evidence."""
    for prefix, label in (
        ("id ", "id"),
        ("name ", "name"),
        ("field ", "field"),
        ("beside ", "neighbours"),
    ):
        if any(a.startswith(prefix) and "~" not in a for a in chosen.agreed):
            return f"dom:{label}"
    return "dom:evidence"


def describe_target(step: StepRecord) -> str:
    evidence = step.evidence or {}
    dom = evidence.get("dom") or {}
    parts = [
        str(p)
        for p in (dom.get("name") or dom.get("text"), evidence.get("text"), dom.get("role"))
        if p
    ]
    return " ".join(parts) or f"the target of a {step.action_name} at {step.screen_point()}"
