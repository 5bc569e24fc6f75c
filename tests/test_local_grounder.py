"""LocalGrounder on generated frames (real RapidOCR, real OpenCV) and on the demo web app
rendered by real headless Chromium (DOM source)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydantic import ValidationError

from guiagent.core.env import Frame
from guiagent.core.geometry import FrameTransform, Point, Rect, Size, transform_for_page
from guiagent.demo import WEBAPP_DIR
from guiagent.grounding.local import (
    DOM_SNAPSHOT_JS,
    AmbiguousTarget,
    DomElement,
    GroundResult,
    LocalGrounder,
    Target,
    TargetNotFound,
    match_text,
)
from guiagent.grounding.ocr import (
    OcrEngine,
    ScreenReader,
    TextBox,
    changed_regions,
    merge_regions,
)
from guiagent.grounding.template import TemplateError

FONT_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD_PATH = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
SIZE = (1280, 800)

# A screen of similar density to an app: a header, a list of rows with repeated buttons.
SCREEN = [
    ("Inbox settings", 40, 30),
    ("Sign out", 1120, 30),
    ("Welcome, Margaret", 40, 110),
    ("Buy milk", 40, 200),
    ("Delete", 420, 200),
    ("Write report", 40, 260),
    ("Delete", 420, 260),
    ("Call Anna", 40, 320),
    ("Delete", 420, 320),
    ("3 items left", 40, 420),
    ("Language preferences", 700, 560),
]


@pytest.fixture(scope="module")
def engine() -> OcrEngine:
    return OcrEngine()  # one engine for the whole module: each full read costs ~0.5-1.5 s


@pytest.fixture(scope="module")
def font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_PATH, 24)


def draw_screen(
    items: list[tuple[str, int, int]], font: ImageFont.FreeTypeFont
) -> tuple[Image.Image, list[tuple[str, tuple[int, int, int, int]]]]:
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    drawn = []
    for text, x, y in items:
        draw.text((x, y), text, fill="black", font=font)
        drawn.append((text, draw.textbbox((x, y), text, font=font)))
    return image, drawn


@pytest.fixture(scope="module")
def screen(
    font: ImageFont.FreeTypeFont,
) -> tuple[Frame, list[tuple[str, tuple[int, int, int, int]]]]:
    image, drawn = draw_screen(SCREEN, font)
    return Frame.from_image(image), drawn


@pytest.fixture(scope="module")
def grounder(engine: OcrEngine) -> LocalGrounder:
    return LocalGrounder(engine)


def close_to(
    box: Rect, expected: tuple[float, float, float, float], tolerance: float = 4.0
) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(box.as_xyxy(), expected, strict=True))


# --- OCR boxes ------------------------------------------------------------------------


def test_read_text_gives_tight_boxes_for_drawn_text(grounder: LocalGrounder, screen: Any) -> None:
    frame, drawn = screen
    lines = grounder.read_text(frame)
    assert [line.text for line in lines] == [text for text, _, _ in SCREEN]
    for line, (text, bbox) in zip(lines, drawn, strict=True):
        assert line.text == text
        assert close_to(line.box, bbox), (text, line.box, bbox)
        assert 0.5 <= line.confidence <= 1.0
    assert lines == grounder.read_text(frame)
    assert grounder.reader.stats.mode == "cache"


def test_exact_text_target_box_and_point(grounder: LocalGrounder, screen: Any) -> None:
    frame, drawn = screen
    result = grounder.ground(frame, "sign OUT")  # case-insensitive by default
    expected = dict(drawn)["Sign out"]
    assert result.source == "ocr"
    assert close_to(result.box, expected)
    assert result.point == result.box.centre
    assert result.confidence > 0.9
    assert result.model_dump()["box"] == [
        result.box.left,
        result.box.top,
        result.box.width,
        result.box.height,
    ]
    assert GroundResult.model_validate_json(result.model_dump_json()) == result


def test_sub_phrase_gets_a_proportional_sub_box(
    grounder: LocalGrounder, screen: Any, font: ImageFont.FreeTypeFont
) -> None:
    frame, _ = screen
    result = grounder.ground(frame, "Margaret")
    draw = ImageDraw.Draw(Image.new("RGB", (10, 10)))
    x = 40 + draw.textlength("Welcome, ", font=font)
    expected_left, expected_right = x, 40 + draw.textlength("Welcome, Margaret", font=font)
    assert abs(result.box.left - expected_left) <= 12
    assert abs(result.box.right - expected_right) <= 6
    assert result.text == "Margaret"
    assert 0.75 < result.confidence < 0.98  # a phrase inside a line ranks below an exact line


def test_exact_flag_is_case_sensitive(grounder: LocalGrounder, screen: Any) -> None:
    frame, _ = screen
    with pytest.raises(TargetNotFound):
        grounder.ground(frame, Target(text="sign out", exact=True))
    assert grounder.ground(frame, Target(text="Sign out", exact=True)).confidence > 0.9


def test_fuzzy_match_scores_below_exact(grounder: LocalGrounder, screen: Any) -> None:
    frame, drawn = screen
    result = grounder.ground(frame, "Language preferance")
    assert close_to(result.box, dict(drawn)["Language preferences"])
    assert result.confidence < 0.75


def test_match_text_ranking() -> None:
    exact = match_text("Save", "save")
    phrase = match_text("Save", "Save settings")
    substring = match_text("ave", "Save settings")
    fuzzy = match_text("Sve settings", "Save settings")
    assert exact and phrase and substring and fuzzy
    assert exact.score > phrase.score > fuzzy.score > substring.score
    assert (phrase.start, phrase.end) == (0, 4)
    assert match_text("Export", "Save settings") is None
    assert match_text("Task number 6", "Task number 1") is None  # numbers must agree
    assert match_text("3 itens left", "3 items left") is not None
    assert match_text("save", "Save", exact=True) is None


# --- ambiguity and its resolution -------------------------------------------------------


def test_ambiguous_target_names_every_candidate(grounder: LocalGrounder, screen: Any) -> None:
    frame, drawn = screen
    with pytest.raises(AmbiguousTarget) as caught:
        grounder.ground(frame, "Delete")
    error = caught.value
    assert len(error.candidates) == 3
    delete_boxes = [bbox for text, bbox in drawn if text == "Delete"]
    for (text, box, _score), bbox in zip(error.candidates, delete_boxes, strict=True):
        assert text == "Delete" and close_to(box, bbox)
        assert f"[{box.left:.0f},{box.top:.0f}" in str(error)
    assert "nth, near or in_region" in str(error)


def test_nth_near_and_in_region_resolve_ambiguity(grounder: LocalGrounder, screen: Any) -> None:
    frame, drawn = screen
    deletes = [bbox for text, bbox in drawn if text == "Delete"]
    second = grounder.ground(frame, Target(text="Delete", nth=2))
    assert close_to(second.box, deletes[1])
    assert {r.reason for r in second.candidates_rejected} == {"not match 2 in reading order"}
    near = grounder.ground(frame, Target(text="Delete", near="Call Anna"))
    assert close_to(near.box, deletes[2])
    in_rect = grounder.ground(frame, Target(text="Delete", in_region=[380, 180, 200, 60]))
    assert close_to(in_rect.box, deletes[0])
    in_row = grounder.ground(frame, Target(text="Delete", in_region="Write report"))
    assert close_to(in_row.box, deletes[1])
    with pytest.raises(TargetNotFound, match="only 3 found"):
        grounder.ground(frame, Target(text="Delete", nth=4))


def test_not_found_lists_closest_texts(grounder: LocalGrounder, screen: Any) -> None:
    frame, _ = screen
    with pytest.raises(TargetNotFound) as caught:
        grounder.ground(frame, "Sign up now")
    assert caught.value.closest[0] == "Sign out"
    assert "closest texts seen: 'Sign out'" in str(caught.value)
    with pytest.raises(TargetNotFound, match="near text 'Nowhere' not found"):
        grounder.ground(frame, Target(text="Delete", near="Nowhere"))


def test_role_is_only_a_hint_for_pixels(grounder: LocalGrounder, screen: Any) -> None:
    frame, _ = screen
    plain = grounder.ground(frame, "Sign out")
    with_role = grounder.ground(frame, Target(text="Sign out", role="button"))
    assert with_role.box == plain.box
    assert with_role.confidence < plain.confidence


def test_bad_targets_are_named_errors(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="exactly one of text or image"):
        Target()
    with pytest.raises(ValidationError, match="exactly one of text or image"):
        Target(text="a", image=tmp_path / "x.png")
    with pytest.raises(ValidationError, match="blank"):
        Target(text="   ")
    with pytest.raises(ValidationError):
        Target(text="a", nth=0)


def test_async_wrappers(grounder: LocalGrounder, screen: Any) -> None:
    frame, drawn = screen

    async def both() -> tuple[Any, Any]:
        return await asyncio.gather(
            grounder.aground(frame, "Call Anna"), grounder.aread_text(frame)
        )

    result, lines = asyncio.run(both())
    assert close_to(result.box, dict(drawn)["Call Anna"])
    assert len(lines) == len(SCREEN)
    found = grounder.find_text(frame, "delete")
    assert len(found) == 3 and all(t.text == "Delete" for t in found)


# --- partial re-OCR -----------------------------------------------------------------------


def test_partial_reocr_reads_only_changed_regions(
    engine: OcrEngine, grounder: LocalGrounder, screen: Any, font: ImageFont.FreeTypeFont
) -> None:
    before, _ = screen
    changed_items = [item for item in SCREEN if item[0] != "3 items left"]
    changed_items += [("4 items left", 40, 420), ("Saved", 900, 700)]
    after, drawn_after = draw_screen(changed_items, font)

    reader = grounder.reader  # has usually read `screen` already (a cache hit then)
    reader.read(before)
    assert reader.stats.mode in ("full", "cache")
    calls, pixels = engine.calls, engine.pixels
    partial = reader.read(Frame.from_image(after))
    assert reader.stats.mode == "partial"
    assert len(reader.stats.crops) == 2
    assert engine.calls - calls == 2
    assert engine.pixels - pixels == reader.stats.pixels < 0.03 * SIZE[0] * SIZE[1]
    # Only the two changed spots were looked at.
    for x1, y1, x2, y2 in reader.stats.crops:
        assert (x1 <= 40 and y1 >= 380 and y2 <= 480 and x2 <= 300) or (x1 >= 800 and y1 >= 640)

    full = ScreenReader(engine).read(Frame.from_image(after), incremental=False)
    assert [b.text for b in partial] == [b.text for b in full]
    for a, b in zip(partial, full, strict=True):
        assert close_to(a.box, b.box.as_xyxy(), tolerance=2)
    assert "4 items left" in [b.text for b in partial] and "3 items left" not in [
        b.text for b in partial
    ]
    assert close_to(next(b.box for b in partial if b.text == "Saved"), dict(drawn_after)["Saved"])

    reader.read(before)  # seen before: from the cache
    assert reader.stats.mode == "cache"


def test_changed_regions_groups_tiles() -> None:
    old = np.zeros((100, 200, 3), dtype=np.uint8)
    new = old.copy()
    new[10:20, 10:30] = 255
    new[70:75, 150:190] = 255
    assert changed_regions(old, new, tile=16) == [(0, 0, 32, 32), (144, 64, 192, 80)]
    assert changed_regions(old, old) == []
    with pytest.raises(ValueError, match="differ in size"):
        changed_regions(old, new[:50])


def test_partial_path_falls_back_to_full_read_on_big_changes(
    engine: OcrEngine, font: ImageFont.FreeTypeFont
) -> None:
    # Small frames keep this cheap: a change covering most of the frame re-reads it whole.
    small = Image.new("RGB", (320, 120), "white")
    ImageDraw.Draw(small).text((10, 40), "Ready", fill="black", font=font)
    inverted = Image.eval(small, lambda v: 255 - v)
    reader = ScreenReader(engine)
    reader.read(Frame.from_image(small))
    lines = reader.read(Frame.from_image(inverted))
    assert reader.stats.mode == "full"
    assert [line.text for line in lines] == ["Ready"]


# --- bounded incremental reading (the old merge_regions never returned for these) ---------


@pytest.mark.timeout(60)
def test_merge_regions_ends_when_a_line_touches_the_frame_edge() -> None:
    # A line read at the very edge: its padded box leaves the frame. The old fixpoint grew
    # the crop to it, clipped it back to the frame, saw a difference again, forever.
    line = TextBox(text="File", box=Rect(1.0, 1.0, 40.0, 12.0), confidence=0.9)
    corner = TextBox(text="Ready", box=Rect(160.0, 90.0, 39.0, 10.0), confidence=0.9)
    # Region + margin (24, 12) -> (0, 0, 40, 28); swallows the line's (0, 0, 43, 15),
    # then the final padding: (0, 0, 67, 40).
    assert merge_regions([(0, 0, 16, 16)], [line], (200, 100)) == [(0, 0, 67, 40)]
    crops = merge_regions([(176, 84, 200, 100)], [line, corner], (200, 100))
    assert crops == [(128, 60, 200, 100)]


def scattered(
    seed: int, spots: int, lines: int, size: tuple[int, int] = (1920, 1080)
) -> tuple[list[tuple[int, int, int, int]], list[TextBox]]:
    """Changed regions of many small scattered spots, and many old lines, some at the edges."""
    rng = np.random.default_rng(seed)
    width, height = size
    old = np.zeros((height, width), dtype=np.uint8)
    new = old.copy()
    xs, ys = rng.integers(0, width - 3, spots), rng.integers(0, height - 3, spots)
    for x, y in zip(xs, ys, strict=True):
        new[y : y + 3, x : x + 3] = 255
    boxes = [
        TextBox(text="w", box=Rect(float(x), float(y), float(w), float(h)), confidence=0.9)
        for x, y, w, h in zip(
            rng.integers(0, width - 20, lines),
            rng.integers(0, height - 8, lines),
            rng.integers(10, 120, lines),
            rng.integers(6, 16, lines),
            strict=True,
        )
    ]
    return changed_regions(old, new), boxes


@pytest.mark.timeout(120)
@pytest.mark.parametrize("spots,lines", [(300, 1000), (3000, 3000), (60, 400)])
def test_merge_regions_stays_bounded_on_scattered_changes(spots: int, lines: int) -> None:
    size = (1920, 1080)
    regions, boxes = scattered(spots + lines, spots, lines, size)
    assert len(regions) > 40
    crops = merge_regions(regions, boxes, size)
    assert crops
    for x1, y1, x2, y2 in crops:
        assert 0 <= x1 < x2 <= size[0] and 0 <= y1 < y2 <= size[1]
    # The fixpoint holds: crops are disjoint, cover every change, and every old line a crop
    # touches lies wholly inside one (so it is read whole, not cut).
    for i, a in enumerate(crops):
        assert not any(_overlaps(a, b) for b in crops[i + 1 :])
    for region in regions:
        assert any(_inside(region, crop) for crop in crops)
    for box in boxes:
        padded = _clip_box(box, size)
        if any(_overlaps(padded, crop) for crop in crops):
            assert any(_inside(padded, crop) for crop in crops)
    # Too many rounds to settle: the whole frame is the (always safe) answer.
    assert merge_regions(regions, boxes, size, max_rounds=1) in (crops, [(0, 0, *size)])


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _inside(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[2] <= b[2] and a[3] <= b[3]


def _clip_box(box: TextBox, size: tuple[int, int]) -> tuple[int, int, int, int]:
    x1, y1 = int(box.box.left) - 2, int(box.box.top) - 2
    x2, y2 = int(np.ceil(box.box.right)) + 2, int(np.ceil(box.box.bottom)) + 2
    return (max(0, x1), max(0, y1), min(size[0], x2), min(size[1], y2))


BIG = (1920, 1080)


def draw_big(items: list[tuple[str, int, int]], font: ImageFont.FreeTypeFont) -> Image.Image:
    image = Image.new("RGB", BIG, "white")
    draw = ImageDraw.Draw(image)
    for text, x, y in items:
        draw.text((x, y), text, fill="black", font=font)
    return image


def small_crop(text: str, font: ImageFont.FreeTypeFont) -> Frame:
    image = Image.new("RGB", (200, 40), "white")
    ImageDraw.Draw(image).text((1, 1), text, fill="black", font=font)  # ink at the edges
    return Frame.from_image(image)


@pytest.mark.timeout(300)
def test_incremental_reads_after_a_crop_stay_bounded_and_match_full_reads(
    engine: OcrEngine, font: ImageFont.FreeTypeFont
) -> None:
    # The reported shape: one grounder (incremental, the default) reads a small crop, then
    # full-HD frames whose text sits at the frame's edges, with sizes alternating.
    grounder = LocalGrounder(engine)
    assert grounder.incremental
    reader = grounder.reader
    items = [
        ("File", 0, 0),
        ("Dashboard overview", 760, 300),
        ("Pending invoices", 760, 520),
        ("Connected", 1780, 1056),
    ]
    assert [b.text for b in grounder.read_text(small_crop("Ready", font))] == ["Ready"]

    first = Frame.from_image(draw_big(items, font))
    assert [b.text for b in grounder.read_text(first)] == [text for text, _, _ in items]
    assert reader.stats.mode == "full"  # another size than the crop: nothing to diff against

    changed = [("Edit", 0, 0), *items[1:3], ("Offline", 1810, 1056)]
    second = Frame.from_image(draw_big(changed, font))
    lines = grounder.read_text(second)
    assert reader.stats.mode == "partial"
    full = ScreenReader(engine).read(second, incremental=False)
    assert [b.text for b in lines] == [b.text for b in full] == [t for t, _, _ in changed]
    for a, b in zip(lines, full, strict=True):
        assert close_to(a.box, b.box.as_xyxy(), tolerance=2)

    assert [b.text for b in grounder.read_text(small_crop("Saved", font))] == ["Saved"]
    assert reader.stats.mode == "full"
    assert [b.text for b in grounder.read_text(second)] == [t for t, _, _ in changed]
    assert reader.stats.mode == "cache"


@pytest.mark.timeout(300)
def test_scattered_or_checkerboard_changes_fall_back_to_a_full_read(
    engine: OcrEngine, font: ImageFont.FreeTypeFont
) -> None:
    size = (640, 240)
    items = [("Queue", 0, 0), ("Ready to send", 200, 100)]
    base = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(base)
    for text, x, y in items:
        draw.text((x, y), text, fill="black", font=font)
    expected = [text for text, _, _ in items]
    reader = ScreenReader(engine, max_regions=20)
    reader.read(Frame.from_image(base))

    # Many separate small changes (isolated tiles with gaps): more regions than the cap.
    dotted = np.asarray(base).copy()
    dotted[4::32, 4::32] = (200, 200, 200)
    assert len(changed_regions(np.asarray(base), dotted)) > 20
    assert [b.text for b in reader.read(Frame.from_image(Image.fromarray(dotted)))] == expected
    assert reader.stats.mode == "full"

    # Everything changed in a checkerboard of small tiles: one huge region, read whole.
    board = np.asarray(base).copy()
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    tint = ((yy // 8 + xx // 8) % 2 == 0) & (board.min(axis=2) > 200)
    board[tint] = (215, 215, 215)
    assert [b.text for b in reader.read(Frame.from_image(Image.fromarray(board)))] == expected
    assert reader.stats.mode == "full"

    # An RGBA frame of the same size: another pixel layout, no diff (it used to raise).
    rgba = Frame(
        image=base.convert("RGBA"), transform=Frame.from_image(base).transform, surface="image"
    )
    assert [b.text for b in reader.read(rgba)] == expected
    assert reader.stats.mode == "full"


# --- templates ------------------------------------------------------------------------


def make_icon() -> Image.Image:
    icon = Image.new("RGB", (40, 40), "white")
    draw = ImageDraw.Draw(icon)
    draw.ellipse((2, 2, 37, 37), outline="black", width=3, fill=(30, 120, 200))
    draw.line((10, 20, 30, 20), fill="white", width=4)
    draw.line((20, 10, 20, 30), fill="white", width=4)
    draw.rectangle((26, 4, 36, 12), fill=(220, 40, 40))
    return icon


def framed_icon(scale: float, at: tuple[int, int], font: ImageFont.FreeTypeFont) -> Frame:
    image, _ = draw_screen(SCREEN[:3], font)
    icon = make_icon()
    size = round(40 * scale)
    image.paste(icon.resize((size, size), Image.Resampling.LANCZOS), at)
    return Frame.from_image(image)


@pytest.mark.parametrize("scale", [1.0, 1.25, 2.0])
def test_template_matches_at_several_scales(
    grounder: LocalGrounder, font: ImageFont.FreeTypeFont, tmp_path: Path, scale: float
) -> None:
    path = tmp_path / "icon.png"
    make_icon().save(path)
    frame = framed_icon(scale, (600, 300), font)
    result = grounder.ground(frame, Target(image=path))
    size = 40 * scale
    assert result.source == "template"
    assert close_to(result.box, (600, 300, 600 + size, 300 + size), tolerance=3)
    assert result.confidence > 0.85


def test_template_ambiguity_and_errors(
    grounder: LocalGrounder, font: ImageFont.FreeTypeFont, tmp_path: Path
) -> None:
    image, _ = draw_screen(SCREEN[:3], font)
    icon = make_icon()
    image.paste(icon, (300, 500))
    image.paste(icon, (900, 500))
    frame = Frame.from_image(image)
    with pytest.raises(AmbiguousTarget) as caught:
        grounder.ground(frame, Target(image=icon))
    assert [round(box.left) for _, box, _ in caught.value.candidates] == [300, 900]
    right = grounder.ground(frame, Target(image=icon, in_region=Rect(640, 0, 640, 800)))
    assert abs(right.box.left - 900) <= 2
    with pytest.raises(TemplateError, match="not found"):
        grounder.ground(frame, Target(image=tmp_path / "missing.png"))
    with pytest.raises(TemplateError, match="flat colour"):
        grounder.ground(frame, Target(image=Image.new("RGB", (20, 20), "white")))
    with pytest.raises(TargetNotFound):
        grounder.ground(Frame.from_image(draw_screen(SCREEN[:2], font)[0]), Target(image=icon))


def test_template_uses_frame_scale_first(
    grounder: LocalGrounder, font: ImageFont.FreeTypeFont
) -> None:
    frame = framed_icon(1.5, (200, 600), font)
    frame.transform = FrameTransform(frame.size, scale=1.5)
    result = grounder.ground(frame, Target(image=make_icon()))
    assert close_to(result.box, (200, 600, 260, 660), tolerance=3)


# --- DOM source -----------------------------------------------------------------------


def test_dom_finds_input_by_its_label_with_hidpi_transform(
    screen: Any, grounder: LocalGrounder
) -> None:
    frame, _ = screen
    dom = [
        {
            "tag": "label",
            "text": "Username",
            "box": {"x": 24, "y": 100, "width": 100, "height": 24},
        },
        {
            "tag": "input",
            "type": "text",
            "label": "Username",
            "placeholder": "Your name",
            "box": {"x": 24, "y": 128, "width": 280, "height": 36},
        },
        {
            "tag": "button",
            "text": "Sign in",
            "box": {"x": 24, "y": 200, "width": 90, "height": 36},
            "enabled": False,
        },
        {"tag": "h2", "text": "Sign in", "box": {"x": 24, "y": 40, "width": 90, "height": 30}},
        {
            "tag": "button",
            "text": "Hidden",
            "visible": False,
            "box": {"x": 0, "y": 0, "width": 9, "height": 9},
        },
    ]
    transform = FrameTransform(frame.size, scale=2.0)
    result = grounder.ground(frame, "Username", dom=dom, transform=transform)
    assert result.source == "dom"
    assert result.box == Rect(48, 256, 560, 72)
    assert result.point == Point(328, 292)
    assert [r.reason for r in result.candidates_rejected] == [
        "a control with the same name is preferred"
    ]
    by_placeholder = grounder.ground(
        frame, Target(text="your name", role="input"), dom=dom, transform=transform
    )
    assert by_placeholder.box == result.box
    heading = grounder.ground(frame, Target(text="Sign in"), dom=dom, transform=transform)
    assert heading.box.top == 80  # the disabled button is skipped
    assert any(r.reason == "disabled" for r in heading.candidates_rejected)
    with pytest.raises(TargetNotFound):
        grounder.ground(frame, Target(text="Sign in", role="button"), dom=dom, transform=transform)
    with pytest.raises(ValidationError):
        grounder.ground(frame, "Username", dom=[{"tag": "input"}])
    assert DomElement.model_validate(
        {"tag": "A", "ariaLabel": "Home", "box": dom[0]["box"]}
    ).names() == ["Home"]
    # The shape BrowserEnv.dom_elements() reports: "disabled" instead of "enabled".
    env_shaped = DomElement.model_validate(
        {
            "tag": "button",
            "type": None,
            "role": None,
            "id": "go",
            "text": "Go",
            "name": None,
            "value": None,
            "interactive": True,
            "disabled": True,
            "password": False,
            "box": dom[0]["box"],
        }
    )
    assert env_shaped.enabled is False and env_shaped.effective_role == "button"


class _Loop:
    def __init__(self, runner: Any) -> None:
        self._runner = runner

    def run_until_complete(self, coro: Any) -> Any:
        return self._runner.run(coro)


@pytest.fixture(scope="module")
def webapp_page(
    async_runner: Any, playwright_browser: Any, static_server: Any
) -> Iterator[tuple[_Loop, Any]]:
    """The demo web app at 640x400 CSS px, device scale 2 (a 1280x800 frame), on the shared browser."""
    url = static_server.url_for(WEBAPP_DIR / "index.html")

    async def start() -> Any:
        context = await playwright_browser.new_context(
            viewport={"width": 640, "height": 400}, device_scale_factor=2
        )
        page = await context.new_page()
        await page.goto(url)
        return page

    page = async_runner.run(start())
    yield _Loop(async_runner), page
    async_runner.run(page.context.close())


def test_dom_snapshot_of_real_page_grounds_controls(
    grounder: LocalGrounder, webapp_page: Any
) -> None:
    loop, page = webapp_page

    async def snapshot() -> tuple[Frame, list[dict[str, Any]], dict[str, Any]]:
        png = await page.screenshot()
        dom = await page.evaluate(DOM_SNAPSHOT_JS)
        boxes = {
            name: await page.locator(selector).bounding_box()
            for name, selector in (
                ("username", "#username"),
                ("sign_in", "#sign-in"),
                ("password", "#password"),
            )
        }
        return Frame.from_image(Image.open(io.BytesIO(png))), dom, boxes

    frame, dom, boxes = loop.run_until_complete(snapshot())
    transform = transform_for_page(Size(640, 400), 2.0, frame.size)
    assert frame.size == Size(1280, 800)

    def css_centre(box: dict[str, float]) -> Point:
        return Point((box["x"] + box["width"] / 2) * 2, (box["y"] + box["height"] / 2) * 2)

    username = grounder.ground(frame, "Username", dom=dom, transform=transform)
    assert username.source == "dom"
    assert username.point.distance(css_centre(boxes["username"])) < 1.0
    password = grounder.ground(
        frame, Target(text="password", role="input"), dom=dom, transform=transform
    )
    assert password.point.distance(css_centre(boxes["password"])) < 1.0
    sign_in = grounder.ground(
        frame, Target(text="Sign in", role="button"), dom=dom, transform=transform
    )
    assert sign_in.point.distance(css_centre(boxes["sign_in"])) < 1.0
    # The same page read by OCR alone puts "Sign in" (button) in the same place.
    by_pixels = grounder.ground(frame, Target(text="Sign in", nth=2))
    assert by_pixels.source == "ocr"
    assert by_pixels.point.distance(sign_in.point) < 20


def test_dom_in_region_uses_the_container(grounder: LocalGrounder, webapp_page: Any) -> None:
    loop, page = webapp_page

    async def todos() -> tuple[Frame, list[dict[str, Any]], dict[str, float]]:
        await page.fill("#username", "ada")
        await page.fill("#password", "secret")
        await page.click("#sign-in")
        for text in ("Buy milk", "Call Anna"):
            await page.fill("#new-item", text)
            await page.click("#add-item")
        png = await page.screenshot()
        dom = await page.evaluate(DOM_SNAPSHOT_JS)
        box = await page.locator("#delete-2").bounding_box()
        return Frame.from_image(Image.open(io.BytesIO(png))), dom, box

    frame, dom, box = loop.run_until_complete(todos())
    transform = transform_for_page(Size(640, 400), 2.0, frame.size)
    with pytest.raises(AmbiguousTarget):
        grounder.ground(frame, Target(text="Delete", role="button"), dom=dom, transform=transform)
    result = grounder.ground(
        frame, Target(text="Delete", in_region="Call Anna"), dom=dom, transform=transform
    )
    assert result.source == "dom"
    assert (
        result.point.distance(
            Point((box["x"] + box["width"] / 2) * 2, (box["y"] + box["height"] / 2) * 2)
        )
        < 1.0
    )


def test_role_input_moves_from_label_to_its_field(
    grounder: LocalGrounder, font: ImageFont.FreeTypeFont
) -> None:
    image = Image.new("RGB", (640, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 40), "Email", fill="black", font=font)
    draw.rectangle((120, 30, 420, 72), outline="black", width=2)  # field right of its label
    draw.text((20, 120), "Comment", fill="black", font=font)
    draw.rectangle((20, 156, 500, 196), outline=(90, 90, 90), width=1)  # field below
    draw.text((20, 240), "Plain text", fill="black", font=font)
    frame = Frame.from_image(image)
    email = grounder.ground(frame, Target(text="Email", role="input"))
    assert close_to(email.box, (120, 30, 421, 73), tolerance=3)
    comment = grounder.ground(frame, Target(text="comment", role="textbox"))
    assert close_to(comment.box, (20, 156, 501, 197), tolerance=3)
    label_only = grounder.ground(frame, Target(text="Plain text", role="input"))
    plain = grounder.ground(frame, "Plain text")
    assert label_only.box == plain.box  # no field drawn: the label, with lower confidence
    assert label_only.confidence < plain.confidence
