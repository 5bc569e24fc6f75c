"""Image token budgets: what a screenshot costs a model, and the size to send it at.

Resizing on the client is the only knob on image cost, so the loop asks
:func:`plan_image` for the largest size of the frame's aspect ratio that fits a token
budget, then :func:`encode_image` does the resize and the encoding.

The Step3-VL rule below follows the model's own image patcher as SGLang ships it
(``python/sglang/srt/multimodal/processors/step3_vl.py``: ``ImagePatcher`` and
``Step3VLProcessor.get_num_image_tokens``; vLLM's ``vllm/model_executor/models/step3_vl.py``
and transformers' Step3-VL processing carry the same class). It reproduces the published
token counts exactly (tests/test_budget.py), including what prose descriptions leave out: one ``<patch_newline>``
token between rows of crops; crops for small elongated images too (long side <= 728 and
aspect > 1.5: windows of the short side); a window of ``min(short, 504)`` for strips
(aspect > 4); and square padding of tiny strips (short side < 32).
"""

from __future__ import annotations

import io
import math
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from guiagent.core.geometry import Size

# Step3-VL processor constants (SGLang's Step3VLProcessor).
STEP3_GLOBAL_SIDE = 728  # the global view is squashed to 728x728 ...
STEP3_GLOBAL_TOKENS = 169  # ... giving 169 tokens, plus <im_start>/<im_end>
STEP3_CROP_SIDE = 504  # crops of 504x504 ...
STEP3_CROP_TOKENS = 81  # ... giving 81 tokens each, plus <patch_start>/<patch_end>
STEP3_MAX_SIDE = 3024  # long side capped before cropping
STEP3_SNAP_FRACTION = 0.2  # a side's fractional window count above this rounds up

QWEN_FACTOR = 28  # 14 px patches merged 2x2
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384  # the HF preprocessor default (12845056)

DEFAULT_MAX_IMAGE_TOKENS = 670  # the cost of 1280x720 under the Step3-VL rule
MIN_SENT_SIDE = 28  # a plan never shrinks the short side below this (or the frame's own)


class BudgetError(ValueError):
    """A token budget no image size can meet, or a rule with bad parameters."""


# --- Step3-VL ----------------------------------------------------------------------------


def _step3_window(long: int, short: int) -> int:
    # SGLang: ``determine_window_size``. Long side <= 728: no crops unless the image is
    # elongated (then the short side is the window). Newer vLLM uses ``long < 728``, so a
    # long side of exactly 728 is counted differently there: plan_image never produces one.
    if long <= STEP3_GLOBAL_SIDE:
        return short if long / short > 1.5 else 0
    return min(short, STEP3_CROP_SIDE) if long / short > 4 else STEP3_CROP_SIDE


def _step3_snap(side: int, window: int) -> int:
    # SGLang: ``get_image_size_for_crop``.
    ratio = side / window
    if ratio < 1:
        return side
    whole = side // window
    count = whole + 1 if ratio - whole > STEP3_SNAP_FRACTION else whole
    return window * count


def _step3_windows_along(side: int, window: int) -> int:
    # SGLang: ``slide_window`` with step == size.
    return 1 if side <= window else math.ceil((side - window) / window + 1)


def step3vl_crop_grid(width: int, height: int) -> tuple[int, int]:
    """The (columns, rows) of crops Step3-VL cuts an image of this size into; (0, 0) for none."""
    if width <= 0 or height <= 0:
        raise BudgetError(f"image size must be positive, got {width}x{height}")
    # Very thin, tiny images are padded to a square first (``get_image_size_for_padding``).
    if min(width, height) < 32 and (width / height > 4 or width / height < 1 / 4):
        width = height = max(width, height)
    if max(width, height) > STEP3_MAX_SIDE:
        factor = STEP3_MAX_SIDE / max(width, height)
        width, height = int(width * factor), int(height * factor)
    window = _step3_window(max(width, height), min(width, height))
    if window == 0:
        return (0, 0)
    width, height = _step3_snap(width, window), _step3_snap(height, window)
    return (_step3_windows_along(width, window), _step3_windows_along(height, window))


