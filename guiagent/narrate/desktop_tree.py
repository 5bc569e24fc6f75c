"""A desktop window's AT-SPI tree told as items (pure functions).

Toolkits list children in their own order (GTK 3 often backwards), so items are put in
reading order by their boxes, the way Orca's flat review reads a window: row by row. A
label that names a field is said once, as the field's name. A password text says filled
or empty, never its content (the helper never sends it).
"""

from __future__ import annotations

from collections.abc import Callable

from guiagent.core.geometry import Rect
from guiagent.envs.atspi import AtspiApp, AtspiNode
from guiagent.narrate.layout import reading_order
from guiagent.narrate.pixels import label_fields, number_grid
from guiagent.narrate.schema import Item

ROLES = {
    "push button": "button",
    "toggle button": "button",
    "button": "button",
    "check box": "checkbox",
    "check menu item": "menuitem",
    "radio button": "radio",
    "radio menu item": "menuitem",
    "text": "textbox",
    "entry": "textbox",
    "password text": "password",
    "spin button": "spinbutton",
    "slider": "slider",
    "combo box": "combobox",
    "menu": "menu",
    "menu item": "menuitem",
    "link": "link",
    "heading": "heading",
    "page tab": "tab",
    "icon": "image",
    "image": "image",
    "list item": "listitem",
    "table cell": "cell",
    "progress bar": "progressbar",
}
TEXT_ROLES = {"label", "static", "caption", "paragraph"}
LEAVES = set(ROLES) - {"list item", "table cell"}  # said whole: their children are parts
WINDOW_ROLES = {"frame", "dialog", "window", "alert", "file chooser", "color chooser"}


def states_of(node: AtspiNode) -> list[str]:
    s = set(node.states)
    out: list[str] = []
    if node.role in ("check box", "radio button", "check menu item", "radio menu item"):
        out.append("checked" if "checked" in s else "not checked")
    elif node.role == "toggle button" and ("checked" in s or "pressed" in s):
        out.append("pressed")
    if "expandable" in s:
        out.append("expanded" if "expanded" in s else "collapsed")
    if "enabled" not in s and node.role not in TEXT_ROLES:
        out.append("disabled")
    if "focused" in s:
        out.append("focused")
    return out


def _item(node: AtspiNode, box: list[float]) -> Item | None:
    if node.role in TEXT_ROLES:
        label = node.name.strip()
        return Item(role="text", label=label, box=box, source="at-spi") if label else None
    role = ROLES.get(node.role)
    if role is None:
        return None
    states = states_of(node)
    value: str | None = None
    if role == "password":
        states = ["filled" if node.filled else "empty", *states]
    elif role in ("textbox", "spinbutton") and node.text:
        value = node.text
    elif role in ("slider", "progressbar") and node.value is not None:
        value = f"{node.value:g}"
    return Item(
        role=role, label=node.name.strip(), value=value, state=states, box=box, source="at-spi"
    )


def window_items(window: AtspiNode, to_frame: Callable[[Rect], Rect]) -> list[Item]:
    """The window's items in reading order; ``to_frame`` maps screen points to frame
    pixels."""
    found: list[Item] = []

    def walk(node: AtspiNode) -> None:
        if node.box[2] <= 0 or node.box[3] <= 0:
            return
        rect = to_frame(Rect(*node.box))
        box = [round(rect.left, 1), round(rect.top, 1), round(rect.width, 1), round(rect.height, 1)]
        item = _item(node, box)
        if item is not None:
            found.append(item)
        if node.role in LEAVES or node.role in TEXT_ROLES:
            return
        for child in node.children:
            walk(child)

    for child in window.children:
        walk(child)
    found = label_fields(found)
    names = {i.label for i in found if i.role not in ("text", "heading") and i.label}
    kept = [i for i in found if not (i.role == "text" and i.label in names)]
    return number_grid([kept[i] for i in reading_order([i.rect for i in kept])])


def showing_windows(apps: list[AtspiApp]) -> list[tuple[str, AtspiNode]]:
    """(application name, window) for every showing top-level window."""
    return [
        (app.name, window)
        for app in apps
        for window in app.windows
        if window.role in WINDOW_ROLES and "showing" in window.states
    ]
