"""What a narration is: regions of items in reading order, and announcements of change.

Boxes are ``[x, y, width, height]`` in frame pixels of the frame that was narrated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from guiagent.core.geometry import Point, Rect

RegionKind = Literal["title_bar", "menu", "dialog", "buttons", "body", "window"]
ItemSource = Literal["dom", "ocr", "a11y", "model", "x11"]


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

    @property
    def rect(self) -> Rect:
        return Rect(*self.box)

    @property
    def centre(self) -> Point:
        return self.rect.centre

    def spoken(self) -> str:
        """How a screen reader would say it: label, then role and states."""
        if self.role == "text":
            return self.label
        role = f"heading level {self.level}" if self.role == "heading" and self.level else self.role
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

    def heading(self) -> str:
        name = self.kind.replace("_", " ")
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
]


class Announcement(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: AnnouncementKind
    text: str  # what is said
    key: str  # identity of what changed (coalescing merges announcements with one key)
    item: Item | None = None