def step3vl_visual_tokens(width: int, height: int) -> int:
    """Tokens Step3-VL spends on one image of ``width`` x ``height`` pixels.

    Global view 169 + 2 markers; each crop 81 + 2 markers; one ``<patch_newline>`` between
    consecutive rows of crops.
    """
    columns, rows = step3vl_crop_grid(width, height)
    crops = columns * rows
    newlines = rows - 1 if crops else 0
    return STEP3_GLOBAL_TOKENS + 2 + crops * (STEP3_CROP_TOKENS + 2) + newlines


# --- Qwen2.5-VL ------------------------------------------------------------------------------


def qwen_smart_resize(
    width: int,
    height: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> Size:
    """Qwen2.5-VL's ``smart_resize``: sides to multiples of ``factor``, area within bounds."""
    if width <= 0 or height <= 0:
        raise BudgetError(f"image size must be positive, got {width}x{height}")
    if max(width, height) / min(width, height) > 200:
        raise BudgetError(f"aspect ratio of {width}x{height} exceeds 200, which Qwen2.5-VL rejects")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return Size(w_bar, h_bar)


def qwen25vl_visual_tokens(
    width: int,
    height: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> int:
    """Tokens Qwen2.5-VL spends: one per 28x28 cell after smart resize, plus 2 markers."""
    resized = qwen_smart_resize(width, height, factor, min_pixels, max_pixels)
    return (resized.width // factor) * (resized.height // factor) + 2


# --- rules as data ---------------------------------------------------------------------------


class ImageRule(BaseModel):
    """How a model turns an image into tokens.

    ``kind``: ``step3vl`` (no params), ``qwen25vl`` (``factor``, ``min_pixels``,
    ``max_pixels``), ``fixed`` (``tokens``: the constant cost; ``max_side``: the long side
    to send at most, default no limit).
    """

    model_config = ConfigDict(frozen=True)
    kind: Literal["step3vl", "qwen25vl", "fixed"] = "step3vl"
    params: dict[str, Any] = Field(default_factory=dict)

    def _qwen_params(self) -> tuple[int, int, int]:
        factor = int(self.params.get("factor", QWEN_FACTOR))
        min_pixels = int(self.params.get("min_pixels", QWEN_MIN_PIXELS))
        max_pixels = int(self.params.get("max_pixels", QWEN_MAX_PIXELS))
        if factor <= 0 or min_pixels <= 0 or max_pixels < min_pixels:
            raise BudgetError(f"bad qwen25vl rule parameters: {self.params}")
        return factor, min_pixels, max_pixels

    def tokens(self, size: Size) -> int:
        """What an image of ``size`` (as sent) costs under this rule."""
        if self.kind == "step3vl":
            return step3vl_visual_tokens(size.width, size.height)
        if self.kind == "qwen25vl":
            return qwen25vl_visual_tokens(size.width, size.height, *self._qwen_params())
        tokens = self.params.get("tokens")
        if not isinstance(tokens, int) or tokens <= 0:
            raise BudgetError(
                f"a fixed image rule needs a positive integer 'tokens', got {tokens!r}"
            )
        return tokens


STEP3VL_RULE = ImageRule(kind="step3vl")


class ImagePlan(BaseModel):
    """The size a frame is sent at, what it costs, and sent pixels per frame pixel."""

    model_config = ConfigDict(frozen=True)
    frame: Size
    sent: Size
    tokens: int
    scale: float

    @property
    def resized(self) -> bool:
        return self.sent != self.frame


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _scaled(frame: Size, long_side: int) -> Size:
    """The frame's aspect ratio at a given long side (the other side rounded half up, >= 1)."""
    factor = long_side / frame.long_side
    if frame.width >= frame.height:
        return Size(long_side, max(1, _half_up(frame.height * factor)))
    return Size(max(1, _half_up(frame.width * factor)), long_side)


def _min_long_side(frame: Size) -> int:
    """The smallest long side worth sending: the short side must keep MIN_SENT_SIDE pixels."""
    short = min(frame.width, frame.height)
    wanted = min(MIN_SENT_SIDE, short)
    return min(frame.long_side, math.ceil(wanted * frame.long_side / short))


def _largest_fitting(lo: int, hi: int, cost: Any, budget: int) -> int | None:
    """Largest long side in [lo, hi] whose cost fits, assuming cost grows with size there."""
    if hi < lo or cost(lo) > budget:
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _largest_fitting_scan(lo: int, hi: int, cost: Any, budget: int) -> int | None:
    """Largest long side in [lo, hi] whose cost fits, for costs that do not grow steadily."""
    for side in range(hi, lo - 1, -1):
        if cost(side) <= budget:
            return side
    return None


def plan_image(
    frame_size: Size, max_tokens: int = DEFAULT_MAX_IMAGE_TOKENS, rule: ImageRule = STEP3VL_RULE
) -> ImagePlan:
    """Choose the largest size of the frame's aspect ratio whose cost fits ``max_tokens``.

    Never upscales. Step3-VL: never a long side of exactly 728, nothing past the 3024 cap.
    Qwen2.5-VL: both sides snapped to multiples of 28 (at most the frame's own sides), so
    the server's own resize leaves the image as sent.
    """
    if max_tokens <= 0:
        raise BudgetError(f"max_tokens must be positive, got {max_tokens}")
    if rule.kind == "step3vl":
        sent = _plan_step3(frame_size, max_tokens)
    elif rule.kind == "qwen25vl":
        sent = _plan_qwen(frame_size, max_tokens, rule)
    else:
        sent = _plan_fixed(frame_size, max_tokens, rule)
    return ImagePlan(
        frame=frame_size, sent=sent, tokens=rule.tokens(sent), scale=sent.width / frame_size.width
    )


def _plan_step3(frame: Size, budget: int) -> Size:
    def cost(long_side: int) -> int:
        size = _scaled(frame, long_side)
        return step3vl_visual_tokens(size.width, size.height)

    top = min(frame.long_side, STEP3_MAX_SIDE)
    bottom = _min_long_side(frame)
    # Above 728 with a fixed 504 window the cost only grows with size: binary search. Below
    # 728, or for strips (aspect > 4), the window is the short side and the cost zigzags as
    # the side ratio crosses the snap threshold: scan down instead (a few hundred cheap calls).
    upper_lo = max(bottom, STEP3_GLOBAL_SIDE + 1)
    if frame.long_side / min(frame.width, frame.height) <= 4:
        upper = _largest_fitting(upper_lo, top, cost, budget)
    else:
        upper = _largest_fitting_scan(upper_lo, top, cost, budget)
    lower = None
    if upper is None:
        lower = _largest_fitting_scan(bottom, min(top, STEP3_GLOBAL_SIDE - 1), cost, budget)
    found = [c for c in (upper, lower) if c is not None]
    if not found:
        raise BudgetError(
            f"no size of a {frame} frame fits {budget} image tokens under the step3vl rule "
            f"(the smallest image costs {STEP3_GLOBAL_TOKENS + 2}; elongated ones cost crops too, "
            f"and the short side is kept at {MIN_SENT_SIDE} px or more)"
        )
    return _scaled(frame, max(found))


def _plan_qwen(frame: Size, budget: int, rule: ImageRule) -> Size:
    factor, min_pixels, max_pixels = rule._qwen_params()

    short = min(frame.width, frame.height)
    short_cells_max = max(1, short // factor)

    def size_at(cells_long: int) -> Size:
        long_px = cells_long * factor
        short_cells = round(short * long_px / frame.long_side / factor)
        short_px = min(max(1, short_cells), short_cells_max) * factor
        return Size(long_px, short_px) if frame.width >= frame.height else Size(short_px, long_px)

    def cost(cells_long: int) -> int:
        size = size_at(cells_long)
        return qwen25vl_visual_tokens(size.width, size.height, factor, min_pixels, max_pixels)

    top = max(1, frame.long_side // factor)
    best = _largest_fitting(1, top, cost, budget)
    if best is None:
        raise BudgetError(
            f"no size of a {frame} frame fits {budget} image tokens under the qwen25vl rule"
        )
    # Send what the server will use, so it does not resize again. Its resize raises a small
    # image to min_pixels, which can overshoot the frame (56x75 at 10 tokens: 28x56 -> 56x84):
    # take the largest size whose resized form still fits the frame, when one does.
    candidates = [
        qwen_smart_resize(s.width, s.height, factor, min_pixels, max_pixels)
        for s in (size_at(cells) for cells in range(best, 0, -1))
    ]
    fitting = (c for c in candidates if c.width <= frame.width and c.height <= frame.height)
    return next(fitting, candidates[0])


def _plan_fixed(frame: Size, budget: int, rule: ImageRule) -> Size:
    tokens = rule.tokens(frame)
    if tokens > budget:
        raise BudgetError(
            f"the fixed image rule costs {tokens} tokens, over the budget of {budget}"
        )
    max_side = rule.params.get("max_side")
    if max_side is None or frame.long_side <= int(max_side):
        return frame
    return _scaled(frame, int(max_side))


# --- encoding -------------------------------------------------------------------------------


def resize_for_plan(image: Image.Image, plan: ImagePlan) -> Image.Image:
    """The frame resized to the plan's sent size (``reduce`` when the factor is an integer)."""
    target = (plan.sent.width, plan.sent.height)
    if image.size == target:
        return image
    fx, fy = image.width / target[0], image.height / target[1]
    if fx == fy and fx.is_integer() and fx > 1:
        return image.reduce(int(fx))
    if fx < 2 and fy < 2 and image.mode == "RGB":
        # a mild shrink: OpenCV's bilinear is ~7x faster than Pillow's here (4 vs 30 ms for
        # 1920x1080 -> 1612x907) and, below a factor of 2, samples every source pixel anyway
        import cv2  # brought by rapidocr-onnxruntime

        return Image.fromarray(
            cv2.resize(np.asarray(image), target, interpolation=cv2.INTER_LINEAR)
        )
    # stronger shrinks: Pillow's bilinear filter widens with the factor (no aliasing)
    return image.resize(target, Image.Resampling.BILINEAR)


def _jpeg_with_opencv(image: Image.Image, plan: ImagePlan, quality: int) -> bytes | None:
    """The sent JPEG straight from the pixels: OpenCV's resize (the mild shrinks
    :func:`resize_for_plan` also gives to OpenCV) and its encoder, without a PIL image in
    between. The bytes are the ones Pillow writes (the same libjpeg-turbo settings:
    baseline, 4:2:0), one image copy fewer. None: not this case."""
    target = (plan.sent.width, plan.sent.height)
    fx, fy = image.width / target[0], image.height / target[1]
    if image.mode != "RGB" or not (image.size == target or (fx < 2 and fy < 2)):
        return None
    import cv2  # brought by rapidocr-onnxruntime

    pixels = np.asarray(image)
    if image.size != target:
        pixels = cv2.resize(pixels, target, interpolation=cv2.INTER_LINEAR)
    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return buffer.tobytes() if ok else None


def encode_image(
    image: Image.Image, plan: ImagePlan, fmt: str = "JPEG", quality: int = 90
) -> bytes:
    """Resize ``image`` to ``plan.sent`` and encode it (JPEG/PNG/WEBP)."""
    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in {"JPEG", "PNG", "WEBP"}:
        raise ValueError(f"unsupported image format {fmt!r}: use JPEG, PNG or WEBP")
    fast = _jpeg_with_opencv(image, plan, quality) if fmt == "JPEG" else None
    if fast is not None:
        return fast
    resized = resize_for_plan(image, plan)
    if fmt == "JPEG" and resized.mode != "RGB":
        resized = resized.convert("RGB")
    buffer = io.BytesIO()
    if fmt == "PNG":
        resized.save(buffer, format="PNG", compress_level=1)
    else:
        resized.save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def mime_type(fmt: str) -> str:
    fmt = fmt.upper()
    return {"JPEG": "image/jpeg", "JPG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[
        fmt
    ]
