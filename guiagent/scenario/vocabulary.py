"""The known words of the scenario language: key names, element roles, and did-you-mean.

``scenario check`` (and every load) rejects a key or role outside these lists with the
closest known word, so ``press: entr`` or ``role: buton`` fail before a run, not during it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# our key names (guiagent.core.actions.normalise_key), as the browser env maps them; single
# characters and f1..f24 are known too (tests/test_scenario_check.py keeps this in step)
NAMED_KEYS = frozenset(
    {"ctrl", "alt", "shift", "command", "win", "enter", "esc", "tab", "backspace", "delete",
     "space", "up", "down", "left", "right", "home", "end", "pageup", "pagedown", "insert",
     "capslock"}
)  # fmt: skip
# names normalise_key turns into the ones above
KEY_ALIASES = frozenset(
    {"control", "return", "escape", "cmd", "meta", "super", "del", "pgup", "pgdn", "arrowup",
     "arrowdown", "arrowleft", "arrowright", "option"}
)  # fmt: skip
# desktop only (pyautogui/XTest); the browser has no such keys
DESKTOP_KEYS = frozenset(
    {"printscreen", "prtsc", "pause", "menu", "apps", "numlock", "scrolllock", "volumeup",
     "volumedown", "volumemute", "playpause", "nexttrack", "prevtrack"}
)  # fmt: skip

# WAI-ARIA 1.2 roles, plus the everyday names the local grounder maps onto them
ARIA_ROLES = frozenset(
    {"alert", "alertdialog", "application", "article", "banner", "blockquote", "button",
     "caption", "cell", "checkbox", "code", "columnheader", "combobox", "complementary",
     "contentinfo", "definition", "deletion", "dialog", "document", "emphasis", "feed",
     "figure", "form", "generic", "grid", "gridcell", "group", "heading", "img", "insertion",
     "link", "list", "listbox", "listitem", "log", "main", "marquee", "math", "menu", "menubar",
     "menuitem", "menuitemcheckbox", "menuitemradio", "meter", "navigation", "none", "note",
     "option", "paragraph", "presentation", "progressbar", "radio", "radiogroup", "region",
     "row", "rowgroup", "rowheader", "scrollbar", "search", "searchbox", "separator", "slider",
     "spinbutton", "status", "strong", "subscript", "superscript", "switch", "tab", "table",
     "tablist", "tabpanel", "term", "textbox", "time", "timer", "toolbar", "tooltip", "tree",
     "treegrid", "treeitem"}
)  # fmt: skip
ROLE_SYNONYMS = frozenset(
    {"input", "field", "textfield", "text field", "edit", "entry", "textarea", "select",
     "dropdown", "check box", "radio button", "radiobutton", "image", "icon", "label", "text"}
)  # fmt: skip
KNOWN_ROLES = ARIA_ROLES | ROLE_SYNONYMS


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest known word, or an empty string."""
    close = difflib.get_close_matches(word.lower(), sorted(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def is_known_key(key: str) -> bool:
    k = key.strip().lower().replace(" ", "")
    if len(key) == 1:
        return True
    if k[:1] == "f" and k[1:].isdigit() and 1 <= int(k[1:]) <= 24:
        return True
    return k in NAMED_KEYS or k in KEY_ALIASES or k in DESKTOP_KEYS


def check_keys(keys: list[str]) -> list[str]:
    """``keys`` unchanged, or ValueError naming the first unknown one and the closest known."""
    for key in keys:
        if not is_known_key(key):
            known = NAMED_KEYS | KEY_ALIASES | DESKTOP_KEYS
            raise ValueError(
                f"unknown key {key!r} (keys are names like enter, tab, esc, ctrl, shift, alt, f5, "
                f"or one character){did_you_mean(key.replace(' ', ''), known)}"
            )
    return keys


def check_role(role: str | None) -> str | None:
    if role is None:
        return None
    if " ".join(role.lower().split()) not in KNOWN_ROLES:
        raise ValueError(
            f"unknown role {role!r} (roles are ARIA roles such as button, link, textbox, "
            f"checkbox, combobox, heading){did_you_mean(role, KNOWN_ROLES)}"
        )
    return role
