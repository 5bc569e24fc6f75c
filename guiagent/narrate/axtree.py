"""An accessibility tree told the way a screen reader reads it (a pure function).

:func:`narrate_tree` walks a page's tree (see :mod:`guiagent.narrate.cdp`) in document
order, which is a screen reader's reading order, and makes regions of items: a region per
landmark (banner, navigation, main, a named form, ...) and per dialog; headings with their
level; lists with their item count and each item's position; tables with their rows and
columns, every cell said with its column header and each row announced as it starts;
controls with their name, value and states; live regions marked so watch mode says their
changes. A password field is said as one, filled or empty, never with its value. Private
subtrees are left out and counted. Images without a name and canvases are returned as
*gaps* for the pixels to fill (OCR, or the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from guiagent.narrate.cdp import AxNode, PageTree
from guiagent.narrate.schema import Item, Region

LANDMARKS = {
    "banner",
    "navigation",
    "main",
    "contentinfo",
    "complementary",
    "search",
    "form",
    "region",
}
NAMED_ONLY_LANDMARKS = {"form", "region"}  # landmarks only when they have a name
CONTROL_ROLES = {
    "button": "button",
    "link": "link",
    "textbox": "textbox",
    "searchbox": "textbox",
    "checkbox": "checkbox",
    "radio": "radio",
    "switch": "switch",
    "combobox": "combobox",
    "PopUpButton": "combobox",
    "ComboBoxSelect": "combobox",
    "slider": "slider",
    "spinbutton": "spinbutton",
    "menuitem": "menuitem",
    "menuitemcheckbox": "menuitem",
    "menuitemradio": "menuitem",
    "tab": "tab",
    "option": "option",
    "ListBoxOption": "option",
    "treeitem": "treeitem",
    "DisclosureTriangle": "button",
    "ToggleButton": "button",
}
VALUE_ROLES = {"textbox", "combobox", "slider", "spinbutton"}
CHECKABLE = {"checkbox", "radio", "switch", "menuitemcheckbox", "menuitemradio"}
SKIPPED = {"InlineTextBox", "ListMarker", "LineBreak"}
LIVE_ROLES = {"status": "polite", "log": "polite", "alert": "assertive", "timer": "off"}
TABLE_ROLES = {"table", "grid", "treegrid"}
CELL_ROLES = {"cell", "gridcell", "columnheader", "rowheader"}


def states_of(node: AxNode) -> list[str]:
    """Spoken states of a node from its AX properties."""
    p = node.properties
    out: list[str] = []
    if node.role in CHECKABLE:
        checked = str(p.get("checked", "false")).lower()
        out.append({"true": "checked", "mixed": "partially checked"}.get(checked, "not checked"))
    if "pressed" in p:
        out.append("pressed" if str(p["pressed"]).lower() == "true" else "not pressed")
    if "expanded" in p:
        out.append("expanded" if p["expanded"] else "collapsed")
    if p.get("selected") and node.role in ("tab", "option", "ListBoxOption", "treeitem"):
        out.append("selected")
    if p.get("disabled"):
        out.append("disabled")
    if p.get("required"):
        out.append("required")
    if str(p.get("invalid", "false")) not in ("false", "None"):
        out.append("invalid")
    if p.get("readonly") and node.role in ("textbox", "searchbox", "combobox"):
        out.append("read only")
    if p.get("focused") and node.role != "RootWebArea":
        out.append("focused")
    return out


@dataclass
class _Cell:
    row: int
    column: int
    header: str | None


@dataclass
class TreeNarration:
    regions: list[Region]
    redacted: int
    skipped_frames: list[str] = field(default_factory=list)


class _Walk:
    def __init__(self, tree: PageTree, scale: float) -> None:
        self.tree = tree
        self.scale = scale
        self.regions: list[Region] = [Region(kind="title_bar", title=tree.title or None)]
        self.stack: list[Region] = []  # open landmarks and dialogs, innermost last
        self.items: list[Item] = []
        self.current = Region(kind="body")
        self.redacted = 0
        self.last_text_parent: str | None = None

    # --- regions ------------------------------------------------------------------------

    def _close_current(self) -> None:
        if self.items:
            self.regions.append(self.current.model_copy(update={"items": self.items}))
        elif self.current.kind in ("dialog", "landmark") and not self.current.continued:
            self.regions.append(self.current)  # announced even when empty
        self.items = []

    def _open(self, region: Region) -> None:
        self._close_current()
        self.stack.append(region)
        self.current = region
        self.last_text_parent = None

    def _close(self) -> None:
        self._close_current()
        self.stack.pop()
        outer = self.stack[-1] if self.stack else Region(kind="body")
        self.current = outer.model_copy(update={"continued": True}) if self.stack else outer
        self.last_text_parent = None

    # --- items --------------------------------------------------------------------------

    def _box(self, node: AxNode) -> list[float]:
        if node.box is None:
            return [0.0, 0.0, 0.0, 0.0]
        return [round(v * self.scale, 1) for v in node.box]

    def _add(self, item: Item) -> None:
        if (
            item.role not in ("text", "heading", "cell")
            and item.label
            and self.items
            and self.items[-1].role == "text"
            and self.items[-1].label == item.label
        ):
            self.items.pop()  # a field's visible label, said again as its name
        self.items.append(item)
        self.last_text_parent = None

    def _text(self, node: AxNode, parent: str, live: str | None) -> None:
        text = node.name.strip()
        if not text:
            return
        last = self.items[-1] if self.items else None
        if last is not None and last.role != "text" and last.label == text:
            return  # a wrapping label's text after its control
        if last is not None and last.role == "text" and self.last_text_parent == parent:
            box = _union(last.box, self._box(node))
            merged = last.model_copy(update={"label": f"{last.label} {text}", "box": box})
            self.items[-1] = merged
            return
        self._add(Item(role="text", label=text, box=self._box(node), source="ax-tree", live=live))
        self.last_text_parent = parent

    # --- the walk -----------------------------------------------------------------------

    def visit(self, node_id: str, parent: str, live: str | None, cell: _Cell | None) -> None:
        node = self.tree.nodes.get(node_id)
        if node is None:
            return
        if node.private:
            self.redacted += 1
            return
        if node.ignored or node.role in ("generic", "none", "presentation", "RootWebArea", ""):
            self.children(node, live, cell)
            return
        role = node.role
        live = self._live(node, live)
        if role in SKIPPED:
            return
        if role == "StaticText":
            self._text(node, parent, live)
        elif role == "Iframe":
            self._add(Item(role="frame", label=node.name, box=self._box(node), source="ax-tree"))
            self.children(node, live, cell)
        elif role in ("dialog", "alertdialog"):
            self._open(Region(kind="dialog", title=node.name or None, box=self._box(node)))
            self.children(node, live, cell)
            self._close()
        elif role in LANDMARKS and (role not in NAMED_ONLY_LANDMARKS or node.name):
            self._open(Region(kind="landmark", role=role, title=node.name or None))
            self.children(node, live, cell)
            self._close()
        elif role == "heading":
            level = node.properties.get("level")
            self._add(self._item(node, "heading", live, cell, level=int(level or 2)))
        elif role in ("list", "directory", "listbox", "menu", "menubar", "tablist"):
            self._list(node, live, cell)
        elif role in TABLE_ROLES:
            self._table(node, live)
        elif role in ("image", "img", "Canvas", "graphics-document"):
            self._image(node, live, cell)
        elif role in CONTROL_ROLES:
            self._control(node, live, cell)
        else:
            self.children(node, live, cell)

    def children(self, node: AxNode, live: str | None, cell: _Cell | None) -> None:
        for child in node.children:
            self.visit(child, node.id, live, cell)

    def _live(self, node: AxNode, live: str | None) -> str | None:
        politeness = node.properties.get("live") or LIVE_ROLES.get(node.role)
        if politeness in ("polite", "assertive"):
            return str(politeness)
        return live

    def _item(
        self, node: AxNode, role: str, live: str | None, cell: _Cell | None, **extra: object
    ) -> Item:
        where = {"row": cell.row, "column": cell.column, "header": cell.header} if cell else {}
        return Item(
            role=role,
            label=node.name,
            box=self._box(node),
            source="ax-tree",
            live=live,
            **where,  # type: ignore[arg-type]
            **extra,  # type: ignore[arg-type]
        )

    def _control(self, node: AxNode, live: str | None, cell: _Cell | None) -> None:
        role = CONTROL_ROLES[node.role]
        states = states_of(node)
        if node.password:
            states = ["filled" if node.filled else "empty", *states]
            self.redacted += 1 if node.filled else 0
            self._add(self._item(node, "password", live, cell, state=states))
            return
        value = None
        if role in VALUE_ROLES:
            value = node.properties.get("valuetext") or node.value or None
            if value is not None and role == "combobox" and value == node.name:
                value = None
        self._add(self._item(node, role, live, cell, state=states, value=value))

    def _image(self, node: AxNode, live: str | None, cell: _Cell | None) -> None:
        before = (len(self.regions), len(self.items))
        if node.role == "Canvas":
            self.children(node, live, cell)  # fallback content, when a page gives it
            if (len(self.regions), len(self.items)) != before:
                return
        role = "canvas" if node.role == "Canvas" else "image"
        self._add(self._item(node, role, live, cell))

    def _list(self, node: AxNode, live: str | None, cell: _Cell | None) -> None:
        entries = [c for c in _flat_children(self.tree, node) if c.role in _ENTRY_ROLES]
        if node.role in ("list", "directory"):
            self._add(self._item(node, "list", live, cell, count=len(entries)))
        for position, child in enumerate(_flat_children(self.tree, node), start=1):
            if child.role not in _ENTRY_ROLES or child.role != "listitem":
                self.visit(child.id, node.id, live, cell)
                continue
            regions, before = len(self.regions), len(self.items)
            self.visit(child.id, node.id, live, cell)
            if len(self.regions) == regions and len(self.items) > before:
                self.items[before] = self.items[before].model_copy(
                    update={"position": position, "count": len(entries)}
                )

    def _table(self, node: AxNode, live: str | None) -> None:
        rows = _rows(self.tree, node)
        cells = [[c for c in _flat_children(self.tree, r) if c.role in CELL_ROLES] for r in rows]
        columns = max((len(r) for r in cells), default=0)
        headers: dict[int, str] = {}
        for row in cells:
            if row and all(c.role == "columnheader" for c in row):
                headers = {i + 1: c.name for i, c in enumerate(row)}
                break
        self._add(self._item(node, "table", live, None, rows=len(rows), columns=columns))
        for r, row in enumerate(cells, start=1):
            for c, cell_node in enumerate(row, start=1):
                if cell_node.private:
                    self.redacted += 1
                    continue
                here = _Cell(r, c, headers.get(c))
                if cell_node.role == "columnheader":
                    self._add(self._item(cell_node, "columnheader", live, here))
                    continue
                self._cell(cell_node, live, here)

    def _cell(self, node: AxNode, live: str | None, here: _Cell) -> None:
        regions, before = len(self.regions), len(self.items)
        self.children(node, live, here)
        added = self.items[before:]
        if len(self.regions) == regions and all(i.role == "text" for i in added):
            del self.items[before:]
            role = "rowheader" if node.role == "rowheader" else "cell"
            label = node.name or " ".join(i.label for i in added) or "blank"
            self._add(self._item(node, role, live, here).model_copy(update={"label": label}))


_ENTRY_ROLES = {"listitem", "option", "ListBoxOption", "menuitem", "tab", "treeitem"}


def _flat_children(tree: PageTree, node: AxNode) -> list[AxNode]:
    """Children, looking through ignored and generic wrappers."""
    out: list[AxNode] = []
    for child_id in node.children:
        child = tree.nodes.get(child_id)
        if child is None:
            continue
        if child.ignored or child.role in ("generic", "none", "presentation"):
            out.extend(_flat_children(tree, child))
        else:
            out.append(child)
    return out


def _rows(tree: PageTree, table: AxNode) -> list[AxNode]:
    out: list[AxNode] = []
    for child in _flat_children(tree, table):
        if child.role == "row":
            out.append(child)
        elif child.role == "rowgroup":
            out.extend(_rows(tree, child))
    return out


def _union(a: list[float], b: list[float]) -> list[float]:
    if not any(a[2:]):
        return b
    if not any(b[2:]):
        return a
    left, top = min(a[0], b[0]), min(a[1], b[1])
    right, bottom = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return [left, top, round(right - left, 1), round(bottom - top, 1)]


def narrate_tree(tree: PageTree, scale: float = 1.0) -> TreeNarration:
    """Regions of items, in reading order, from a page's tree; ``scale`` turns CSS px into
    frame pixels (the page's device pixel ratio)."""
    walk = _Walk(tree, scale)
    walk.visit(tree.root, "", None, None)
    walk._close_current()
    return TreeNarration(walk.regions, walk.redacted, list(tree.skipped_frames))


def is_gap(item: Item) -> bool:
    """An item the tree could not name (an image without alt, a canvas): pixels fill it."""
    return item.role in ("image", "canvas") and not item.label and item.source == "ax-tree"
