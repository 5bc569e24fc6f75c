"""Desktop steps that must not pass when their effect did not happen (Tk forms, checked
from the pixels: Tk is not on the accessibility bus).

Each scenario runs through the real runner on the session Xvfb with real input; the Tk
app (tests/apps/tk_traps.py) writes what really happened to a state file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from guiagent.scenario.schema import scenario_from_data
from guiagent.scenario.session import ScenarioSession, SessionOptions

APP = Path(__file__).resolve().parent / "apps" / "tk_traps.py"
GTK_APP = APP.parent / "gtk_form.py"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with python3-gi (scripts/setup.sh)


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


def _run(
    async_runner: Any, display: str, grounder: Any, tmp_path: Path, mode: str, steps: list[Any]
) -> tuple[Any, dict[str, Any]]:
    state = tmp_path / "state.json"
    title = f"tk traps {mode}"
    scenario = scenario_from_data(
        {
            "name": title,
            "target": {
                "command": [sys.executable, str(APP), str(state), mode, "--title", title],
                "window": title,
            },
            "steps": steps,
        }
    )

    async def go() -> Any:
        options = SessionOptions(record_dir=tmp_path / "runs", display=display)
        async with ScenarioSession(options, grounder=grounder) as session:
            return await session.run(scenario)

    result = async_runner.run(go(), timeout=300)
    deadline = time.monotonic() + 5
    while not state.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return result, json.loads(state.read_text())


@pytest.mark.desktop
def test_typing_into_a_disabled_field_fails_naming_where_the_text_went(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    result, state = _run(
        async_runner, x_display.display, grounder, tmp_path, "disabled",
        [{"type": {"text": "alice", "into": "Name"}}],
    )  # fmt: skip
    assert state["Email"] == "alice" and state["Name"] == ""  # the click did not focus Name
    assert [s.status for s in result.steps] == ["failed"], result.failure_message()
    error = result.steps[0].error or ""
    assert "typed 'alice' into \"Name\" but the field is empty (OCR read nothing)" in error, error
    assert "the screen changed elsewhere, reading 'alice" in error, error  # a caret may follow


@pytest.mark.desktop
def test_typing_into_a_field_that_already_held_the_text_fails(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    result, state = _run(
        async_runner, x_display.display, grounder, tmp_path, "prefilled",
        [{"type": {"text": "alice", "into": "Name"}}],
    )  # fmt: skip
    assert state == {"Name": "alice", "Email": "", "clicks": {"Apply": 0, "Save": 0}}
    assert [s.status for s in result.steps] == ["failed"], result.failure_message()
    error = result.steps[0].error or ""
    assert "the field showed it already before typing and did not change (OCR)" in error, error


@pytest.mark.desktop
def test_typing_beside_a_field_with_no_outline_fails(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    """No outline around Name's entry: the click lands beside it and the text goes to the
    focused Note entry on the same row (a label mirrors it below). A change on the clicked
    row that does not reach the click is another field's: the step fails."""
    result, state = _run(
        async_runner, x_display.display, grounder, tmp_path, "flat",
        [{"type": {"text": "alice", "into": "Name"}}],
    )  # fmt: skip
    assert state["Name"] == "" and state["Note"] == "alice"
    assert [s.status for s in result.steps] == ["failed"], result.failure_message()
    error = result.steps[0].error or ""
    assert "but no field outline is at the click at" in error, error
    assert "the text went elsewhere; the screen changed elsewhere, reading 'alice" in error, error


def test_a_change_counts_for_a_field_with_no_outline_only_at_the_click() -> None:
    from PIL import Image, ImageDraw

    from guiagent.core.env import Frame
    from guiagent.core.geometry import Point
    from guiagent.scenario.typed_check import _changed_on_row

    blank = Image.new("RGB", (600, 100), "white")

    def typed_at(x: int) -> Frame:
        image = blank.copy()
        ImageDraw.Draw(image).rectangle((x, 40, x + 10, 60), fill="black")  # one glyph
        return Frame.from_image(image)

    before, click = Frame.from_image(blank), Point(120.0, 50.0)
    assert _changed_on_row(before, typed_at(108), click) is not None  # starts left of the click
    assert _changed_on_row(before, typed_at(130), click) is not None  # just past it
    assert _changed_on_row(before, typed_at(200), click) is None  # another field on the row
    assert _changed_on_row(before, typed_at(20), click) is None  # one left of the clicked one


