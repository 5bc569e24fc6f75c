"""Narration from the browser's real accessibility tree (CDP ``getFullAXTree``) in headless
Chromium: landmarks, headings, a list with its count, a table read row by row with each
cell's column header, a sign-in form whose password field is said as one (filled or
empty, never its value), a same-origin iframe, a shadow root, a canvas read by OCR, and a
live region announced in watch mode."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guiagent.narrate.narrator import Narrator, Scope
from guiagent.narrate.render import to_json, to_ssml
from guiagent.narrate.watch import Watcher

PAGE = "tests/apps/narrate_ax.html"
PASSWORD = "hunter2-Secret"


@pytest.fixture
def shop(browser_env_factory: Any, static_server: Any) -> Any:
    return browser_env_factory(start_url=static_server.url_for(PAGE))


def _lines(narration: Any) -> list[str]:
    return narration.text.splitlines()


def test_tree_narration_reads_like_a_screen_reader(shop: Any, async_runner: Any) -> None:
    narration = async_runner.run(Narrator(shop, reader="tree").narrate())
    lines = _lines(narration)
    assert lines[:8] == [
        "title bar: Shop checkout.",
        "banner landmark.",
        "Shop checkout, heading level 1",
        "navigation landmark: Sections.",
        "list, 3 items",
        "Cart, link, 1 of 3",
        "Payment, link, 2 of 3",
        "Help, link, 3 of 3",
    ]
    table = lines.index("table, Cart, 3 rows, 3 columns")
    assert lines[table - 2 : table] == ["main landmark.", "Your cart, heading level 2"]
    assert lines[table + 1 : table + 10] == [
        "Item, column header",
        "Qty, column header",
        "Action, column header",
        "row 2, Item: Red mug",
        "Qty: 1",
        "Action: Remove, button",
        "row 3, Item: Blue plate",
        "Qty: 2",
        "Action: Remove, button",
    ]
    form = lines.index("form landmark: Sign in.")
    assert lines[form + 1 : form + 5] == [
        "Email, textbox, ada@example.org",
        "Password, password field, empty",
        "Keep me signed in, checkbox, checked",
        "Pay now, button",
    ]
    # the iframe's own tree, hung under its frame; the shadow root's button after it
    frame = lines.index("Help chat, frame")
    assert lines[frame + 1 : frame + 4] == [
        "Need help?, heading level 3",
        "Start chat, button",
        "Apply coupon, button",
    ]
    assert lines[-2:] == ["contentinfo landmark.", "Questions? Call us."]
    items = narration.items()
    cells = [i for i in items if i.row == 2]
    assert [(i.column, i.header, i.label) for i in cells] == [
        (1, "Item", "Red mug"),
        (2, "Qty", "1"),
        (3, "Action", "Remove"),
    ]
    # the frame's button sits inside the iframe on screen (boxes in frame pixels)
    chat = next(i for i in items if i.label == "Start chat")
    iframe = next(i for i in items if i.role == "frame")
    assert iframe.rect.contains(chat.centre)
    # pixels fill only what the tree lacks: the canvas text by OCR, the empty image stays
    canvas = next(i for i in items if i.role == "canvas")
    assert canvas.source == "ocr" and "FREE" in canvas.label.upper()
    assert "unlabelled image" in lines
    assert {i.source for i in items} == {"ax-tree", "ocr"}
    assert narration.sources == ["ax-tree", "ocr"]
    data = json.loads(to_json(narration))
    assert all("source" in i for r in data["regions"] for i in r["items"])
    ssml = to_ssml(narration)
    assert "<s>row 2, Item: Red mug</s>" in ssml and ssml.endswith("</speak>")


def test_password_field_said_filled_never_its_value(shop: Any, async_runner: Any) -> None:
    async_runner.run(shop.page.fill("#pw", PASSWORD))
    narration = async_runner.run(Narrator(shop, reader="tree").narrate())
    assert "Password, password field, filled, focused" in _lines(narration)
    password = next(i for i in narration.items() if i.role == "password")
    assert password.value is None and password.state == ["filled", "focused"]
    for rendered in (narration.text, to_json(narration), to_ssml(narration)):
        assert PASSWORD not in rendered and "•" not in rendered
    focused = async_runner.run(
        Narrator(shop, reader="tree").narrate(Scope(kind="focused"))
    )  # fill() leaves the focus in the password field: its form is read
    assert [r.kind for r in focused.regions] == ["title_bar", "landmark"]
    assert focused.regions[1].title == "Sign in"


def test_live_region_announced_in_watch_mode(shop: Any, async_runner: Any) -> None:
    watcher = Watcher(Narrator(shop, reader="tree"), min_interval_s=0, quiet_ms=100)
    baseline = async_runner.run(watcher.start())
    status = next(i for i in baseline.items() if i.label == "Ready.")
    assert status.live == "polite"
    assert async_runner.run(watcher.check()) == []  # nothing changed: nothing said
    async_runner.run(shop.page.evaluate("window.setStatus('Order placed.')"))
    said = async_runner.run(watcher.check())
    assert [(a.kind, a.text) for a in said] == [("live_region", "Order placed.")]


def test_private_block_left_out_and_counted(
    browser_env_factory: Any, static_server: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=static_server.url_for("tests/apps/narrate_layout.html"))
    narration = async_runner.run(Narrator(env, reader="tree").narrate())
    rendered = narration.text + to_json(narration)
    assert "9911223344" not in rendered and "hunter2secret" not in rendered
    assert "Password, password field, filled" in _lines(narration)
    assert narration.redacted == 2  # the private block, and the password's value
    assert "navigation landmark: Main menu." in _lines(narration)
