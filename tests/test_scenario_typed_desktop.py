"""``type into`` on a desktop proves the text landed in the named field: through AT-SPI
when the application is on the accessibility bus (a GTK form), else from the field's
pixels (a Tk form: OCR of the field's box, masked dots counted in a password field).

Typing that lands in the wrong field (the application moves the focus on the first key)
fails and says what was read where; a password typed into a masked field passes without
the password reaching the recording or the logs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger
from PIL import Image, ImageDraw, ImageFont

from guiagent.grounding.typed_text import count_bullets, typed_shows
from guiagent.scenario.schema import scenario_from_data
from guiagent.scenario.session import ScenarioSession, SessionOptions

APPS = Path(__file__).resolve().parent / "apps"
SYSTEM_PYTHON = "/usr/bin/python3"
PASSWORD = "Qz7-hunter-42"  # typed as plain text: only the field's mask makes it a secret
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


# --- the comparison (pure) --------------------------------------------------------------


def test_the_whole_typed_text_must_be_read() -> None:
    assert typed_shows("alice", "alice") == "whole"
    assert typed_shows("alice", "Name: alice|") == "whole"  # earlier text, the cursor
    assert typed_shows("Ada Lovelace", "AdaLovelace") == "whole"  # OCR drops a space
    assert typed_shows("alice", "alic") is None  # a letter missing is never forgiven
    assert typed_shows("alice", "aliceb", filled=False) == "whole"
    assert typed_shows("alice", "") is None


def test_confusable_letters_are_forgiven_in_words_never_digits_or_signs() -> None:
    assert typed_shows("Bill", "B1ll") == "whole"  # l read as 1 in a word
    assert typed_shows("Bob", "B0b") == "whole"
    assert typed_shows("order 10", "order 1O") is None  # a typed digit must be read
    assert typed_shows("1.00", "-1.00") == "whole"  # the typed text is there, after a sign
    assert typed_shows("-1.00", "1.00") is None  # a missing sign
    assert typed_shows("$5", "€5") is None  # another currency
    assert typed_shows("42", "4Z") is None


def test_a_scrolled_field_shows_the_end_of_long_text() -> None:
    typed = "ABCDEFGHIJKLMNOP12"
    assert typed_shows(typed, "IJKLMNOP12", filled=True) == "tail"
    assert typed_shows(typed, "1JKLMNOP12", filled=True) == "tail"  # a clipped first glyph
    assert typed_shows(typed, "JKLMNOP12|", filled=True) == "tail"  # the cursor after it
    assert typed_shows(typed, "IJKLMNOP12", filled=False) is None  # not full: not scrolled
    assert typed_shows(typed, "OP12", filled=True) is None  # too short to tell
    assert typed_shows(typed, "IJKLMNOP13", filled=True) is None  # another end


def test_masking_dots_are_counted_in_a_box() -> None:
    image = Image.new("RGB", (400, 60), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 390, 50), outline="black", width=2)
    draw.text((20, 18), "\u25cf" * 7, fill="black", font=ImageFont.truetype(FONT, 20))
    assert count_bullets(image, (10, 10, 390, 50)) == 7
    assert count_bullets(image, (200, 10, 390, 50)) == 0


def _field(role: str, name: str, box: list[float], **more: Any) -> dict[str, Any]:
    return {"role": role, "name": name, "states": ["editable", "focused"], "box": box, **more}


def _bus_check(text: str, baseline: dict[str, Any] | None, secrets: list[str]) -> Any:
    from guiagent.core.env import Frame
    from guiagent.core.redact import Redactor
    from guiagent.scenario.ground import Grounded
    from guiagent.scenario.typed_check import DesktopTypingCheck

    frame = Frame.from_image(Image.new("RGB", (400, 200), "white"))
    hit = Grounded(screen=(150.0, 20.0))
    check = DesktopTypingCheck(None, text, '"Name"', frame, hit, Redactor(secrets=secrets))
    check.baseline = baseline
    return check


def test_what_the_bus_says_decides_and_names_where_the_text_went() -> None:
    name = _field("text", "Name", [100, 10, 200, 30], text="")
    email = _field("text", "Email", [100, 50, 200, 30], text="lice")
    check = _bus_check("alice", {"app": "form", "focused": name, "at_point": name}, [])
    landed = {**name, "text": "alice"}
    assert check._atspi_problem({"app": "form", "focused": landed, "at_point": landed}) is None
    wrong = check._atspi_problem({"app": "form", "focused": email, "at_point": name})
    assert wrong == (
        "typed 'alice' into \"Name\" but the focus is on 'Email' (text), which holds 'lice', "
        "not on the field at the click, 'Name' (text) (AT-SPI)"
    )
    short = {**name, "text": "alic"}
    assert check._atspi_problem({"app": "form", "focused": short, "at_point": short}) == (
        "typed 'alice' into \"Name\" but 'Name' (text) holds 'alic' (AT-SPI)"
    )
    button = {"role": "push button", "name": "OK", "states": ["focused"], "box": [0, 0, 9, 9]}
    assert "the focus is on 'OK' (push button), which takes no text" in str(
        check._atspi_problem({"app": "form", "focused": button, "at_point": name})
    )


def test_a_password_on_the_bus_is_counted_and_never_quoted() -> None:
    empty = _field("password text", "Password", [100, 10, 200, 30], count=0)
    check = _bus_check(PASSWORD, {"app": "f", "focused": empty, "at_point": empty}, [PASSWORD])
    typed = {**empty, "count": len(PASSWORD)}
    assert check._atspi_problem({"app": "f", "focused": typed, "at_point": typed}) is None
    half = {**empty, "count": 5}
    problem = str(check._atspi_problem({"app": "f", "focused": half, "at_point": half}))
    assert problem == (
        f"typed {len(PASSWORD)} characters into the password field \"Name\" ('Password' "
        "(password text)) but it went from 0 to 5 characters (AT-SPI)"
    )
    other = _field("text", "Name", [100, 10, 200, 30], text=PASSWORD)
    problem = str(check._atspi_problem({"app": "f", "focused": other, "at_point": empty}))
    assert PASSWORD not in problem and "the secret" in problem


# --- real windows -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    """Every log line of guiagent (DEBUG and up) while the test runs."""
    lines: list[str] = []
    logger.enable("guiagent")
    sink = logger.add(lambda m: lines.append(str(m)), level="DEBUG", format="{message}")
    try:
        yield lines
    finally:
        logger.remove(sink)
        logger.disable("guiagent")


def _form(command: list[str], title: str, steps: list[dict[str, Any]]) -> Any:
    return scenario_from_data(
        {"name": title, "target": {"command": command, "window": title}, "steps": steps}
    )


def _run(async_runner: Any, scenario: Any, tmp_path: Path, display: str, grounder: Any) -> Any:
    async def go() -> Any:
        options = SessionOptions(record_dir=tmp_path / "runs", display=display)
        async with ScenarioSession(options, grounder=grounder) as session:
            return await session.run(scenario)

    return async_runner.run(go(), timeout=300)


def _state(path: Path) -> dict[str, str]:
    deadline = time.monotonic() + 5
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return dict(json.loads(path.read_text()))


def _no_secret_written(root: Path, lines: list[str]) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
    assert not [line for line in lines if PASSWORD in line]


def _tk_form(state: Path, *flags: str) -> list[str]:
    return [sys.executable, str(APPS / "tk_form.py"), str(state), *flags]


@pytest.mark.desktop
def test_tk_text_read_in_its_field_passes(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path, log_lines: list[str]
) -> None:
    state = tmp_path / "state.json"
    scenario = _form(
        _tk_form(state),
        "tk form",
        [
            {"type": {"text": "alice", "into": "Name"}},
            {"type": {"text": "bob@example.org", "into": "Email"}},
            {"type": {"text": PASSWORD, "into": "Password"}},
            {"type": {"text": "ABCDEFGHIJKLMNOP12", "into": "Code"}},  # scrolls
        ],
    )
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder)
    assert result.ok, result.failure_message()
    assert _state(state) == {
        "Name": "alice",
        "Email": "bob@example.org",
        "Password": PASSWORD,
        "Code": "ABCDEFGHIJKLMNOP12",
    }
    _no_secret_written(tmp_path / "runs", log_lines)


@pytest.mark.desktop
def test_tk_text_that_lands_in_the_next_field_fails(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    scenario = _form(
        _tk_form(state, "--steal-focus"),
        "tk form",
        [{"type": {"text": "alice", "into": "Name"}}, {"expect": "alice"}],
    )
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder)
    assert [s.status for s in result.steps] == ["failed", "skipped"], result.failure_message()
    assert _state(state)["Email"] == "lice"  # the application did move the focus
    error = result.steps[0].error or ""
    assert "typed 'alice' into \"Name\" but the field reads" in error, error
    assert "(OCR)" in error, error


def _gtk_form(state: Path, *flags: str) -> list[str]:
    return [SYSTEM_PYTHON, str(APPS / "gtk_form.py"), str(state), *flags]


@pytest.fixture
def on_the_bus(atspi_bus: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Applications the session starts, and the desktop env, reach the accessibility bus."""
    probe = "import gi; gi.require_version('Gtk', '3.0')"
    if subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode != 0:
        pytest.fail("no GTK 3 for Debian's python3: run scripts/setup.sh (gir1.2-gtk-3.0)")
    for key, value in atspi_bus.env.items():
        if key != "DISPLAY":
            monkeypatch.setenv(key, value)
    return atspi_bus


