"""Accessibility sources: the page's DOM and ARIA snapshot (browser), X11 windows
(desktop; AT-SPI is read by :mod:`guiagent.envs.atspi`).

The DOM walk (:data:`NARRATE_DOM_JS`) returns what a screen reader would visit: text
blocks, headings and controls with their accessible name, value, states, font size, box
(CSS px of the viewport) and the container they sit in (dialog, menu, banner). Password
fields and anything inside an element marked private (``data-private``, class
``private``, ``data-guiagent-private``) come back flagged, without their text, so the
narrator can leave them out and count them.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from guiagent.envs.windows import XWindow, x_windows  # noqa: F401  (re-exported for narration)

PRIVATE_SELECTOR = "[data-private], .private, [data-guiagent-private]"

NARRATE_DOM_JS = r"""(privateSel) => {
  const CONTROL = 'a[href],button,input,select,textarea,summary,[role=button],[role=link],[role=checkbox],[role=radio],[role=switch],[role=tab],[role=menuitem],[role=textbox],[role=combobox],[role=option],[role=slider]';
  const vw = window.innerWidth, vh = window.innerHeight;
  const out = [];
  const taken = new Set();
  let containers = new Map();
  const hidden = (el) => {
    if (el.closest('[aria-hidden=true],[hidden]')) return true;
    const s = getComputedStyle(el);
    return s.visibility === 'hidden' || s.display === 'none' || parseFloat(s.opacity || '1') === 0;
  };
  const onScreen = (r) => r.width > 0 && r.height > 0 && r.right > 0 && r.bottom > 0 && r.left < vw && r.top < vh;
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const container = (el) => {
    const dialog = el.closest('dialog[open],[role=dialog],[role=alertdialog]');
    const menu = el.closest('nav,menu,[role=navigation],[role=menubar],[role=menu],[role=toolbar]');
    const banner = el.closest('header,[role=banner]');
    const c = dialog || menu || banner;
    if (!c) return null;
    if (!containers.has(c)) {
      const kind = dialog ? 'dialog' : (menu ? 'menu' : 'title_bar');
      let title = c.getAttribute('aria-label');
      const by = c.getAttribute('aria-labelledby');
      if (!title && by) title = clean(by.split(/\s+/).map(id => (document.getElementById(id) || {}).innerText || '').join(' '));
      if (!title && kind === 'dialog') { const h = c.querySelector('h1,h2,h3,h4,h5,h6,[role=heading]'); if (h) title = clean(h.innerText); }
      if (!title && kind === 'title_bar') title = document.title || null;
      const r = c.getBoundingClientRect();
      containers.set(c, {id: containers.size, kind, title: title || null, box: [r.left, r.top, r.width, r.height]});
    }
    return containers.get(c);
  };
  const role = (el) => {
    const explicit = el.getAttribute('role');
    if (explicit) return explicit.split(/\s+/)[0];
    const tag = el.tagName.toLowerCase();
    if (tag === 'a') return 'link';
    if (tag === 'button' || tag === 'summary') return 'button';
    if (tag === 'select') return 'combobox';
    if (tag === 'textarea') return 'textbox';
    if (tag === 'input') {
      const t = (el.getAttribute('type') || 'text').toLowerCase();
      if (['button', 'submit', 'reset', 'image'].includes(t)) return 'button';
      if (t === 'checkbox') return 'checkbox';
      if (t === 'radio') return 'radio';
      if (t === 'range') return 'slider';
      if (t === 'password') return 'password';
      return 'textbox';
    }
    return 'text';
  };
  const name = (el) => {
    const aria = el.getAttribute('aria-label');
    if (aria) return clean(aria);
    const by = el.getAttribute('aria-labelledby');
    if (by) return clean(by.split(/\s+/).map(id => (document.getElementById(id) || {}).innerText || '').join(' '));
    if (el.labels && el.labels.length) return clean(Array.from(el.labels).map(l => l.innerText).join(' '));
    const tag = el.tagName.toLowerCase();
    if (tag === 'input' && ['button', 'submit', 'reset'].includes((el.type || '').toLowerCase())) return clean(el.value);
    if (['input', 'textarea', 'select'].includes(tag)) return clean(el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('name') || '');
    return clean(el.innerText || el.getAttribute('title') || el.getAttribute('alt') || '');
  };
  const states = (el, r) => {
    const s = [];
    const rl = r;
    if (rl === 'checkbox' || rl === 'radio' || rl === 'switch') {
      const checked = el.getAttribute('aria-checked') === 'true' || !!el.checked;
      s.push(checked ? 'checked' : 'not checked');
    }
    if (el.disabled || el.getAttribute('aria-disabled') === 'true') s.push('disabled');
    const exp = el.getAttribute('aria-expanded');
    if (exp !== null) s.push(exp === 'true' ? 'expanded' : 'collapsed');
    if (el.getAttribute('aria-pressed') === 'true') s.push('pressed');
    if (el.getAttribute('aria-selected') === 'true') s.push('selected');
    if (el.required || el.getAttribute('aria-required') === 'true') s.push('required');
    if (el.getAttribute('aria-invalid') === 'true') s.push('invalid');
    if (document.activeElement === el) s.push('focused');
    return s;
  };
  const push = (el, item) => {
    const r = el.getBoundingClientRect();
    if (!onScreen(r)) return;
    const style = getComputedStyle(el);
    out.push(Object.assign({
      box: [r.left, r.top, r.width, r.height],
      fontSize: parseFloat(style.fontSize) || 16,
      container: container(el),
      private: !!el.closest(privateSel),
      password: false,
      level: null, value: null, states: [],
    }, item));
  };
  document.querySelectorAll(CONTROL).forEach(el => {
    if (hidden(el) || el.closest('select') && el.tagName.toLowerCase() === 'option') return;
    if (el.tagName.toLowerCase() === 'input' && (el.type || '').toLowerCase() === 'hidden') return;
    if (el.parentElement && el.parentElement.closest(CONTROL)) return;  // a control inside a control
    taken.add(el);
    const r = role(el);
    const password = r === 'password' || (el.getAttribute('autocomplete') || '').includes('password');
    const privateEl = !!el.closest(privateSel);
    let value = null;
    if (!password && !privateEl) {
      const tag = el.tagName.toLowerCase();
      if (tag === 'select') value = el.selectedOptions.length ? clean(el.selectedOptions[0].text) : null;
      else if ((tag === 'input' && r === 'textbox') || tag === 'textarea') value = el.value || null;
      else if (el.isContentEditable) value = clean(el.innerText) || null;
    }
    push(el, {role: password ? 'password' : r, label: password || privateEl ? '' : name(el), value,
              states: states(el, r), password});
  });
  const isControlLabel = (el) => {
    const label = el.closest('label');
    return !!(label && (label.control || label.htmlFor));
  };
  const blockOf = (node) => {
    let el = node.parentElement;
    while (el && el !== document.body) {
      const d = getComputedStyle(el).display;
      if (!d.startsWith('inline') || d === 'inline-block' || d === 'inline-flex') return el;
      el = el.parentElement;
    }
    return el;
  };
  const blocks = new Map();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const parent = n.parentElement;
    if (!parent || !clean(n.textContent)) continue;
    if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'OPTION'].includes(parent.tagName)) continue;
    if (parent.closest(CONTROL) || isControlLabel(parent) || hidden(parent)) continue;
    const block = blockOf(n);
    if (!block) continue;
    if (!blocks.has(block)) blocks.set(block, []);
    blocks.get(block).push(clean(n.textContent));
  }
  blocks.forEach((parts, block) => {
    const tag = block.tagName.toLowerCase();
    const explicit = block.getAttribute('role');
    let r = 'text', level = null;
    if (/^h[1-6]$/.test(tag)) { r = 'heading'; level = parseInt(tag[1]); }
    else if (explicit === 'heading') { r = 'heading'; level = parseInt(block.getAttribute('aria-level') || '2'); }
    else if (explicit === 'alert' || explicit === 'status') r = explicit;
    const privateEl = !!block.closest(privateSel);
    push(block, {role: r, label: privateEl ? '' : parts.join(' '), level});
  });
  const focused = document.activeElement;
  return {title: document.title, items: out,
          focusedTag: focused && focused !== document.body ? focused.tagName.toLowerCase() : null};
}"""


class DomItem(BaseModel):
    """One entry of :data:`NARRATE_DOM_JS`'s answer; box in CSS px of the viewport."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    role: str
    label: str = ""
    value: str | None = None
    states: list[str] = Field(default_factory=list)
    level: int | None = None
    box: list[float]
    font_size: float = Field(default=16.0, alias="fontSize")
    container: dict[str, Any] | None = None
    private: bool = False
    password: bool = False


