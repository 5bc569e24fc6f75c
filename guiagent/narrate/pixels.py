"""Controls from pixels alone (pure functions): OCR words grouped into the boxes drawn
around them, and each given a role from its shape and its text.

- a box with short text centred in it is a button (its words are one label: "Save as");
- text at the left end of an outlined wide box is a field holding that text;
- a small square before a line of text is a checkbox (checked when filled);
- anything else is text, or a heading when its letters are clearly bigger.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from guiagent.core.geometry import Rect
from guiagent.grounding.ocr import TextBox
from guiagent.narrate import layout
from guiagent.narrate.schema import Item


def control_boxes(
    pixels: np.ndarray, min_side: int = 12, max_area: float = 0.25, fill: float = 0.8
) -> list[Rect]:
    """Rectangles drawn on screen (outlined or filled boxes that differ from what is
    around them) of a control's size, innermost first."""
    import cv2

    gray = cv2.cvtColor(np.ascontiguousarray(pixels[:, :, :3]), cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, 40, 120)
    edges = cv2.dilate(edges, np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    height, width = gray.shape
    found: list[Rect] = []
    for contour in contours:
        x, y, w, h = cv2.boundingRect(contour)
        if w < min_side or h < min_side or w * h > max_area * width * height:
            continue
        if cv2.contourArea(contour) < fill * w * h:  # not a rectangle (a letter, a curve)
            continue
        rect = Rect(float(x), float(y), float(w), float(h))
        if any(_same(rect, r) for r in found):
            continue
        found.append(rect)
    return sorted(found, key=lambda r: r.width * r.height)


def _same(a: Rect, b: Rect, tolerance: float = 3.0) -> bool:
    return (
        abs(a.left - b.left) <= tolerance
        and abs(a.top - b.top) <= tolerance
        and abs(a.right - b.right) <= tolerance
        and abs(a.bottom - b.bottom) <= tolerance
    )


def _inside(inner: Rect, outer: Rect, pad: float = 1.0) -> bool:
    return (
        inner.left >= outer.left - pad
        and inner.top >= outer.top - pad
        and inner.right <= outer.right + pad
        and inner.bottom <= outer.bottom + pad
    )


def _join(words: list[TextBox]) -> str:
    order = layout.reading_order([w.box for w in words])
    return " ".join(words[i].text for i in order).strip()


def _union(rects: list[Rect]) -> Rect:
    left, top = min(r.left for r in rects), min(r.top for r in rects)
    return Rect(left, top, max(r.right for r in rects) - left, max(r.bottom for r in rects) - top)


def group_words(
    boxes: list[TextBox], controls: list[Rect]
) -> tuple[list[tuple[Rect, list[TextBox]]], list[TextBox]]:
    """Words that sit in one control box together (a button's label in two words), and
    the words that sit in none. A control holds words of one line or two at most."""
    grouped: dict[int, list[TextBox]] = {}
    loose: list[TextBox] = []
    for word in boxes:
        home = next(
            (
                k
                for k, c in enumerate(controls)
                if _inside(word.box, c) and c.height <= 3.5 * max(word.box.height, 8)
            ),
            None,
        )
        if home is None:
            loose.append(word)
        else:
            grouped.setdefault(home, []).append(word)
    return [(controls[k], words) for k, words in grouped.items()], loose


def role_in_box(box: Rect, text: Rect) -> str | None:
    """A box's role from where its text sits: centred and short -> button; at the left of
    a wide box -> textbox; else None (the box is a panel, not a control)."""
    centred = abs(text.centre.x - box.centre.x) <= max(0.2 * box.width, 6)
    if centred and text.width <= 0.9 * box.width and box.width <= 12 * box.height:
        return "button"
    if box.width >= 3 * box.height and text.left - box.left <= 1.5 * box.height and not centred:
        return "textbox"
    return None


Recogniser = Callable[[list[np.ndarray]], list[tuple[str, float]]]

# what OCR makes of a screen's punctuation and of small key labels
_FULL_WIDTH = str.maketrans("（）。，、！：；—－一十×", "().,,!:;---+x")
_KEY_WORDS = {"log", "ln", "cos", "sin", "tan", "mod", "exp", "sqrt", "not", "and", "or", "xor"}
_CONFUSED = str.maketrans("0196", "olgb")


def snap_label(text: str) -> str:
    """Undo OCR's usual slips on short labels: full-width punctuation, and key words read
    with digits for letters ("109" is "log", "1n" is "ln", "cOS" is "cos")."""
    text = text.translate(_FULL_WIDTH).strip()
    folded = text.lower().translate(_CONFUSED)
    return folded if folded in _KEY_WORDS else text


def pixel_items(
    pixels: np.ndarray,
    boxes: list[TextBox],
    offset: tuple[float, float],
    recognise: Recogniser | None = None,
) -> list[Item]:
    """Items (not yet in reading order) from OCR words and the pixels they were read from;
    ``offset`` moves boxes of a cropped frame back into the whole frame.

    With ``recognise`` (a batch text recogniser for crops), every drawn control box is
    read: boxes whose text the screen OCR missed or misread are read again from an
    enlarged crop, an outlined empty box is a field, and grids of buttons (keypads,
    toolbars) are numbered row by row. Without it only words sharing a box are grouped.
    """
    if recognise is not None:
        return _control_items(pixels, boxes, offset, recognise)
    items: list[Item] = []
    groups, loose = group_words(boxes, control_boxes(pixels))
    for box, words in groups:
        role = role_in_box(box, _union([w.box for w in words])) if len(words) > 1 else None
        if role is None:
            loose.extend(words)
            continue
        rect = box if role == "button" else _union([w.box for w in words])
        items.append(_item(role, _join(words), rect, offset))
    levels = layout.heading_levels([layout.font_size(t.text, t.box.height) for t in loose])
    for tb, level in zip(loose, levels, strict=True):
        state: list[str] = []
        checkbox = layout.checkbox_state(pixels, tb.box)
        if checkbox is not None:
            role, state = "checkbox", [checkbox]
        else:
            role = layout.control_shape(pixels, tb.box) or (
                "heading" if level is not None else "text"
            )
        label = tb.text
        if role == "textbox" and label[-1:] in "lI|!" and layout.caret_at_end(pixels, tb.box):
            label = label[:-1].rstrip()
        items.append(
            _item(role, label, tb.box, offset, state, level if role == "heading" else None)
        )
    return items


def _control_items(
    pixels: np.ndarray, boxes: list[TextBox], offset: tuple[float, float], recognise: Recogniser
) -> list[Item]:
    """Every drawn control box read (see :func:`pixel_items`); loose text by its marks."""
    found = control_boxes(pixels, fill=0.9)
    controls = [c for c in found if _control_sized(c, found) and not _small_square(c)]
    groups, loose = group_words(boxes, controls)
    held = {id(box) for box, _ in groups}
    items: list[Item] = []
    pending: list[tuple[Rect, list[TextBox]]] = []
    for box, words in groups:
        text_rect = _union([w.box for w in words])
        if len(words) == 1 and _short(words[0]):
            pending.append((box, words))
            continue
        role = role_in_box(box, text_rect)
        if role is None:
            loose.extend(words)
            continue
        if role == "textbox" and arrow_at_right(pixels, box, text_rect):
            role = "combobox"
        items.append(_item(role, _join(words), box if role == "button" else text_rect, offset))
    pending.extend((c, []) for c in controls if id(c) not in held)
    items.extend(_read_boxes(pixels, pending, offset, recognise, loose))
    split = [split_wide_gaps(pixels, tb, recognise) for tb in loose]
    menus = {id(part) for parts in split if len(parts) >= 3 for part in parts}  # a menu bar
    loose = [part for parts in split for part in parts]
    levels = layout.heading_levels([layout.font_size(t.text, t.box.height) for t in loose])
    for tb, level in zip(loose, levels, strict=True):
        mark = leading_mark(pixels, tb.box)
        if mark is not None:
            role, state, inside = mark
            label = tb.text
            if inside and len(label) > 1 and label[0] in _MARK_GLYPHS:
                label = label[1:].lstrip()
            items.append(_item(role, label, tb.box, offset, [state]))
        elif underlined(pixels, tb.box):
            items.append(_item("link", tb.text, tb.box, offset))
        elif id(tb) in menus:
            items.append(_item("menu", tb.text, tb.box, offset))
        elif level is None and layout.control_shape(pixels, tb.box) == "button":
            items.append(_item("button", tb.text, tb.box, offset))  # a tight, thin-lined box
        else:
            role = "heading" if level is not None else "text"
            items.append(_item(role, tb.text, tb.box, offset, None, level))
    return number_grid(label_fields(items))


_MARK_GLYPHS = set("O0oQDU口□☐◯○●◉☑☒")


def _small_square(box: Rect) -> bool:
    """A checkbox's box (or a radio's ring), not a control holding text."""
    return box.width <= 22 and box.height <= 22 and abs(box.width - box.height) <= 3


def _ink_mask(
    pixels: np.ndarray, x1: int, y1: int, x2: int, y2: int, background: np.ndarray
) -> np.ndarray:
    crop = pixels[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0), :3].astype(np.int16)
    return np.abs(crop - background).max(axis=2) > 60 if crop.size else np.zeros((0, 0), bool)


