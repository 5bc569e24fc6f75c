"""``guiagent scenario check`` knows the language's words: keys, roles, step kinds and target
keys, and suggests the closest one."""

from __future__ import annotations

from pathlib import Path

import pytest

from guiagent.cli import main
from guiagent.envs.browser import _KEYS
from guiagent.scenario.vocabulary import NAMED_KEYS, is_known_key

HEAD = "target: {url: a.html}\nsteps:\n"


@pytest.mark.parametrize(
    ("step", "message", "suggestion"),
    [
        ("press: entr", "unknown key 'entr'", "enter"),
        ("press: ctrl+shft+s", "unknown key 'shft'", "shift"),
        ("click: {text: Go, role: buton}", "unknown role 'buton'", "button"),
        ("click: {txt: Go}", "unknown key 'txt' in target", "text"),
        ("clik: Go", "unknown action 'clik'", "click"),
        ("type: {text: hi, into: {text: Name, role: textbx}}", "unknown role 'textbx'", "textbox"),
    ],
)
def test_check_fails_with_a_suggestion(
    tmp_path: Path, capsys, step: str, message: str, suggestion: str
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(HEAD + f"  - {step}\n")
    assert main(["scenario", "check", str(path)]) == 2
    out = capsys.readouterr().out
    assert message in out and f"{path}:3" in out, out
    assert out.strip().endswith(f"did you mean {suggestion!r}?"), out
    assert len(out.strip().splitlines()) == 1


def test_known_words_pass(tmp_path: Path, capsys) -> None:
    path = tmp_path / "s.yaml"
    steps = [
        "press: ctrl+s",
        "press: [Control, Return]",
        "press: F5",
        "press: a",
        "press: printscreen",
        "click: {text: Go, role: button}",
        "click: {text: Name, role: text field}",
        "click: {text: Top, role: heading}",
    ]
    path.write_text(HEAD + "".join(f"  - {s}\n" for s in steps))
    assert main(["scenario", "check", str(path)]) == 0, capsys.readouterr().out


def test_the_key_list_is_the_browser_envs() -> None:
    assert {k for k in _KEYS if len(k) > 1} == set(NAMED_KEYS)
    assert all(is_known_key(k) for k in ("f1", "f24", "+", "esc", "pgdn"))
    assert not is_known_key("f25")