class DomSnapshot(BaseModel):
    title: str = ""
    items: list[DomItem] = Field(default_factory=list)


async def dom_snapshot(page: Any) -> DomSnapshot:
    """Walk the page (a Playwright Page) for narration."""
    data = await page.evaluate(NARRATE_DOM_JS, PRIVATE_SELECTOR)
    return DomSnapshot.model_validate(data)


# --- Playwright's ARIA snapshot ------------------------------------------------------------

_ARIA_LINE = re.compile(
    r'^(?P<indent>\s*)- (?P<role>[A-Za-z/][\w-]*)(?: "(?P<name>(?:[^"\\]|\\.)*)")?'
    r"(?P<attrs>(?: \[[^\]]+\])*)(?::\s*(?P<text>.*))?$"
)


class AriaNode(BaseModel):
    """One node of an ARIA snapshot. Text values (what a textbox holds) are never kept:
    Chromium reports a password field's value there in clear."""

    role: str
    name: str = ""
    attrs: dict[str, str] = Field(default_factory=dict)
    depth: int = 0

    def states(self) -> list[str]:
        out = []
        for key in ("checked", "disabled", "expanded", "pressed", "selected"):
            if key in self.attrs:
                value = self.attrs[key]
                out.append(key if value in ("", "true") else f"{key}={value}")
        if self.role in ("checkbox", "radio", "switch") and "checked" not in self.attrs:
            out.append("not checked")
        return out


