"""The key events typed over CDP (guiagent.envs.browser_keys) against Playwright's own
tables: the named cases spelled out, and every character against the US layout read from
the installed Playwright driver and closed over as its ``buildLayoutClosure`` does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import playwright

from guiagent.envs.browser_keys import CHARACTER_KEYS, type_commands


def _down(code: str, key: str, key_code: int, text: str) -> dict[str, Any]:
    return {
        "type": "keyDown",
        "modifiers": 0,
        "windowsVirtualKeyCode": key_code,
        "code": code,
        "commands": [],
        "key": key,
        "text": text,
        "unmodifiedText": text,
        "autoRepeat": False,
        "location": 0,
        "isKeypad": False,
    }


def _up(code: str, key: str, key_code: int) -> dict[str, Any]:
    return {
        "type": "keyUp",
        "modifiers": 0,
        "key": key,
        "windowsVirtualKeyCode": key_code,
        "code": code,
        "location": 0,
        "isKeypad": False,
    }


def _press(code: str, key: str, key_code: int, text: str | None = None) -> list[Any]:
    return [
        ("Input.dispatchKeyEvent", _down(code, key, key_code, key if text is None else text)),
        ("Input.dispatchKeyEvent", _up(code, key, key_code)),
    ]


def test_letters_digits_and_space_are_pressed_without_shift() -> None:
    assert type_commands("aZ5 ") == [
        *_press("KeyA", "a", 65),
        *_press("KeyZ", "Z", 90),  # the shifted key itself: no Shift event, modifiers 0
        *_press("Digit5", "5", 53),
        *_press("Space", " ", 32),
    ]


def test_shifted_symbols_use_their_digit_and_punctuation_keys() -> None:
    assert type_commands('!@#"~+') == [
        *_press("Digit1", "!", 49),
        *_press("Digit2", "@", 50),
        *_press("Digit3", "#", 51),
        *_press("Quote", '"', 222),
        *_press("Backquote", "~", 192),
        *_press("Equal", "+", 187),
    ]


def test_newline_and_return_press_enter_with_a_carriage_return() -> None:
    enter = _press("Enter", "Enter", 13, text="\r")
    assert type_commands("\n") == enter
    assert type_commands("\r") == enter


def test_characters_outside_the_layout_are_inserted_one_code_point_at_a_time() -> None:
    # Playwright has no Tab character key ("Tab" types no text): a tab is inserted too
    assert type_commands("é😀\t") == [
        ("Input.insertText", {"text": "é"}),
        ("Input.insertText", {"text": "😀"}),
        ("Input.insertText", {"text": "\t"}),
    ]
    assert type_commands("") == []


def _installed_layout() -> dict[str, dict[str, Any]]:
    """Playwright's USKeyboardLayout, read from the installed driver's JavaScript."""
    lib = Path(playwright.__file__).parent / "driver" / "package" / "lib"
    for name in ("coreBundle.js", "server/usKeyboardLayout.js"):
        path = lib / name
        if not path.exists():
            continue
        source = path.read_text(encoding="utf-8")
        start = source.find("USKeyboardLayout = {")
        if start < 0:
            continue
        body = source[start : source.index("};", start)]
        layout: dict[str, dict[str, Any]] = {}
        entry = re.compile(r'^\s*"(\w+)": \{(.*)\},?\s*$')
        field = re.compile(r'"(\w+)": ("(?:[^"\\]|\\.)*"|\'[^\']*\'|\d+)')
        for line in body.splitlines():
            found = entry.match(line)
            if found is None:
                continue
            values: dict[str, Any] = {}
            for name_, raw in field.findall(found.group(2)):
                if raw.startswith("'"):
                    values[name_] = raw[1:-1]
                elif raw.startswith('"'):
                    values[name_] = json.loads(raw)
                else:
                    values[name_] = int(raw)
            layout[found.group(1)] = values
        return layout
    raise AssertionError(f"Playwright's USKeyboardLayout was not found under {lib}")


def _playwright_character_map(layout: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Playwright's buildLayoutClosure, restricted to the one-character names type() uses."""
    result: dict[str, dict[str, Any]] = {}
    for code, definition in layout.items():
        key = definition.get("key", "")
        description = {
            "key": key,
            "keyCode": definition.get("keyCodeWithoutLocation") or definition.get("keyCode", 0),
            "code": code,
            "text": key if len(key) == 1 else definition.get("text", ""),
            "location": definition.get("location", 0),
        }
        if code == "Enter":
            result["\n"] = result["\r"] = description
        if definition.get("location"):
            continue
        if len(key) == 1:
            result[key] = description
        if "shiftKey" in definition:
            shifted = definition["shiftKey"]
            result[shifted] = {**description, "key": shifted, "text": shifted}
    return result


def test_every_character_key_matches_the_installed_playwright_layout() -> None:
    layout = _installed_layout()
    assert len(layout) > 90, "the layout was not parsed"
    expected = _playwright_character_map(layout)
    assert set(CHARACTER_KEYS) == set(expected)
    for char, description in expected.items():
        commands = type_commands(char)
        assert commands == _press(
            description["code"], description["key"], description["keyCode"], description["text"]
        ), char
        assert description["location"] == 0