@pytest.mark.desktop
def test_gtk_text_checked_through_atspi_passes(
    async_runner: Any,
    x_display: Any,
    on_the_bus: Any,
    grounder: Any,
    tmp_path: Path,
    log_lines: list[str],
) -> None:
    state = tmp_path / "state.json"
    scenario = _form(
        _gtk_form(state),
        "gtk form",
        [
            {"type": {"text": "alice", "into": "Name"}},
            {"type": {"text": PASSWORD, "into": "Password"}},
        ],
    )
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder)
    assert result.ok, result.failure_message()
    assert _state(state) == {"Name": "alice", "Email": "", "Password": PASSWORD}
    checked = [line for line in log_lines if "(AT-SPI)" in line and "is in" in line]
    assert len(checked) == 2, log_lines
    _no_secret_written(tmp_path / "runs", log_lines)


@pytest.mark.desktop
def test_gtk_text_that_lands_in_the_next_field_fails_naming_it(
    async_runner: Any, x_display: Any, on_the_bus: Any, grounder: Any, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    scenario = _form(
        _gtk_form(state, "--steal-focus"),
        "gtk form",
        [{"type": {"text": "alice", "into": "Name"}}],
    )
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder)
    assert [s.status for s in result.steps] == ["failed"], result.failure_message()
    assert _state(state)["Email"] == "lice"
    error = result.steps[0].error or ""
    assert "the focus is on 'Email' (text), which holds 'lice'" in error, error
    assert "(AT-SPI)" in error, error


@pytest.mark.desktop
def test_zenity_form_typing_checked_through_atspi(
    async_runner: Any,
    x_display: Any,
    on_the_bus: Any,
    grounder: Any,
    tmp_path: Path,
    log_lines: list[str],
) -> None:
    if shutil.which("zenity") is None:
        pytest.fail("zenity is not installed: run scripts/setup.sh")
    scenario = _form(
        ["zenity", "--forms", "--title=Sign up", "--text=Your details",
         "--add-entry=Name", "--add-password=Password"],
        "Sign up",
        [
            {"type": {"text": "Ada", "into": "Name"}},
            {"type": {"text": PASSWORD, "into": "Password"}},
        ],
    )  # fmt: skip
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder)
    assert result.ok, result.failure_message()
    checked = [line.strip() for line in log_lines if "(AT-SPI)" in line and " is in " in line]
    assert len(checked) == 2, log_lines
    assert checked[0].startswith('the text typed into "Name" is in ') and "text" in checked[0]
    assert checked[1].startswith('the text typed into "Password" is in ')
    assert "password text" in checked[1]
    _no_secret_written(tmp_path / "runs", log_lines)