def parse_aria_snapshot(text: str) -> list[AriaNode]:
    """Parse Playwright's ``aria_snapshot()`` YAML outline into nodes (document order)."""
    nodes: list[AriaNode] = []
    for line in text.splitlines():
        match = _ARIA_LINE.match(line)
        if match is None or match["role"].startswith("/"):
            continue
        attrs: dict[str, str] = {}
        for attr in re.findall(r"\[([^\]]+)\]", match["attrs"] or ""):
            key, _, value = attr.partition("=")
            attrs[key.strip()] = value.strip()
        name = (match["name"] or "").replace('\\"', '"')
        nodes.append(
            AriaNode(role=match["role"], name=name, attrs=attrs, depth=len(match["indent"]) // 2)
        )
    return nodes


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def aria_states(nodes: list[AriaNode], role: str, name: str) -> list[str] | None:
    """States the ARIA tree gives a control of this role and name (None if not found)."""
    wanted_role = "textbox" if role == "password" else role
    for node in nodes:
        if node.role == wanted_role and _norm(node.name) == _norm(name):
            return node.states()
    return None


# --- desktop: AT-SPI and X11 ---------------------------------------------------------------


def x_pointer(display: str) -> tuple[int, int]:
    """Where the pointer is on an X display (screen points)."""
    from Xlib import display as xdisplay

    dpy = xdisplay.Display(display)
    try:
        pointer = dpy.screen().root.query_pointer()
        return int(pointer.root_x), int(pointer.root_y)
    finally:
        dpy.close()
