"""Pure parts of narration: reading order, headings, control shapes, ARIA parsing, change
announcements, rate limiting, renderers, model element parsing."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from guiagent.core.geometry import Rect
from guiagent.narrate import layout
from guiagent.narrate.a11y import aria_states, parse_aria_snapshot
from guiagent.narrate.model import ModelElement, limit_words
from guiagent.narrate.narrator import NarrateError, Scope, buttons_split, finish
from guiagent.narrate.render import render, to_ssml, to_text
from guiagent.narrate.schema import Item, Narration, Region
from guiagent.narrate.watch import ChangeAnnouncer, diff_narrations


def _order(named: dict[str, Rect]) -> list[str]:
    names = list(named)
    return [names[i] for i in layout.reading_order(list(named.values()))]


def test_two_columns_under_a_heading_then_a_button_row() -> None:
    rects = {
        "heading": Rect(40, 20, 700, 32),
        # left column: three lines; right column: two lines at other heights
        "l1": Rect(40, 80, 300, 16),
        "l2": Rect(40, 100, 280, 16),
        "l3": Rect(40, 120, 200, 16),
        "r1": Rect(420, 84, 300, 16),
        "r2": Rect(420, 104, 250, 16),
        "save": Rect(40, 220, 60, 16),
        "cancel": Rect(130, 220, 70, 16),
    }
    shuffled = dict(sorted(rects.items(), key=lambda kv: kv[0][::-1]))
    assert _order(shuffled) == ["heading", "l1", "l2", "l3", "r1", "r2", "save", "cancel"]


def test_form_rows_are_read_row_by_row() -> None:
    rects = {
        "user_label": Rect(40, 100, 80, 16),
        "user_field": Rect(200, 96, 200, 24),
        "mail_label": Rect(40, 140, 60, 16),
        "mail_field": Rect(200, 136, 200, 24),
    }
    assert _order(rects) == ["user_label", "user_field", "mail_label", "mail_field"]


def test_staircase_is_not_columns() -> None:
    rects = {"field": Rect(160, 100, 200, 20), "box": Rect(40, 140, 13, 13)}
    assert _order(rects) == ["field", "box"]


def test_bands_and_gutters() -> None:
    rects = [Rect(0, 0, 100, 20), Rect(200, 5, 100, 20), Rect(0, 40, 100, 20)]
    assert layout.bands([0, 1, 2], rects) == [[0, 1], [2]]
    assert layout.gutters([0, 1], rects, 50) == [(100, 200)]
    assert layout.gutters([0, 1], rects, 150) == []
    assert layout.reading_order([]) == []


def test_headings_by_font_size_allow_for_letter_shapes() -> None:
    # "Name" (cap height only) and "gap" (x-height + descender) at one font size
    assert layout.font_size("Name", 12) == pytest.approx(
        layout.font_size("gap", 12 * 0.73 / 0.72), rel=0.05
    )
    sizes = [
        layout.font_size(t, h)
        for t, h in [("Title", 30), ("body text", 12), ("more", 9), ("Sub", 17), ("line", 12)]
    ]
    assert layout.heading_levels(sizes) == [1, None, None, 2, None]
    assert layout.heading_levels([]) == []


def _canvas() -> np.ndarray:
    return np.full((120, 400, 3), 255, dtype=np.uint8)


def _ink(img: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> None:
    """Glyph-like ink: thin strokes, so the box stays mostly background."""
    img[y1:y2, x1:x2:4] = 0
    img[y1, x1:x2] = 0


def test_control_shape_button_textbox_and_plain_text() -> None:
    img = _canvas()
    img[20:50, 20:100] = 217  # a grey button face
    _ink(img, 40, 24, 80, 44)  # its label
    img[70:100, 20:380] = 0  # a field: black border ...
    img[72:98, 22:378] = 255  # ... white inside
    _ink(img, 30, 78, 70, 92)  # the field's text
    assert layout.control_shape(img, Rect(40, 24, 40, 20)) == "button"
    assert layout.control_shape(img, Rect(30, 78, 40, 14)) == "textbox"
    plain = _canvas()
    _ink(plain, 150, 50, 200, 64)
    assert layout.control_shape(plain, Rect(150, 50, 50, 14)) is None


def test_checkbox_square_before_a_label() -> None:
    img = _canvas()
    img[40:52, 20:32] = 120  # an empty box: its outline ...
    img[42:50, 22:30] = 255  # ... around a white inside
    _ink(img, 44, 40, 120, 56)  # the label
    assert layout.checkbox_state(img, Rect(44, 40, 76, 16)) == "not checked"
    img[44:48, 24:28] = 0  # a mark inside
    assert layout.checkbox_state(img, Rect(44, 40, 76, 16)) == "checked"
    plain = _canvas()
    _ink(plain, 44, 40, 120, 56)
    assert layout.checkbox_state(plain, Rect(44, 40, 76, 16)) is None


def test_caret_at_the_end_of_a_field() -> None:
    img = _canvas()
    _ink(img, 20, 40, 60, 52)  # text, rows 40..51
    img[36:56, 64:66] = 0  # a caret: 2 px wide, taller than the text
    assert layout.caret_at_end(img, Rect(20, 36, 46, 20))
    plain = _canvas()
    _ink(plain, 20, 40, 60, 52)
    plain[40:52, 63:65] = 0  # an "l" as tall as the rest
    assert not layout.caret_at_end(plain, Rect(20, 40, 45, 12))


ARIA = """- banner:
  - heading "Big" [level=1]
