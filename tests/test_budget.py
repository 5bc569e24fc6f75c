"""Image token costs and plans: Step3-VL's published token counts, budgets, and fast resizing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from guiagent.core.geometry import Size
from guiagent.models.budget import (
    DEFAULT_MAX_IMAGE_TOKENS,
    BudgetError,
    ImagePlan,
    ImageRule,
    encode_image,
    plan_image,
    qwen25vl_visual_tokens,
    qwen_smart_resize,
    resize_for_plan,
    step3vl_crop_grid,
    step3vl_visual_tokens,
)

QWEN = ImageRule(kind="qwen25vl")


@pytest.mark.parametrize(
    ("width", "height", "tokens"),
    [
        (728, 728, 171),
        (700, 600, 171),
        (640, 480, 171),
        (728, 500, 171),
        (1024, 768, 504),
        (1280, 720, 670),
        (1920, 1080, 836),
        (2560, 1440, 1418),
        (3840, 2160, 2166),
    ],
)
def test_design_table(width: int, height: int, tokens: int) -> None:
    assert step3vl_visual_tokens(width, height) == tokens
    assert step3vl_visual_tokens(height, width) >= tokens  # portrait adds a newline per extra row


def test_crop_grids() -> None:
    assert step3vl_crop_grid(1280, 720) == (3, 2)  # 2.54 -> 3 columns, 1.43 -> 2 rows
    assert step3vl_crop_grid(1920, 1080) == (4, 2)  # 3.81 -> 4, 2.14 -> 2 (fraction <= 0.2)
    assert step3vl_crop_grid(3840, 2160) == (6, 4)  # capped to 3024x1701 first
    assert step3vl_crop_grid(640, 480) == (0, 0)
    assert step3vl_crop_grid(728, 400) == (2, 1)  # elongated small image: short side windows


def test_snap_fraction_boundary() -> None:
    # 1612/504 = 3.198 -> 3 columns; 1613/504 = 3.2004 -> 4 columns
    assert step3vl_crop_grid(1612, 907)[0] == 3
    assert step3vl_crop_grid(1613, 907)[0] == 4


def test_bad_sizes_raise() -> None:
    with pytest.raises(BudgetError):
        step3vl_visual_tokens(0, 10)
    with pytest.raises(BudgetError):
        qwen25vl_visual_tokens(10, -1)


def test_qwen_smart_resize_and_tokens() -> None:
    assert qwen_smart_resize(1280, 720) == Size(1288, 728)  # round to multiples of 28
    assert qwen25vl_visual_tokens(1288, 728) == 46 * 26 + 2
    assert qwen_smart_resize(10, 10) == Size(56, 56)  # min_pixels
    big = qwen_smart_resize(8000, 6000, max_pixels=1003520)
    assert big.width % 28 == 0 and big.height % 28 == 0
    assert big.width * big.height <= 1003520


def test_fixed_rule() -> None:
    rule = ImageRule(kind="fixed", params={"tokens": 300, "max_side": 1000})
    plan = plan_image(Size(1920, 1080), 400, rule)
    assert plan.sent == Size(1000, 563)  # 562.5 rounds half up
    assert plan.tokens == 300
    with pytest.raises(BudgetError, match="over the budget"):
        plan_image(Size(1920, 1080), 299, rule)
    with pytest.raises(BudgetError, match="tokens"):
        ImageRule(kind="fixed").tokens(Size(10, 10))


def test_default_budget_is_1280x720_cost() -> None:
    assert DEFAULT_MAX_IMAGE_TOKENS == step3vl_visual_tokens(1280, 720) == 670


def test_plan_1920x1080_default() -> None:
    plan = plan_image(Size(1920, 1080))
    # The largest 16:9 size costing 670: 3x2 crops hold up to 1612 wide (1613 would be 4 columns).
    assert plan.sent == Size(1612, 907)
    assert plan.tokens == 670
    assert plan.scale == pytest.approx(1612 / 1920)
    assert plan_image(Size(1920, 1080), 836).sent == Size(1920, 1080)  # fits: sent as is


def test_plan_never_upscales() -> None:
    plan = plan_image(Size(800, 600), 5000)
    assert plan.sent == Size(800, 600)
    assert plan.scale == 1.0
    assert not plan.resized


def test_plan_avoids_728_long_side() -> None:
    # 728x546 would fit the 171 budget; the plan must step to 727.
    plan = plan_image(Size(1456, 1092), 171)
    assert plan.sent.long_side == 727
    assert plan_image(Size(728, 600), 171).sent.long_side == 727


def test_plan_impossible_budget() -> None:
    with pytest.raises(BudgetError, match="171"):
        plan_image(Size(1920, 1080), 100)
    with pytest.raises(BudgetError):
        plan_image(Size(1920, 1080), 0)


@settings(max_examples=200, deadline=None, database=None)
@given(
    width=st.integers(32, 6000),
    height=st.integers(32, 6000),
    budget=st.integers(171, 3000),
)
@example(width=38, height=83, budget=338)  # cost zigzags for small elongated images
@example(width=32, height=104, budget=503)  # portrait crops pay a newline per row
@example(width=1456, height=1092, budget=171)
@example(width=1920, height=1080, budget=670)
def test_step3_plans_respect_budget_and_rules(width: int, height: int, budget: int) -> None:
    frame = Size(width, height)
    aspect = max(width, height) / min(width, height)
    if aspect > 4:
        return  # thin strips: their own window rule, covered by explicit cases
    try:
        plan = plan_image(frame, budget)
    except BudgetError:
        # only elongated images (they always pay for crops) can miss a budget, and never
        # when the frame as it is would have fitted
        assert aspect > 1.5
        assert max(width, height) > 3024 or step3vl_visual_tokens(width, height) > budget
        return
    assert plan.tokens == step3vl_visual_tokens(plan.sent.width, plan.sent.height) <= budget
    assert plan.sent.long_side != 728
    assert plan.sent.width <= width and plan.sent.height <= height
    assert plan.sent.long_side <= 3024
    assert min(plan.sent.width, plan.sent.height) >= 28
    # same aspect ratio, within rounding of the short side
    assert abs(plan.sent.width / plan.sent.height - width / height) <= (width / height) * 2 / min(
        plan.sent.width, plan.sent.height
    )


def test_elongated_frame_small_budget_is_a_named_error() -> None:
    with pytest.raises(BudgetError, match="no size of a 84x320 frame fits 171"):
        plan_image(Size(84, 320), 171)


@settings(deadline=None, database=None)
@given(width=st.integers(56, 5000), height=st.integers(56, 5000), budget=st.integers(10, 4000))
@example(width=56, height=75, budget=10)  # min_pixels once raised this to 56x84, past the frame
def test_qwen_plans_snap_to_28(width: int, height: int, budget: int) -> None:
    if max(width, height) / min(width, height) > 100:
        return
    try:
        plan = plan_image(Size(width, height), budget, QWEN)
    except BudgetError:
        assert qwen25vl_visual_tokens(28, 28) > budget or min(width, height) < 28 * 2
        return
    assert plan.sent.width % 28 == 0 and plan.sent.height % 28 == 0
    assert plan.tokens <= budget
    assert plan.sent.width <= max(width, 56) and plan.sent.height <= max(height, 56)


def test_qwen_plan_example() -> None:
    plan = plan_image(Size(1920, 1080), 1000, QWEN)
    assert plan.sent == Size(1148, 644)
    assert plan.tokens == 41 * 23 + 2


def _frame(width: int = 1920, height: int = 1080) -> Image.Image:
    rng = np.random.default_rng(0)
    base = np.zeros((height, width, 3), dtype=np.uint8)
    base[::8, :, :] = 200
    base[:, ::16, 1] = 120
    base[100:300, 200:600] = rng.integers(0, 255, (200, 400, 3), dtype=np.uint8)
    return Image.fromarray(base)


def test_encode_resizes_to_plan() -> None:
    image = _frame()
    plan = ImagePlan(frame=Size(1920, 1080), sent=Size(1280, 720), tokens=670, scale=2 / 3)
    for fmt in ("JPEG", "PNG", "WEBP"):
        data = encode_image(image, plan, fmt)
        with Image.open(io.BytesIO(data)) as decoded:
            assert decoded.size == (1280, 720)
            assert decoded.format == fmt


def test_encode_integer_factor_uses_reduce() -> None:
    image = _frame(1920, 1080)
    plan = ImagePlan(frame=Size(1920, 1080), sent=Size(960, 540), tokens=504, scale=0.5)
    data = encode_image(image, plan, "PNG")
    with Image.open(io.BytesIO(data)) as decoded:
        expected = np.asarray(image.reduce(2))
        assert np.array_equal(np.asarray(decoded.convert("RGB")), expected)


def test_encode_rgba_as_jpeg_and_bad_format() -> None:
    image = Image.new("RGBA", (100, 50), (10, 20, 30, 128))
    plan = plan_image(Size(100, 50))
    assert encode_image(image, plan, "jpg")[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="unsupported image format"):
        encode_image(image, plan, "BMP")


@pytest.mark.parametrize("sent", [(1612, 907), (1920, 1080), (1280, 720)])
def test_jpeg_straight_from_pixels_is_what_pillow_writes(sent: tuple[int, int]) -> None:
    """The sent JPEG skips the PIL image in between (OpenCV resize and encoder) for mild
    shrinks and none: the picture is the one the Pillow path gives, colours not swapped."""
    image = _frame(1920, 1080)
    image.paste((230, 20, 10), (1000, 500, 1600, 900))  # a red panel: colours not swapped
    plan = ImagePlan(frame=Size(1920, 1080), sent=Size(*sent), tokens=0, scale=sent[0] / 1920)
    data = encode_image(image, plan, "JPEG", 90)
    resized = resize_for_plan(image, plan)  # the resize encode_image made before
    pillow = io.BytesIO()
    resized.save(pillow, format="JPEG", quality=90)
    with Image.open(io.BytesIO(data)) as fast, Image.open(pillow) as slow:
        assert fast.size == slow.size == sent and fast.mode == "RGB"
        a = np.asarray(fast).astype(np.int16)
        b = np.asarray(slow).astype(np.int16)
    assert np.abs(a - b).mean() < 1.0  # the same picture (today the very same bytes)
    x, y = int(1300 * sent[0] / 1920), int(700 * sent[1] / 1080)
    r, g, b_ = a[y, x]
    assert r > 200 and g < 50 and b_ < 50