@pytest.mark.desktop
def test_expect_sees_only_what_shows_and_whole_words(
    async_runner: Any, desktop_env: Any, tk_app_factory: Any, grounder: Any, tmp_path: Path
) -> None:
    """``expect`` reads the screen as shown: a text in a window covered by another is not
    visible, and "Save" is not in "Saved" or "Unsaved changes" (a part of a word)."""
    from guiagent.scenario.ground import StepFailure
    from guiagent.scenario.ui import UI

    tk_app_factory(APP, str(tmp_path / "below.json"), "buttons", title="below")
    tk_app_factory(APP, str(tmp_path / "above.json"), "notice", title="above")

    async def go() -> list[str]:
        ui = UI(desktop_env, grounder, step_timeout=2.0)
        await ui.expect("Saved")  # the window on top: shown
        failures = []
        for text in ("Apply", "Save"):  # covered; only inside longer words
            with pytest.raises(StepFailure) as caught:
                await ui.expect(text, timeout=0.5)
            failures.append(str(caught.value))
        return failures

    covered, part = async_runner.run(go(), timeout=120)
    assert 'no text matching "Apply"' in covered, covered
    assert 'no text matching "Save"; seen: "Saved"' in part, part  # the word, not its part
    assert '"Save" (1.00)' not in part, part


def _clicks(async_runner: Any, env: Any, grounder: Any, targets: list[Any]) -> list[str]:
    """Each target clicked through the Python API: "" when it passed, else its failure."""
    from guiagent.scenario.ground import StepFailure
    from guiagent.scenario.ui import UI

    async def go() -> list[str]:
        ui = UI(env, grounder, step_timeout=3.0)
        out = []
        for target in targets:
            try:
                await ui.click(target)
                out.append("")
            except StepFailure as exc:
                out.append(str(exc))
        return out

    return list(async_runner.run(go(), timeout=120))


def _clicks_of(state: Path) -> dict[str, int]:
    return dict(json.loads(state.read_text())["clicks"])


@pytest.mark.desktop
def test_a_button_click_fails_on_a_label_or_a_disabled_button(
    async_runner: Any, desktop_env: Any, tk_app_factory: Any, grounder: Any, tmp_path: Path
) -> None:
    """role: button on a desktop off the bus: plain text named OK is not drawn as a button
    (nothing is clicked), a greyed button whose click changes nothing is disabled; an
    enabled one passes, and so does clicking the texts without the role."""
    state = tmp_path / "state.json"
    tk_app_factory(APP, str(state), "buttons", title="tk buttons")
    label, disabled, enabled, *plain = _clicks(
        async_runner, desktop_env, grounder,
        [{"text": name, "role": "button"} for name in ("OK", "Apply", "Save")] + ["OK", "Apply"],
    )  # fmt: skip
    assert "the text 'OK' at (" in label and "is not drawn as a button" in label, label
    assert "looks disabled (its label is greyed) and nothing on the screen changed" in disabled
    assert enabled == "" and plain == ["", ""], (enabled, plain)
    assert _clicks_of(state) == {"Apply": 0, "Save": 1}


