"""Desktop narration through AT-SPI, under Xvfb with a real accessibility bus: a zenity
form (GTK 3, Debian's) read from its accessibility tree, its password field said filled
or empty and never its text; and xcalc (Athena widgets, no tree) beside it, read from the
pixels, with the narration saying so."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from guiagent.core.actions import Click, Key, Type
from guiagent.narrate.narrator import Narrator
from guiagent.narrate.render import to_json, to_ssml

SECRET = "pass-Word-42"
pytestmark = pytest.mark.skipif(
    shutil.which("zenity") is None, reason="zenity is not installed (scripts/setup.sh)"
)


def _launch(argv: list[str], title: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
            env=env, capture_output=True, text=True,
        )  # fmt: skip
        if found.stdout.split():
            return proc
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[0]} exited with code {proc.returncode}")
        time.sleep(0.1)
    proc.kill()
    raise TimeoutError(f"no window {title!r} from {argv[0]}")


@pytest.fixture
def zenity_form(x_display: Any, atspi_bus: Any) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, **x_display.env, **atspi_bus.env}
    proc = _launch(
        ["zenity", "--forms", "--title=Sign up", "--text=Your details", "--add-entry=Name",
         "--add-password=Password", "--add-combo=Plan", "--combo-values=Free|Pro"],
        "Sign up", env,
    )  # fmt: skip
    yield proc
    proc.kill()
    proc.wait(5)


def _narrate(desktop_env: Any, atspi_bus: Any, async_runner: Any) -> Any:
    narrator = Narrator(desktop_env, atspi_env=atspi_bus.env)
    try:
        return async_runner.run(narrator.narrate())
    finally:
        async_runner.run(narrator.aclose())


def _wait_said(desktop_env: Any, atspi_bus: Any, async_runner: Any, line: str) -> Any:
    """Narrate until ``line`` is said (a tree updates a moment after the keystrokes)."""
    deadline = time.monotonic() + 10
    while True:
        narration = _narrate(desktop_env, atspi_bus, async_runner)
        if line in narration.text.splitlines() or time.monotonic() > deadline:
            return narration
        time.sleep(0.2)


def test_gtk_form_read_through_atspi(
    zenity_form: Any, desktop_env: Any, atspi_bus: Any, async_runner: Any
) -> None:
    narration = _wait_said(desktop_env, atspi_bus, async_runner, "Name, textbox, focused")
    form = [(i.role, i.label) for i in narration.items()]
    assert form == [
        ("text", "Your details"),
        ("textbox", "Name"),
        ("password", "Password"),
        ("combobox", "Plan"),
        ("button", "Cancel"),
        ("button", "OK"),
    ], narration.text
    assert all(i.source == "at-spi" for i in narration.items())
    assert narration.sources == ["at-spi"]
    lines = narration.text.splitlines()
    assert lines[0] == "dialog: Sign up."
    assert "Password, password field, empty" in lines
    name = next(i for i in narration.items() if i.label == "Name").centre  # frame = screen here
    async_runner.run(desktop_env.act(Click(x=name.x, y=name.y)))  # no WM: focus follows a click
    async_runner.run(desktop_env.act(Type(text="Ada")))
    async_runner.run(desktop_env.act(Key(keys=["tab"])))
    async_runner.run(desktop_env.act(Type(text=SECRET)))
    narration = _wait_said(
        desktop_env, atspi_bus, async_runner, "Password, password field, filled, focused"
    )
    lines = narration.text.splitlines()
    assert "Name, textbox, Ada" in lines
    assert "Password, password field, filled, focused" in lines
    for rendered in (narration.text, to_json(narration), to_ssml(narration)):
        assert SECRET not in rendered


def test_app_without_a_tree_read_from_pixels_and_said_so(
    zenity_form: Any, x_display: Any, desktop_env: Any, atspi_bus: Any, async_runner: Any
) -> None:
    env = {**os.environ, **x_display.env, **atspi_bus.env}
    xcalc = _launch(["xcalc", "-geometry", "+100+100"], "Calculator", env)
    try:
        time.sleep(0.5)
        narration = _narrate(desktop_env, atspi_bus, async_runner)
    finally:
        xcalc.kill()
        xcalc.wait(5)
    assert "Calculator exposes no accessibility tree: read from the pixels" in narration.notes
    assert "(Calculator exposes no accessibility tree: read from the pixels)" in narration.text
    sources = {i.source for i in narration.items()}
    assert sources == {"at-spi", "ocr"}
    spi = [i.label for i in narration.items() if i.source == "at-spi"]
    assert "Cancel" in spi and "OK" in spi