- textbox "Pass": secret1
- checkbox "Sub" [checked]
- checkbox "Off"
- button "Go" [disabled]
- dialog "Confirm":
  - button "OK"
"""


def test_parse_aria_snapshot_keeps_roles_and_states_never_values() -> None:
    nodes = parse_aria_snapshot(ARIA)
    assert [(n.role, n.name) for n in nodes] == [
        ("banner", ""),
        ("heading", "Big"),
        ("textbox", "Pass"),
        ("checkbox", "Sub"),
        ("checkbox", "Off"),
        ("button", "Go"),
        ("dialog", "Confirm"),
        ("button", "OK"),
    ]
    assert nodes[1].attrs == {"level": "1"} and nodes[6].depth == 0 and nodes[7].depth == 1
    assert "secret1" not in json.dumps([n.model_dump() for n in nodes])
    assert aria_states(nodes, "checkbox", "sub") == ["checked"]
    assert aria_states(nodes, "checkbox", "Off") == ["not checked"]
    assert aria_states(nodes, "button", "Go") == ["disabled"]
    assert aria_states(nodes, "button", "Missing") is None


def _item(role: str, label: str, x: float, y: float, **kw: object) -> Item:
    return Item(role=role, label=label, box=[x, y, 80, 20], source="dom", **kw)  # type: ignore[arg-type]


def _narration(*regions: Region) -> Narration:
    return finish(list(regions), "browser", 0)


BASE = _narration(
    Region(kind="title_bar", title="App"),
    Region(
        kind="body",
        items=[
            _item("heading", "Report", 10, 10, level=1),
            _item("text", "Status: idle", 10, 50),
            _item("checkbox", "Remember", 10, 90, state=["not checked"]),
            _item("button", "Delete", 10, 130, state=["focused"]),
        ],
    ),
)


def test_nothing_changed_says_nothing() -> None:
    again = BASE.model_copy(deep=True)
    assert diff_narrations(BASE, again) == []


def test_dialog_text_state_and_focus_changes() -> None:
    changed = _narration(
        Region(kind="title_bar", title="App"),
        Region(
            kind="dialog",
            title="Confirm delete",
            items=[
                _item("text", "Delete it?", 300, 200),
                _item("button", "Yes", 300, 240, state=["focused"]),
            ],
        ),
        Region(
            kind="body",
            items=[
                _item("heading", "Report", 10, 10, level=1),
                _item("text", "Status: busy", 12, 50),
                _item("checkbox", "Remember", 10, 90, state=["checked"]),
                _item("button", "Delete", 10, 130),
            ],
        ),
    )
    said = diff_narrations(BASE, changed)
    kinds = [a.kind for a in said]
    assert kinds == ["dialog_opened", "focus_moved", "state_changed", "text_changed"]
    assert said[0].text == "Dialog: Confirm delete. Delete it?. Yes, button, focused"
    assert said[1].text == "Focus: Yes, button"
    assert said[2].text == "Remember, checkbox: now checked"
    assert said[3].text == "'Status: idle' changed to 'Status: busy'"
    back = diff_narrations(changed, BASE)
    assert [a.kind for a in back][:2] == ["dialog_closed", "focus_moved"]


def test_appeared_and_gone_are_listed_briefly() -> None:
    more = _narration(
        Region(kind="title_bar", title="App"),
        Region(
            kind="body",
            items=[*BASE.items(), *[_item("text", f"row {i}", 10, 300 + 40 * i) for i in range(5)]],
        ),
    )
    (said,) = diff_narrations(BASE, more)
    assert said.kind == "appeared" and said.text == "New: row 0. row 1. row 2, and 2 more"
    (gone,) = diff_narrations(more, BASE)
    assert gone.kind == "disappeared" and gone.text.startswith("Gone: row 0, row 1, row 2")


def test_announcer_rate_limits_and_coalesces_to_the_net_change() -> None:
    clock = [100.0]
    announcer = ChangeAnnouncer(min_interval_s=2.0, clock=lambda: clock[0])
    idle = _narration(Region(kind="body", items=[_item("text", "idle", 10, 50)]))
    assert announcer.update(idle) == []  # the baseline
    busy = _narration(Region(kind="body", items=[_item("text", "busy", 10, 50)]))
    assert [a.kind for a in announcer.update(busy)] == ["text_changed"]
    clock[0] += 0.5
    assert announcer.update(idle) == []  # too soon: held
    assert announcer.due_in == pytest.approx(1.5)
    clock[0] += 0.5
    assert announcer.update(busy) == []  # changed back within the interval: still held
    clock[0] += 1.5
    assert announcer.flush() == []  # the net change from the last announcement is nothing
    assert announcer.flush() == []  # and nothing is repeated
    clock[0] += 3
    said = announcer.update(idle)
    assert [a.text for a in said] == ["'busy' changed to 'idle'"]


def test_renderers() -> None:
    text = to_text(BASE)
    assert text.splitlines() == [
        "title bar: App.",
        "Report, heading level 1",
        "Status: idle",
        "Remember, checkbox, not checked",
        "Delete, button, focused",
    ]
    ssml = to_ssml(BASE.model_copy(update={"description": "A <report> & more"}))
    root = ET.fromstring(ssml)  # well-formed XML
    assert root.tag.endswith("speak")
    assert "A &lt;report&gt; &amp; more" in ssml
    data = json.loads(render(BASE, "json"))
    assert data["regions"][1]["items"][2]["state"] == ["not checked"]
    assert data["focused"]["label"] == "Delete"
    with pytest.raises(ValueError, match="unknown format"):
        render(BASE, "braille")  # type: ignore[arg-type]


def test_button_rows_become_their_own_region() -> None:
    items = [
        _item("text", "Intro", 10, 10),
        _item("button", "Save", 10, 60),
        _item("button", "Cancel", 110, 60),
        _item("text", "Footer", 10, 120),
        _item("button", "Alone", 10, 160),
    ]
    runs = buttons_split(items)
    assert [(row, [i.label for i in run]) for row, run in runs] == [
        (False, ["Intro"]),
        (True, ["Save", "Cancel"]),
        (False, ["Footer", "Alone"]),
    ]


def test_scope_region_parsing() -> None:
    scope = Scope.parse_region("10,20,300,200")
    assert scope.kind == "region" and scope.rect == Rect(10, 20, 300, 200)
    with pytest.raises(NarrateError, match="four numbers"):
        Scope.parse_region("10,20,300")
    with pytest.raises(NarrateError, match="positive"):
        Scope.parse_region("10,20,0,5")


def test_model_element_box_shapes() -> None:
    assert ModelElement.model_validate(
        {"role": "button", "label": "OK", "box": [30, 40, 10, 20]}
    ).box == (10, 20, 30, 40)
    assert ModelElement.model_validate({"label": "x", "box": "<box>1 2 3 4</box>"}).box == (
        1,
        2,
        3,
        4,
    )
    assert ModelElement.model_validate({"label": "x", "box": {"x": 5, "y": 6}}).box == (5, 6, 5, 6)
    assert ModelElement.model_validate(
        {"label": "x", "box": {"x": 1, "y": 2, "width": 3, "height": 4}}
    ).box == (1, 2, 4, 6)
    assert ModelElement.model_validate(
        {"label": "x", "box": [1, 2, 3, 4], "state": "checked, disabled"}
    ).state == ["checked", "disabled"]
    with pytest.raises(ValueError, match="4 numbers"):
        ModelElement.model_validate({"label": "x", "box": [1, 2, 3]})
    assert limit_words("one two three four", 2) == "one two…"
    assert limit_words("one two", 5) == "one two"
