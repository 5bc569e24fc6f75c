"""Desktop narration of the demo Tk app under Xvfb: OCR text in reading order, buttons
recognised by their shape, the window's title, private windows, the pointer scope, and
watch mode announcing a new text (and nothing when nothing changes)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guiagent.core.actions import Click, Key, Move, Type
from guiagent.core.geometry import Rect
from guiagent.core.redact import Redactor
from guiagent.grounding.local import LocalGrounder
from guiagent.narrate.a11y import x_windows
from guiagent.narrate.narrator import Narrator, Scope
from guiagent.narrate.watch import Watcher

TK_APP = Path(__file__).resolve().parents[1] / "guiagent" / "demo" / "tkapp.py"
TITLE = "narrate tk demo"


@pytest.fixture(scope="module")
def grounder() -> LocalGrounder:
    return LocalGrounder()  # one OCR cache for the module (the engine is shared anyway)


@pytest.fixture
def tk_app(tk_app_factory: Any, tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    state = tmp_path / "state.json"
    app = tk_app_factory(
        TK_APP, "--state-file", str(state), "--geometry", "640x400+100+100", title=TITLE
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if state.exists() and json.loads(state.read_text()).get("ready"):
            break
        time.sleep(0.05)
    time.sleep(0.2)  # let Tk finish drawing
    yield app, state


def _window_scope(app: Any, x_display: Any) -> Scope:
    x, y, w, h = app.geometry(x_display.env)
    return Scope(kind="region", rect=Rect(x, y, w, h))


def test_tk_app_narrated_in_order_with_buttons(
    tk_app: Any, desktop_env: Any, async_runner: Any, x_display: Any, grounder: LocalGrounder
) -> None:
    app, _ = tk_app
    windows = x_windows(x_display.display)
    assert any(w.title == TITLE and not w.dialog for w in windows)
    narrator = Narrator(desktop_env, grounder=grounder)
    narration = async_runner.run(narrator.narrate(_window_scope(app, x_display)))
    assert narration.surface == "desktop"
    assert narration.regions[0].kind == "title_bar" and narration.regions[0].title == TITLE
    assert [(i.role, i.label) for i in narration.items()] == [
        ("text", "Name"),
        ("button", "Greet"),
        ("checkbox", "Subscribe"),
        ("button", "Add"),
        ("button", "Clear"),
    ]
    assert narration.text.splitlines()[:4] == [
        f"title bar: {TITLE}.",
        "Name",
        "Greet, button",
        "Subscribe, checkbox, not checked",
    ]
    # under the pointer: only what the pointer is on
    greet = narration.items()[1].rect
    async_runner.run(desktop_env.act(Move(x=greet.centre.x, y=greet.centre.y)))
    under = async_runner.run(narrator.narrate(Scope(kind="pointer")))
    assert under.labels() == ["Greet"]


def test_private_window_is_never_read(
    tk_app: Any, desktop_env: Any, async_runner: Any, x_display: Any, grounder: LocalGrounder
) -> None:
    app, _ = tk_app
    narrator = Narrator(desktop_env, grounder=grounder, redactor=Redactor(window_titles=[TITLE]))
    narration = async_runner.run(narrator.narrate(_window_scope(app, x_display)))
    assert narration.items() == [] and narration.redacted >= 1


def _wait_for(state: Path, key: str, value: object) -> None:
    deadline = time.monotonic() + 5
    while json.loads(state.read_text()).get(key) != value and time.monotonic() < deadline:
        time.sleep(0.05)


def _announced(watcher: Watcher, async_runner: Any) -> list[str]:
    """Check until something is announced (the app repaints a moment after its state)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        said = async_runner.run(watcher.check())
        if said:
            return [a.text for a in said]
        time.sleep(0.1)
    return []


def test_desktop_watch_announces_changes_then_nothing(
    tk_app: Any, desktop_env: Any, async_runner: Any, x_display: Any, grounder: LocalGrounder
) -> None:
    app, state = tk_app
    boxes = json.loads(state.read_text())["widgets"]
    ex, ey, ew, eh = boxes["name_entry"]
    async_runner.run(desktop_env.act(Click(x=ex + ew / 2, y=ey + eh / 2)))
    async_runner.run(desktop_env.act(Type(text="Ada")))
    async_runner.run(desktop_env.act(Key(keys=["tab"])))  # leave the field: no blinking caret
    _wait_for(state, "name", "Ada")
    watcher = Watcher(
        Narrator(desktop_env, grounder=grounder),
        _window_scope(app, x_display),
        min_interval_s=0,
        quiet_ms=150,
    )
    baseline = async_runner.run(watcher.start())
    assert ("textbox", "Ada") in [(i.role, i.label) for i in baseline.items()]
    assert async_runner.run(watcher.check()) == []  # nothing changed: nothing said
    gx, gy, gw, gh = boxes["greet"]
    async_runner.run(desktop_env.act(Click(x=gx + gw / 2, y=gy + gh / 2)))
    _wait_for(state, "greeting", "Hello, Ada!")
    assert _announced(watcher, async_runner) == ["New: Hello, Ada!"]
    assert async_runner.run(watcher.check()) == []  # said once, never repeated
    sx, sy, _, sh = boxes["subscribe"]
    async_runner.run(desktop_env.act(Click(x=sx + 12, y=sy + sh / 2)))
    _wait_for(state, "subscribed", True)
    assert _announced(watcher, async_runner) == ["Subscribe, checkbox: now checked"]