@pytest.mark.desktop
def test_a_button_click_on_the_bus_fails_on_a_label_or_a_disabled_button(
    async_runner: Any,
    x_display: Any,
    atspi_bus: Any,
    grounder: Any,
    tmp_path: Path,
) -> None:
    """The same on the accessibility bus (a GTK app): the bus names what is at the point."""
    from guiagent.envs.desktop import DesktopEnv

    state, title = tmp_path / "state.json", "gtk buttons"
    app = subprocess.Popen(
        [SYSTEM_PYTHON, str(GTK_APP), str(state), "--buttons", "--title", title],
        env={**os.environ, **atspi_bus.env},
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_window(x_display.env, title)
        env = DesktopEnv(display=x_display.display, failsafe=False, atspi_env=atspi_bus.env)
        async_runner.run(env.start())
        try:
            label, disabled, enabled = _clicks(
                async_runner, env, grounder,
                [{"text": name, "role": "button"} for name in ("OK", "Apply", "Save")],
            )  # fmt: skip
        finally:
            async_runner.run(env.close())
    finally:
        app.terminate()
        app.wait(5)
    assert "is 'OK' (label), not a button (AT-SPI)" in label, label
    assert "the button 'Apply' at (" in disabled and "is disabled (AT-SPI)" in disabled, disabled
    assert enabled == "", enabled
    assert _clicks_of(state) == {"Apply": 0, "Save": 1}


def _wait_for_window(env: dict[str, str], title: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
        )
        if found.stdout.split():
            return
        time.sleep(0.1)
    raise TimeoutError(f"no window {title!r}")


@pytest.mark.desktop
def test_text_already_in_the_field_does_not_stand_for_the_typed_text(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    """Name holds "alice"; the first key typed lands there, the rest in Email: the field
    changed and reads "alice", but the typed "alice" is not in it."""
    result, state = _run(
        async_runner, x_display.display, grounder, tmp_path, "stealing",
        [{"type": {"text": "alice", "into": "Name"}}],
    )  # fmt: skip
    assert state["Email"] == "lice" and state["Name"] != "alicealice"
    assert [s.status for s in result.steps] == ["failed"], result.failure_message()
    error = result.steps[0].error or ""
    assert "showed it already before typing and does not show it once more" in error, error


def test_text_typed_into_a_field_that_held_it_must_show_once_more() -> None:
    from guiagent.grounding.typed_text import times_shown

    assert times_shown("alice", "alice") == 1
    assert times_shown("alice", "alicealice|") == 2  # typed after it: shows once more
    assert times_shown("alice", "a1ice alice") == 2  # a letter read as its lookalike
    assert times_shown("alice", "alicea") == 1  # one key landed; the rest went elsewhere
    assert times_shown("aa", "aaa") == 1  # not overlapping
    assert times_shown("10", "1O") == 0  # a digit is never forgiven


@pytest.mark.desktop
def test_expect_not_right_after_a_click_sees_what_the_click_draws(
    async_runner: Any, desktop_env: Any, tk_app_factory: Any, grounder: Any, tmp_path: Path
) -> None:
    """A desktop cannot say when it is quiet: a check for absence waits for the screen to
    be still first, else it passes on the frame before the application drew the click."""
    from guiagent.scenario.ground import StepFailure
    from guiagent.scenario.ui import UI

    tk_app_factory(APP.parent / "tk_button.py", str(tmp_path / "state.json"), title="tkb")

    async def go() -> None:
        ui = UI(desktop_env, grounder, step_timeout=3.0)
        await ui.expect("not clicked")
        await ui.click("Press")
        await ui.expect("clicked 1", not_=True)

    with pytest.raises(StepFailure, match='"clicked 1" is visible but should not be'):
        async_runner.run(go(), timeout=60)


@pytest.mark.desktop
def test_typing_into_a_label_whose_field_has_no_outline_is_not_the_next_fields(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    """Name's entry has no outline, Note's (on the same row, after its label) has one: that
    outline is Note's field, not Name's; the text that lands in Note fails the step."""
    result, state = _run(
        async_runner, x_display.display, grounder, tmp_path, "mixed",
        [{"type": {"text": "alice", "into": "Name"}}],
    )  # fmt: skip
    assert state["Name"] == "" and state["Note"] == "alice"
    assert [s.status for s in result.steps] == ["failed"], result.failure_message()
    assert "the text went elsewhere" in (result.steps[0].error or ""), result.steps[0].error


def test_a_field_beside_a_label_is_not_its_own_when_another_text_stands_between() -> None:
    from guiagent.core.geometry import Rect
    from guiagent.grounding.fields import named_by_other

    label, field = Rect(10, 10, 60, 20), Rect(300, 5, 200, 30)
    assert not named_by_other(label, field, [])
    assert named_by_other(label, field, [Rect(220, 10, 50, 20)])  # "Note" before the field
    assert not named_by_other(label, field, [Rect(310, 10, 50, 20)])  # the field's own value
    assert not named_by_other(label, field, [Rect(10, 60, 50, 20)])  # the next row's label
    below = Rect(10, 80, 200, 30)
    assert named_by_other(label, below, [Rect(10, 45, 50, 20)])  # a label between, down
