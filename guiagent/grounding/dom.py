"""Page elements as the browser environment reports them, and the JavaScript that lists them.

:class:`DomElement` is what the ``dom`` source of :class:`guiagent.grounding.local.LocalGrounder`
matches against; :data:`DOM_SNAPSHOT_JS` is evaluated in the page to produce the dicts.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from guiagent.core.geometry import FrameTransform, Point, Rect


class DomBox(BaseModel):
    """An element's box in CSS pixels of the viewport (getBoundingClientRect)."""

    x: float
    y: float
    width: float
    height: float


class DomElement(BaseModel):
    """One page element as the browser environment reports it (see :data:`DOM_SNAPSHOT_JS`).

    Accepted dict shape (unknown keys ignored; only ``box`` is required)::

        {"tag": "input", "text": "", "role": null, "type": "password",
         "label": "Password", "placeholder": "Password", "aria_label": null,
         "name": null, "value": null, "title": null, "alt": null, "id": "password",
         "box": {"x": 24, "y": 180, "width": 280, "height": 38},
         "visible": true, "enabled": true, "checked": null}

    ``label`` is the text of the element's <label>s (or aria-labelledby); ``aria_label``
    also accepts ``ariaLabel``; ``name`` is an accessible name if the source has one.
    The shape :meth:`BrowserEnv.dom_elements` returns is accepted as is (its
    ``disabled: true`` means ``enabled: false``; ``interactive``/``password`` are ignored,
    the role is derived from tag and type).
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    tag: str = ""
    text: str = ""
    role: str | None = None
    type: str | None = None
    label: str | None = None
    placeholder: str | None = None
    aria_label: str | None = Field(
        default=None, validation_alias=AliasChoices("aria_label", "ariaLabel")
    )
    name: str | None = None
    value: str | None = None
    title: str | None = None
    alt: str | None = None
    id: str | None = None
    box: DomBox
    visible: bool = True
    enabled: bool = True
    checked: bool | None = None
    editable: bool | None = None  # takes typed text (None: the source does not say)
    ref: int | None = None  # the browser's handle on this element (hit test, scroll, focus)
    clipped: bool = False  # entirely cut away by a scrolling ancestor
    # why a person would not see its text though it is laid out (covered, transparent, its
    # colour the background's, too small, hidden by an ancestor, clipped); None: seen
    unseen: str | None = None
    # its text without the text of unseen elements inside it (None: all of it is seen)
    shown: str | None = None
    ax_name: str | None = None  # the accessible name from the browser's accessibility tree
    ax_role: str | None = None  # the role from that tree (Chromium's names)

    @model_validator(mode="before")
    @classmethod
    def _disabled_flag(cls, data: Any) -> Any:
        # BrowserEnv.dom_elements() reports "disabled" rather than "enabled".
        if isinstance(data, dict) and "enabled" not in data and "disabled" in data:
            data = {**data, "enabled": not data["disabled"]}
        return data

    @field_validator("tag")
    @classmethod
    def _lower_tag(cls, value: str) -> str:
        return value.lower()

    @property
    def effective_role(self) -> str:
        if self.role:
            return self.role.lower()
        derived = self._tag_role()
        if derived == "generic" and self.ax_role:
            ax = _canonical_role(self.ax_role)
            if ax in _INTERACTIVE_ROLES:  # e.g. a div the browser exposes as a button
                return ax
        return derived

    def _tag_role(self) -> str:
        kind = (self.type or "").lower()
        if self.tag == "a":
            return "link"
        if self.tag == "button" or (self.tag == "input" and kind in _BUTTON_INPUTS):
            return "button"
        if self.tag == "input" and kind in ("checkbox", "radio"):
            return kind
        if self.tag in ("input", "textarea") or self.editable:
            return "textbox"
        if self.tag == "select":
            return "combobox"
        if re.fullmatch(r"h[1-6]", self.tag):
            return "heading"
        return {"li": "listitem", "label": "label", "img": "img", "option": "option"}.get(
            self.tag, "generic"
        )

    @property
    def interactive(self) -> bool:
        return self.effective_role in _INTERACTIVE_ROLES

    @property
    def container(self) -> bool:
        return self.tag in _CONTAINER_TAGS or (self.role or "").lower() in _CONTAINER_ROLES

    def names(self) -> list[str]:
        """The texts a person might use to name this element."""
        values = [
            self.text,
            self.ax_name,
            self.label,
            self.aria_label,
            self.placeholder,
            self.title,
            self.alt,
            self.name,
        ]
        if self.effective_role == "button" and self.tag == "input":
            values.append(self.value)
        return list(dict.fromkeys(v for v in values if v and v.strip()))

    @property
    def shown_at_all(self) -> bool:
        """Laid out and drawn: not hidden, nor made invisible by an ancestor (opacity 0, a
        closed <details>) or a filter. Covered or same-coloured elements still count here: a
        click's hit test and ``expect`` (:meth:`as_seen`) judge those."""
        return self.visible and self.unseen not in _INVISIBLE

    def as_seen(self) -> DomElement | None:
        """This element as a person reads it, for checks of what is on screen (``expect``,
        ``wait_for``): only the text drawn on it (its text less what is unseen inside it, a
        button's value, a placeholder while the field is empty); None when none of it shows.
        Names a person never reads (aria-label, title, alt, the accessibility tree's) go."""
        if self.unseen:
            return None
        text = self.shown[:200] if self.shown is not None else self.text
        if self.tag == "input" and self.effective_role == "button":
            text = self.value or text
        elif self.tag == "textarea" or (
            self.tag == "input" and (self.type or "text").lower() not in _VALUELESS_INPUTS
        ):
            text = self.value or ""  # what the field shows (a password field: no text)
        return self.model_copy(
            update={
                "text": text,
                "label": None,
                "aria_label": None,
                "title": None,
                "alt": None,
                "name": None,
                "ax_name": None,
                "placeholder": None if self.value else self.placeholder,
                "value": None,
                "enabled": True,  # a disabled control's text shows all the same
            }
        )

    def frame_box(self, transform: FrameTransform) -> Rect:
        top_left = transform.screen_to_frame(Point(self.box.x, self.box.y))
        bottom_right = transform.screen_to_frame(
            Point(self.box.x + self.box.width, self.box.y + self.box.height)
        )
        return Rect.from_corners(top_left.x, top_left.y, bottom_right.x, bottom_right.y)