def _background(pixels: np.ndarray, rect: Rect) -> np.ndarray:
    x1, y1 = max(int(rect.left), 0), max(int(rect.top), 0)
    crop = pixels[y1 : int(np.ceil(rect.bottom)), x1 : int(np.ceil(rect.right)), :3]
    return np.median(crop.reshape(-1, 3).astype(np.int16), axis=0) if crop.size else np.zeros(3)


def leading_mark(pixels: np.ndarray, rect: Rect) -> tuple[str, str, bool] | None:
    """A checkbox's square or a radio's circle at the left end of a line of text:
    (role, state, whether it lies inside the text's box), else None."""
    import cv2

    h = max(rect.height, 6.0)
    x1, x2 = int(rect.left - 2 * h), int(rect.left + 1.2 * h)
    y1, y2 = int(rect.top - 0.5 * h), int(rect.bottom + 0.5 * h) + 1
    mask = _ink_mask(pixels, x1, y1, x2, y2, _background(pixels, rect))
    if mask.size == 0:
        return None
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    parts = sorted((s for s in stats[1:count].tolist() if s[3] >= 0.4 * h), key=lambda s: s[0])
    if not parts:
        return None
    cx, cy, cw, ch, _area = parts[0]  # the leftmost mark only: never a letter inside a word
    if not (9 <= cw <= min(1.8 * h, 24) and abs(cw - ch) <= 2):
        return None
    if len(parts) > 1 and parts[1][0] - (cx + cw) < 2:
        return None  # no gap after it: the first letter of a word ("Open")
    box = mask[cy : cy + ch, cx : cx + cw]
    if not (box[ch // 2, 0] and box[ch // 2, -1] and box[0, cw // 2] and box[-1, cw // 2]):
        return None
    corners = box[[1, 1, -2, -2], [1, -2, 1, -2]].mean()
    middle = box[ch // 2 - 1 : ch // 2 + 2, cw // 2 - 1 : cw // 2 + 2].mean()
    inside = x1 + cx >= rect.left - 1
    if corners >= 0.75:
        inner = box[3:-3, 3:-3]
        return (
            "checkbox",
            "checked" if inner.size and inner.mean() > 0.15 else "not checked",
            inside,
        )
    if corners <= 0.25:
        return "radio", "checked" if middle > 0.5 else "not checked", inside
    return None


def underlined(pixels: np.ndarray, rect: Rect) -> bool:
    """Whether a line of text is underlined (a link): a row at its foot inked across the
    text and no further (a box's border runs on past the text)."""
    x1, x2 = int(rect.left), int(np.ceil(rect.right))
    y1, y2 = int(rect.bottom - 0.4 * rect.height), int(np.ceil(rect.bottom)) + 2
    if x2 - x1 < 8:
        return False
    mask = _ink_mask(pixels, x1 - 4, y1, x2 + 4, y2, _background(pixels, rect))
    if mask.shape[1] < x2 - x1 + 8:
        return False
    for row in mask:
        if row[4:-4].mean() >= 0.75 and not row[:3].any() and not row[-3:].any():
            return True
    return False


def arrow_at_right(pixels: np.ndarray, box: Rect, text: Rect) -> bool:
    """A drop-down's arrow: ink near the right end of a field, apart from its text."""
    x1 = int(max(text.right + 6, box.right - min(32, 0.3 * box.width)))
    x2, y1, y2 = int(box.right) - 3, int(box.top) + 3, int(box.bottom) - 3
    mask = _ink_mask(pixels, x1, y1, x2, y2, _background(pixels, text))
    if mask.size == 0 or mask.sum() < 4:
        return False
    rows = np.flatnonzero(mask.any(axis=1))
    return bool(rows[-1] - rows[0] + 1 <= 0.6 * box.height)


def split_wide_gaps(
    pixels: np.ndarray, tb: TextBox, recognise: Recogniser | None = None
) -> list[TextBox]:
    """A line OCR read across wide gaps (a menu bar: "File  Edit  View") split into its
    words: as OCR read them when the gaps part it into as many pieces as it has words,
    else each piece read again (with ``recognise``)."""
    words = tb.text.split()
    if len(words) < 2:
        return [tb]
    rect = tb.box
    mask = _ink_mask(
        pixels, int(rect.left), int(rect.top), int(np.ceil(rect.right)), int(np.ceil(rect.bottom)),
        _background(pixels, rect),
    )  # fmt: skip
    if mask.size == 0:
        return [tb]
    inked = mask.any(axis=0)
    pieces: list[tuple[int, int]] = []
    gap, start, end = 0, None, 0
    for x, ink in enumerate(inked):
        if ink:
            if start is None or gap >= max(0.8 * rect.height, 8):
                if start is not None:
                    pieces.append((start, end))
                start = x
            end, gap = x + 1, 0
        else:
            gap += 1
    if start is not None:
        pieces.append((start, end))
    if len(pieces) != len(words):
        if recognise is None or len(pieces) < 2:
            return [tb]
        top, bottom = int(rect.top), int(np.ceil(rect.bottom))
        left = int(rect.left)
        crops = [
            _crop_for_reading(pixels, (left + a, top, left + b, bottom), margin=2)
            for a, b in pieces
        ]
        words = [snap_label(text) for text, _ in recognise(crops)]
        if not all(words):
            return [tb]
    return [
        TextBox(text=word, box=Rect(rect.left + a, rect.top, float(b - a), rect.height),
                confidence=tb.confidence)
        for word, (a, b) in zip(words, pieces, strict=True)
    ]  # fmt: skip


def _short(word: TextBox) -> bool:
    return len(word.text) <= 4 or word.confidence < 0.9


def _control_sized(box: Rect, controls: list[Rect]) -> bool:
    """A box the size of one control, not a panel holding others."""
    if not (10 <= box.height <= 80 and 10 <= box.width <= 600):
        return False
    inner = sum(1 for c in controls if c is not box and _inside(c, box, 0) and not _same(c, box))
    return inner < 2


def _ink(pixels: np.ndarray, box: Rect) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of what is written inside a box (its border left out)."""
    x1, y1 = int(box.left) + 2, int(box.top) + 2
    x2, y2 = int(box.right) - 2, int(box.bottom) - 2
    crop = pixels[y1:y2, x1:x2, :3].astype(np.int16)
    if crop.size == 0:
        return None
    background = np.median(crop.reshape(-1, 3), axis=0)
    ys, xs = np.nonzero(np.abs(crop - background).max(axis=2) > 60)
    if ys.size < 2:
        return None
    return x1 + int(xs.min()), y1 + int(ys.min()), x1 + int(xs.max()) + 1, y1 + int(ys.max()) + 1


def _crop_for_reading(
    pixels: np.ndarray, ink: tuple[int, int, int, int], margin: int = 3, height: int = 32
) -> np.ndarray:
    """The ink with a small margin, scaled to the line height the recogniser reads best."""
    import cv2

    left, top = max(ink[0] - margin, 0), max(ink[1] - margin, 0)
    crop = np.ascontiguousarray(pixels[top : ink[3] + margin, left : ink[2] + margin, :3])
    scale = height / crop.shape[0]
    return cv2.resize(
        crop, (max(int(crop.shape[1] * scale), 1), height), interpolation=cv2.INTER_CUBIC
    )


def _mark(ink: tuple[int, int, int, int], line: float) -> str:
    """A mark too small to read as a letter: a dot, a dash or a comma by its shape."""
    width, height = ink[2] - ink[0], ink[3] - ink[1]
    if height <= max(2, line * 0.12) and width > 2 * height:
        return "-"
    if width <= 3 and height <= 3:
        return "."
    if width <= 3 and height <= 6:
        return ","
    return ""


def _read_boxes(
    pixels: np.ndarray,
    pending: list[tuple[Rect, list[TextBox]]],
    offset: tuple[float, float],
    recognise: Recogniser,
    loose: list[TextBox],
) -> list[Item]:
    """Each pending box read again from an enlarged crop; roles from shape and text."""
    inks = [_ink(pixels, box) for box, _ in pending]
    inked = [k for k, ink in enumerate(inks) if ink is not None]
    crops = [_crop_for_reading(pixels, inks[k]) for k in inked]  # type: ignore[arg-type]
    read = dict(zip(inked, recognise(crops), strict=True)) if inked else {}
    items: list[Item] = []
    for k, (box, words) in enumerate(pending):
        text, score = read.get(k, ("", 0.0))
        text = snap_label(text)
        ink = inks[k]
        if not text and not words and ink is not None and ink[3] - ink[1] <= 0.3 * box.height:
            text = _mark(ink, box.height)
        if words and (score < 0.5 or not text):
            text = snap_label(words[0].text)
        if words and len(text) > len(words[0].text) + 2:
            loose.extend(words)  # a panel of several texts (a display), not one label
            continue
        wide = box.width >= 3 * box.height and 14 <= box.height <= 60
        if wide and not words and text in ("", "|", "l", "I", "!"):
            # an outlined empty box (perhaps with a caret in it): a field
            items.append(_item("textbox", "", box, offset))
            continue
        if not text:
            continue
        text_rect = words[0].box if words else _ink_rect(ink, box)
        role = role_in_box(box, text_rect) or ("button" if box.width <= 12 * box.height else None)
        if role is None:
            loose.extend(words)
            continue
        if wide and arrow_at_right(pixels, box, text_rect):
            role = "combobox"
        items.append(_item(role, text, box if role == "button" else text_rect, offset))
    return items


def _ink_rect(ink: tuple[int, int, int, int] | None, box: Rect) -> Rect:
    """The text's part of a box's ink: its right end left out (a drop-down's arrow)."""
    if ink is None:
        return box
    right = min(float(ink[2]), box.right - min(32.0, 0.3 * box.width))
    return Rect(float(ink[0]), float(ink[1]), max(right - ink[0], 1.0), float(ink[3] - ink[1]))


FIELDS = {"textbox", "password", "combobox", "spinbutton", "slider"}


def label_fields(items: list[Item]) -> list[Item]:
    """Name a nameless field after the text just left of it on its row (a form's label
    column), as a sighted user pairs them."""
    out = list(items)
    for k, field in enumerate(out):
        if field.role not in FIELDS or field.label:
            continue
        row = [
            t
            for t in out
            if t.role == "text"
            and t.rect.right <= field.rect.left + 2
            and abs(t.centre.y - field.centre.y) <= field.rect.height / 2
        ]
        if row:
            label = max(row, key=lambda t: t.rect.right)
            out[k] = field.model_copy(update={"label": label.label})
    return out


def number_grid(items: list[Item], min_columns: int = 3) -> list[Item]:
    """Buttons laid out in a grid (a keypad, a toolbar of several rows) get their row and
    column, so they are read row by row: "row 2, 7, button"."""
    buttons = sorted(
        (k for k, i in enumerate(items) if i.role == "button"), key=lambda k: items[k].centre.y
    )
    rows: list[list[int]] = []
    for k in buttons:
        if rows and abs(items[k].centre.y - items[rows[-1][0]].centre.y) <= items[k].box[3] / 2:
            rows[-1].append(k)
        else:
            rows.append([k])
    rows = [r for r in rows if len(r) >= min_columns]
    runs: list[list[list[int]]] = []
    for row in rows:
        top = min(items[k].box[1] for k in row)
        if runs:
            last = runs[-1][-1]
            bottom = max(items[k].box[1] + items[k].box[3] for k in last)
            height = items[last[0]].box[3]
            if top - bottom <= height:
                runs[-1].append(row)
                continue
        runs.append([row])
    out = list(items)
    for run in runs:
        if len(run) < 2:
            continue
        for r, row in enumerate(run, start=1):
            for c, k in enumerate(sorted(row, key=lambda k: items[k].box[0]), start=1):
                out[k] = out[k].model_copy(update={"row": r, "column": c})
    return out


def _item(
    role: str,
    label: str,
    rect: Rect,
    offset: tuple[float, float],
    state: list[str] | None = None,
    level: int | None = None,
) -> Item:
    box = [
        round(rect.left + offset[0], 1),
        round(rect.top + offset[1], 1),
        round(rect.width, 1),
        round(rect.height, 1),
    ]
    return Item(role=role, label=label, state=state or [], box=box, level=level, source="ocr")
