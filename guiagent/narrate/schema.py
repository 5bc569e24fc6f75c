"""What a narration is: regions of items in reading order, and announcements of change.

Boxes are ``[x, y, width, height]`` in frame pixels of the frame that was narrated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guiagent.core.geometry import Point, Rect

RegionKind = Literal["title_bar", "menu", "dialog", "buttons", "body", "window", "landmark"]
# where an item was read: the browser's accessibility tree (CDP), the desktop's (AT-SPI),
# OCR and pixel shapes, the vision model; "dom" is the older DOM walk of a page
ItemSource = Literal["ax-tree", "at-spi", "ocr", "model", "dom", "x11"]

# how a role is said when it is not said as it is written
_SPOKEN_ROLES = {
    "password": "password field",
    "columnheader": "column header",
    "rowheader": "row header",
    "listitem": "list item",
    "menuitem": "menu item",
    "combobox": "combo box",
    "spinbutton": "spin button",
}


class Item(BaseModel):
    """One thing on screen a user can hear about: a heading, a line of text, a control."""

    model_config = ConfigDict(frozen=True)

    role: str  # text, heading, button, link, textbox, checkbox, ...
    label: str
    value: str | None = None  # what a field holds (never for password fields)
    state: list[str] = Field(default_factory=list)  # checked, disabled, focused, expanded, ...
    box: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    level: int | None = None  # heading level
    source: ItemSource = "ocr"
    # structure a screen reader announces (None where it does not apply)
    count: int | None = None  # a list's items
    rows: int | None = None  # a table's rows and columns
    columns: int | None = None
    row: int | None = None  # a table cell's row and column (1-based) and its column header
    column: int | None = None
    header: str | None = None
    position: int | None = None  # a list item's position, "2 of 5"
    live: str | None = None  # polite or assertive: said again whenever it changes (watch)

    @property
    def rect(self) -> Rect:
        return Rect(*self.box)

    @property
    def centre(self) -> Point:
        return self.rect.centre

    def spoken(self) -> str:
        """How a screen reader would say it: label, then role and states (and, in a table,
        the row when a row starts and each cell's column header)."""
        said = self._spoken_alone()
        if self.row is not None and self.role != "columnheader":
            if self.header and self.role != "rowheader":
                said = f"{self.header}: {said}"
            if self.column == 1:
                said = f"row {self.row}, {said}"
        if self.position is not None and self.count is not None:
            said = f"{said}, {self.position} of {self.count}"
        return said

    def _spoken_alone(self) -> str:
        if self.role in ("text", "cell"):
            return self.label
        if self.role == "list":
            return f"list, {self.count} item{'s' if self.count != 1 else ''}"
        if self.role == "table":
            size = f"{self.rows} rows, {self.columns} columns"
            return f"table, {self.label}, {size}" if self.label else f"table, {size}"
        if self.role == "image" and not self.label:
            return "unlabelled image"
        role = f"heading level {self.level}" if self.role == "heading" and self.level else self.role
        role = _SPOKEN_ROLES.get(role, role)
        parts = [self.label, role] if self.label else [role]
        if self.value:
            parts.append(self.value)
        parts.extend(self.state)
        return ", ".join(parts)


class Region(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: RegionKind
    title: str | None = None
    items: list[Item] = Field(default_factory=list)
    box: list[float] | None = None
    role: str | None = None  # a landmark's role: banner, navigation, main, form, ...
    continued: bool = False  # the rest of a landmark after one nested in it (not announced)

    def heading(self) -> str:
        name = f"{self.role} landmark" if self.kind == "landmark" else self.kind.replace("_", " ")
        return f"{name}: {self.title}" if self.title else name


class Narration(BaseModel):
    """The screen, told: an optional description (model mode), regions in reading order,
    and the plain text a speech engine would read."""

    description: str | None = None
    regions: list[Region] = Field(default_factory=list)
    text: str = ""
    surface: str = "image"
    mode: Literal["local", "model"] = "local"
    focused: Item | None = None
    redacted: int = 0  # how many private things were left out (never what they were)
    # where it was read from ("ax-tree", "at-spi", "ocr", "model"; several when mixed)
    sources: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)  # e.g. "xcalc exposes no accessibility tree"

    def items(self) -> list[Item]:
        return [item for region in self.regions for item in region.items]

    def labels(self) -> list[str]:
        return [item.label for item in self.items()]


AnnouncementKind = Literal[
    "dialog_opened",
    "dialog_closed",
    "text_changed",
    "state_changed",
    "focus_moved",
    "appeared",
    "disappeared",
    "title_changed",
    "live_region",
]


class Announcement(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AnnouncementKind
    text: str  # what is said
    key: str  # identity of what changed (coalescing merges announcements with one key)
    item: Item | None = None