# the page's reasons (DOM_ELEMENTS_JS, unseenWhy) that leave nothing of an element drawn
_INVISIBLE = {"hidden by an ancestor", "transparent"}
_BUTTON_INPUTS = {"button", "submit", "reset", "image"}
# inputs that show no typed text (their value is not drawn as text)
_VALUELESS_INPUTS = _BUTTON_INPUTS | {"checkbox", "radio", "file", "range", "color", "hidden"}
_INTERACTIVE_ROLES = {
    "button",
    "link",
    "textbox",
    "checkbox",
    "radio",
    "combobox",
    "listbox",
    "option",
    "tab",
    "menuitem",
    "switch",
    "searchbox",
    "slider",
    "spinbutton",
    "menuitemcheckbox",
    "menuitemradio",
    "treeitem",
}
_CONTAINER_TAGS = {
    "section",
    "form",
    "li",
    "ul",
    "ol",
    "nav",
    "header",
    "footer",
    "main",
    "aside",
    "fieldset",
    "dialog",
    "table",
    "tr",
    "article",
    "details",
}
_CONTAINER_ROLES = {
    "region",
    "dialog",
    "group",
    "listitem",
    "list",
    "form",
    "navigation",
    "row",
    "tabpanel",
}
_ROLE_SYNONYMS = {
    "input": "textbox",
    "field": "textbox",
    "textfield": "textbox",
    "text field": "textbox",
    "edit": "textbox",
    "entry": "textbox",
    "textarea": "textbox",
    "searchbox": "textbox",
    "select": "combobox",
    "dropdown": "combobox",
    "listbox": "combobox",
    "check box": "checkbox",
    "radio button": "radio",
    "radiobutton": "radio",
    "image": "img",
    "icon": "img",
}


def _canonical_role(role: str) -> str:
    role = " ".join(role.lower().split())
    return _ROLE_SYNONYMS.get(role, role)


# JavaScript for page.evaluate(): returns the list of dicts DomElement accepts.
DOM_SNAPSHOT_JS = r"""
() => {
  const wanted = 'a,button,input,select,textarea,label,summary,option,img,[role],[aria-label],[title],' +
    'h1,h2,h3,h4,h5,h6,p,span,li,td,th,section,form,ul,ol,nav,header,footer,main,aside,fieldset,' +
    'dialog,table,tr,article,details,legend,div';
  const out = [];
  const vw = window.innerWidth, vh = window.innerHeight;
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  for (const el of document.querySelectorAll(wanted)) {
    const r = el.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0 || r.bottom < 0 || r.right < 0 || r.top > vh || r.left > vw) continue;
    const tag = el.tagName.toLowerCase();
    let ownText = '';
    for (const node of el.childNodes) if (node.nodeType === 3) ownText += node.textContent;
    const isLeafish = clean(ownText) !== '' || ['button', 'a', 'label', 'option', 'summary', 'li', 'td', 'th', 'legend'].includes(tag);
    const interesting = isLeafish || el.matches('input,select,textarea,img,[role],[aria-label],[title],section,form,ul,ol,nav,header,footer,main,aside,fieldset,dialog,table,tr,article,details');
    if (!interesting) continue;
    const style = getComputedStyle(el);
    const visible = style.visibility !== 'hidden' && style.display !== 'none' && parseFloat(style.opacity || '1') > 0;
    let label = null;
    if (el.labels && el.labels.length) label = clean(Array.from(el.labels).map((l) => l.innerText).join(' '));
    const by = el.getAttribute('aria-labelledby');
    if (!label && by) label = clean(by.split(/\s+/).map((id) => (document.getElementById(id) || {}).innerText || '').join(' '));
    out.push({
      tag, text: clean(el.innerText).slice(0, 300), role: el.getAttribute('role'),
      type: el.getAttribute('type'), label, placeholder: el.getAttribute('placeholder'),
      aria_label: el.getAttribute('aria-label'), title: el.getAttribute('title'),
      alt: el.getAttribute('alt'), id: el.id || null,
      value: (tag === 'input' || tag === 'select' || tag === 'textarea') ? String(el.value) : null,
      box: {x: r.x, y: r.y, width: r.width, height: r.height},
      visible, enabled: !el.disabled && el.getAttribute('aria-disabled') !== 'true',
      checked: (el.type === 'checkbox' || el.type === 'radio') ? !!el.checked : null,
    });
  }
  return out;
}
"""


def seen_elements(elements: list[Any]) -> list[DomElement]:
    """The elements (:class:`DomElement` or its dicts) whose text a person can see, with only
    that text as their names (:meth:`DomElement.as_seen`)."""
    seen = []
    for raw in elements:
        element = raw if isinstance(raw, DomElement) else DomElement.model_validate(raw)
        shown = element.as_seen()
        if shown is not None:
            seen.append(shown)
    return seen
