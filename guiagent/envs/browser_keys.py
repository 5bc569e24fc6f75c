"""The CDP input commands Playwright's ``keyboard.type`` sends to Chromium for a text.

A pure mirror of Playwright's US keyboard layout (``usKeyboardLayout.ts``), its
``Keyboard.type`` (``input.ts``: a character of the layout is pressed, any other one is
sent as ``Input.insertText``) and Chromium's raw keyboard (``crInput.ts``), for typing with
no key held: no modifier mask, no auto-repeat, no macOS editing commands (none apply to a
character key pressed alone). The env sends these commands without awaiting each one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Playwright's layout keys that type a character and have no location (keypad and
# left/right keys never type through ``keyboard.type``): code -> (keyCode, key, shifted key)
_US_CHARACTER_KEYS: dict[str, tuple[int, str, str | None]] = {
    "Backquote": (192, "`", "~"),
    "Digit1": (49, "1", "!"),
    "Digit2": (50, "2", "@"),
    "Digit3": (51, "3", "#"),
    "Digit4": (52, "4", "$"),
    "Digit5": (53, "5", "%"),
    "Digit6": (54, "6", "^"),
    "Digit7": (55, "7", "&"),
    "Digit8": (56, "8", "*"),
    "Digit9": (57, "9", "("),
    "Digit0": (48, "0", ")"),
    "Minus": (189, "-", "_"),
    "Equal": (187, "=", "+"),
    "Backslash": (220, "\\", "|"),
    "KeyQ": (81, "q", "Q"),
    "KeyW": (87, "w", "W"),
    "KeyE": (69, "e", "E"),
    "KeyR": (82, "r", "R"),
    "KeyT": (84, "t", "T"),
    "KeyY": (89, "y", "Y"),
    "KeyU": (85, "u", "U"),
    "KeyI": (73, "i", "I"),
    "KeyO": (79, "o", "O"),
    "KeyP": (80, "p", "P"),
    "BracketLeft": (219, "[", "{"),
    "BracketRight": (221, "]", "}"),
    "KeyA": (65, "a", "A"),
    "KeyS": (83, "s", "S"),
    "KeyD": (68, "d", "D"),
    "KeyF": (70, "f", "F"),
    "KeyG": (71, "g", "G"),
    "KeyH": (72, "h", "H"),
    "KeyJ": (74, "j", "J"),
    "KeyK": (75, "k", "K"),
    "KeyL": (76, "l", "L"),
    "Semicolon": (186, ";", ":"),
    "Quote": (222, "'", '"'),
    "KeyZ": (90, "z", "Z"),
    "KeyX": (88, "x", "X"),
    "KeyC": (67, "c", "C"),
    "KeyV": (86, "v", "V"),
    "KeyB": (66, "b", "B"),
    "KeyN": (78, "n", "N"),
    "KeyM": (77, "m", "M"),
    "Comma": (188, ",", "<"),
    "Period": (190, ".", ">"),
    "Slash": (191, "/", "?"),
    "Space": (32, " ", None),
}


class KeyStroke(NamedTuple):
    """One key of the layout as Playwright presses it for a character."""

    code: str
    key: str
    key_code: int  # windowsVirtualKeyCode
    text: str  # "" for a key that types nothing (none of the character keys)


def _character_keys() -> dict[str, KeyStroke]:
    keys: dict[str, KeyStroke] = {}
    for code, (key_code, key, shifted) in _US_CHARACTER_KEYS.items():
        keys[key] = KeyStroke(code, key, key_code, key)
        if shifted is not None:  # typed as the shifted key itself: no Shift event, no mask
            keys[shifted] = KeyStroke(code, shifted, key_code, shifted)
    enter = KeyStroke("Enter", "Enter", 13, "\r")  # Playwright's aliases of Enter
    keys["\n"] = keys["\r"] = enter
    return keys


CHARACTER_KEYS: dict[str, KeyStroke] = _character_keys()

CdpCommand = tuple[str, dict[str, Any]]  # (method, params)


def key_down(stroke: KeyStroke) -> dict[str, Any]:
    """``Input.dispatchKeyEvent`` params of Playwright's keydown for ``stroke``."""
    return {
        "type": "keyDown" if stroke.text else "rawKeyDown",
        "modifiers": 0,
        "windowsVirtualKeyCode": stroke.key_code,
        "code": stroke.code,
        "commands": [],
        "key": stroke.key,
        "text": stroke.text,
        "unmodifiedText": stroke.text,
        "autoRepeat": False,
        "location": 0,
        "isKeypad": False,
    }


def key_up(stroke: KeyStroke) -> dict[str, Any]:
    """``Input.dispatchKeyEvent`` params of Playwright's keyup for ``stroke``."""
    return {
        "type": "keyUp",
        "modifiers": 0,
        "key": stroke.key,
        "windowsVirtualKeyCode": stroke.key_code,
        "code": stroke.code,
        "location": 0,
        "isKeypad": False,
    }


def type_commands(text: str) -> list[CdpCommand]:
    """The CDP commands, in order, that ``page.keyboard.type(text)`` sends with no key held:
    keydown and keyup for a character of the layout, ``Input.insertText`` for any other
    (``é``, an emoji, a tab: one command per code point, as Playwright does)."""
    commands: list[CdpCommand] = []
    for char in text:
        stroke = CHARACTER_KEYS.get(char)
        if stroke is None:
            commands.append(("Input.insertText", {"text": char}))
        else:
            commands.append(("Input.dispatchKeyEvent", key_down(stroke)))
            commands.append(("Input.dispatchKeyEvent", key_up(stroke)))
    return commands
