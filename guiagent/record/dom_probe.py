"""Read what a browser page has at a point: the element's accessible role and name, DOM path,
ids, and the named texts around it.

Used when recording (the evidence a replay needs) and when replaying (the element at the
recorded point now, every candidate for a re-location, the focused field). It works on any
environment with a Playwright ``page`` and a ``dom_elements`` method (a BrowserEnv); other
environments have no DOM and get None, so a replay falls back to pixels and OCR.

An element is described as a plain dict (screen points = CSS px of the viewport):
``{tag, type, role, name, id, field, css_path, text, editable, box: {x, y, width, height}}``
where ``role`` is the ARIA role (explicit or implied by the tag), ``name`` the accessible
name (aria-labelledby, aria-label, a <label>, placeholder, alt, title, or the text), and
``field`` the ``name`` attribute of a form control.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from loguru import logger

from guiagent.core.env import DomSource, HoverHint, PageHolder
from guiagent.core.typed_js import TYPED_RULE_JS

_DESCRIBE_JS = (
    r"""
const G = window.__guiagentProbe || (window.__guiagentProbe = (() => {
  const INTERACTIVE = 'a[href],button,input,select,textarea,summary,[role],[onclick],[tabindex],[contenteditable=""],[contenteditable=true]';
  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim().slice(0, 200);
  const implicitRole = (el) => {
    const tag = el.tagName.toLowerCase();
    const type = (el.getAttribute('type') || 'text').toLowerCase();
    if (tag === 'a' && el.hasAttribute('href')) return 'link';
    if (tag === 'button' || tag === 'summary') return 'button';
    if (tag === 'input') {
      if (['button', 'submit', 'reset', 'image'].includes(type)) return 'button';
      if (type === 'checkbox') return 'checkbox';
      if (type === 'radio') return 'radio';
      if (type === 'range') return 'slider';
      if (type === 'search') return 'searchbox';
      if (type === 'hidden') return null;
      return 'textbox';
    }
    if (tag === 'textarea') return 'textbox';
    if (tag === 'select') return el.multiple ? 'listbox' : 'combobox';
    if (/^h[1-6]$/.test(tag)) return 'heading';
    if (tag === 'img') return 'img';
    if (tag === 'li') return 'listitem';
    if (tag === 'label') return 'label';
    if (el.isContentEditable) return 'textbox';
    return null;
  };
  const role = (el) => (el.getAttribute('role') || '').split(' ')[0] || implicitRole(el);
  const name = (el) => {
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const t = by.split(/\s+/).map(id => document.getElementById(id)).filter(Boolean)
        .map(e => e.innerText || e.textContent).join(' ');
      if (clean(t)) return clean(t);
    }
    if (clean(el.getAttribute('aria-label'))) return clean(el.getAttribute('aria-label'));
    const tag = el.tagName.toLowerCase();
    if (['input', 'select', 'textarea'].includes(tag)) {
      const type = (el.getAttribute('type') || '').toLowerCase();
      if (['button', 'submit', 'reset'].includes(type) && el.value) return clean(el.value);
      const labels = el.labels ? Array.from(el.labels).map(l => l.innerText || l.textContent).join(' ') : '';
      if (clean(labels)) return clean(labels);
      if (clean(el.getAttribute('placeholder'))) return clean(el.getAttribute('placeholder'));
      if (clean(el.getAttribute('title'))) return clean(el.getAttribute('title'));
      return '';
    }
    if (tag === 'img') return clean(el.getAttribute('alt') || el.getAttribute('title'));
    return clean(el.innerText || el.textContent) || clean(el.getAttribute('title'));
  };
  const cssPath = (el) => {
    const parts = [];
    for (let e = el; e && e.nodeType === 1 && e !== document.documentElement; e = e.parentElement) {
      const tag = e.tagName.toLowerCase();
      const same = e.parentElement ? Array.from(e.parentElement.children).filter(c => c.tagName === e.tagName) : [e];
      parts.unshift(same.length > 1 ? `${tag}:nth-of-type(${same.indexOf(e) + 1})` : tag);
    }
    return parts.join('>');
  };
  const visible = (el, r) => {
    if (r.width <= 0 || r.height <= 0) return false;
    if (r.right <= 0 || r.bottom <= 0 || r.left >= innerWidth || r.top >= innerHeight) return false;
    const s = getComputedStyle(el);
    return s.visibility !== 'hidden' && s.display !== 'none' && parseFloat(s.opacity || '1') > 0;
  };
  const editable = (el) => {
    const tag = el.tagName.toLowerCase();
    const type = (el.getAttribute('type') || 'text').toLowerCase();
    return tag === 'textarea' || el.isContentEditable ||
      (tag === 'input' && !['button', 'submit', 'reset', 'image', 'checkbox', 'radio', 'range', 'hidden', 'file', 'color'].includes(type));
  };
  const describe = (el) => {
    const r = el.getBoundingClientRect();
    const tag = el.tagName.toLowerCase();
    return {
      tag, type: tag === 'input' ? (el.getAttribute('type') || 'text').toLowerCase() : null,
      role: role(el), name: name(el), id: el.id || null, field: el.getAttribute('name') || null,
      css_path: cssPath(el), text: clean(el.innerText || ''), editable: editable(el),
      box: {x: r.left, y: r.top, width: r.width, height: r.height},
    };
  };
  // what a click at a point acts on: the nearest interactive ancestor, else the element itself
  const target = (el) => {
    if (el && el.tagName === 'LABEL' && el.control) return el;
    for (let e = el; e && e !== document.body; e = e.parentElement) if (e.matches(INTERACTIVE)) return e;
    return el;
  };
  const texts = () => {
    const out = [], seen = new Set();
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      if (!n.textContent.trim() || !el || seen.has(el) || ['SCRIPT', 'STYLE', 'NOSCRIPT'].includes(el.tagName)) continue;
      seen.add(el);
      const r = el.getBoundingClientRect();
      if (!visible(el, r)) continue;
      out.push({el, text: clean(el.innerText || n.textContent), box: {x: r.left, y: r.top, width: r.width, height: r.height}});
    }
    return out;
  };
  const centre = (b) => [b.x + b.width / 2, b.y + b.height / 2];
"""
    + TYPED_RULE_JS
    + r"""
  const neighbours = (el, limit) => {
    const [cx, cy] = centre(describe(el).box);
    return texts().filter(t => !el.contains(t.el) && t.text.length <= 80)
      .map(t => { const [x, y] = centre(t.box); return {text: t.text, box: t.box, dx: cx - x, dy: cy - y, d: Math.hypot(cx - x, cy - y)}; })
      .filter(t => t.d <= 300).sort((a, b) => a.d - b.d).slice(0, limit)
      .map(({d, ...rest}) => rest);
  };
  return {
    at(x, y, withNeighbours) {
      const el = target(document.elementFromPoint(x, y));
      if (!el || el === document.body || el === document.documentElement) return null;
      const out = describe(el);
      if (withNeighbours) {
        out.neighbours = neighbours(el, 4);
        const same = this.candidates().elements.filter(e => e.role === out.role && e.type === out.type);
        out.rank = same.findIndex(e => e.css_path === out.css_path);
      }
      return out;
    },
    candidates() {
      const out = [], seen = new Set();
      const add = (el) => {
        if (seen.has(el)) return;
        seen.add(el);
        if (visible(el, el.getBoundingClientRect())) out.push(describe(el));
      };
      document.querySelectorAll(INTERACTIVE + ',label').forEach(add);
      texts().forEach(t => add(target(t.el)));
      return {elements: out.slice(0, 600), texts: texts().map(t => ({text: t.text, box: t.box})).slice(0, 600)};
    },
    // the element at a css_path read before (the field a replay clicked), with has_typed;
    // null when no element has that path now (gone, or it was inside a shadow root)
    field(path, typed) {
      let el = null;
      try { el = path ? document.querySelector(path) : null; } catch (e) { el = null; }
      if (!el || cssPath(el) !== path) return null;
      return G.withTyped(el, typed);
    },
    // describe(el) with has_typed: whether its value (or editable text) holds `typed`, new
    // there (core/typed_js.py); `typed` null: the value before typing is kept in the page
    withTyped(el, typed) {
      const out = describe(el);
      const value = ('value' in el && typeof el.value === 'string') ? el.value : (el.isContentEditable ? el.innerText : null);
      if (!window.__guiagentBefore) window.__guiagentBefore = new WeakMap();
      const before = window.__guiagentBefore;
      if (typed == null) {
        if (value != null) before.set(el, typedBefore(el, value));
        out.has_typed = null;
        return out;
      }
      out.has_typed = value == null ? null : typedIsNew(value, typed, before.get(el), (v) => v);
      return out;
    },
    focused(typed) {
      let el = document.activeElement;
      while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
      if (!el || el === document.body || el === document.documentElement) return null;
      return G.withTyped(el, typed);
    },
  };
})());
"""
)


def has_dom(env: Any) -> bool:
    """True when ``env`` is a browser page a replay can read the DOM of."""
    return isinstance(env, DomSource) and isinstance(env, PageHolder) and env.page is not None


_MISSING = "guiagent probe missing"


async def _call(env: Any, expression: str, arg: Any = None) -> Any:
    """Evaluate ``expression`` (with ``G``, the probe, and ``arg``) on the page. The probe is
    installed once per document; a short call uses it, a new document gets it again. The
    argument is written into the expression (JSON): a plain expression costs the page less
    than a function called with arguments."""
    page = env.page
    given = f"const arg = {json.dumps(arg)};"
    try:
        return await page.evaluate(
            f"(() => {{ {given} const G = window.__guiagentProbe;"
            f" if (!G) throw new Error('{_MISSING}'); return {expression}; }})()"
        )
    except Exception as exc:
        if _MISSING not in str(exc):
            raise
    return await page.evaluate(f"(() => {{ {given} {_DESCRIBE_JS}; return {expression}; }})()")


async def install(env: Any) -> dict[str, Any]:
    """Install the probe on the page (a no-op when it is there) and read the page's URL and
    title, in one round trip: a replay's first read, so that its first snapshot finds the
    probe (no failed call and second round trip)."""
    state: dict[str, Any] = await env.page.evaluate(
        f"(() => {{ {_DESCRIBE_JS}; return {{url: location.href, title: document.title}}; }})()"
    )
    return state


async def element_at(
    env: Any, x: float, y: float, neighbours: bool = False
) -> dict[str, Any] | None:
    """The element a click at screen point (x, y) acts on, described (None: nothing there)."""
    try:
        found: dict[str, Any] | None = await _call(
            env, "G.at(arg[0], arg[1], arg[2])", [x, y, neighbours]
        )
    except Exception as exc:  # the page navigated or closed mid-call: no DOM evidence
        logger.debug("DOM probe at {},{} failed: {}", x, y, exc)
        return None
    return found


async def candidates(env: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every visible interactive or text element (described) and every visible text with its box."""
    found = await _call(env, "G.candidates()")
    return list(found["elements"]), list(found["texts"])


async def focused(env: Any, typed: str | None = None) -> dict[str, Any] | None:
    """The focused element, described, with ``has_typed``: whether its value holds ``typed``."""
    found: dict[str, Any] | None = await _call(env, "G.focused(arg)", typed)
    return found


async def typed_fields(env: Any, typed: str, meant: str | None) -> dict[str, Any]:
    """``{focused, meant}``: the focused element and the field at css_path ``meant`` (None
    when not in the page), each with ``has_typed``, in one round trip."""
    found: dict[str, Any] = await _call(
        env,
        "({focused: G.focused(arg[0]), meant: arg[1] ? G.field(arg[1], arg[0]) : null})",
        [typed, meant],
    )
    return found


def typed_verdict(
    focused: dict[str, Any] | None, meant: dict[str, Any] | None
) -> Literal["landed", "elsewhere", "not yet"]:
    """Where typed text is, from :func:`typed_fields`' answers: in the field it was meant for
    (or, when that field is not known or gone, in the focused one: ``landed``), in another
    field (``elsewhere``: the page moved the focus while typing), or not found (``not
    yet``: a slow page may still show it). A field that cannot hold text counts as landed."""
    if meant is not None:
        if meant.get("has_typed") is not False:
            return "landed"
        if (
            focused is not None
            and focused.get("has_typed")
            and focused.get("css_path") != meant.get("css_path")
        ):
            return "elsewhere"
        return "not yet"
    if focused is None or focused.get("has_typed") is not False:
        return "landed"
    return "not yet"


async def snapshot(
    env: Any,
    point: tuple[float, float] | None,
    with_focus: bool,
    typed: str | None = None,
    meant: str | None = None,
) -> dict[str, Any] | None:
    """In one round trip: the page's URL and title, the element at ``point`` (or None) and the
    focused element when asked, or when ``typed`` is given (then with ``has_typed``); with a
    ``point``, on a :class:`~guiagent.core.env.HoverHint` page, ``hover``: whether a press
    there must wait for hover styles; with ``meant`` (the css_path of the field the text was
    meant for), ``meant``: that field, with ``has_typed``. None when the page cannot answer
    (navigating)."""
    arg = [point[0], point[1]] if point is not None else None
    hover = f" hover: {env.hover_styled_js}," if point and isinstance(env, HoverHint) else ""
    try:
        found: dict[str, Any] = await _call(
            env,
            f"({{url: location.href, title: document.title,{hover}"
            " at: arg[0] ? G.at(arg[0][0], arg[0][1], false) : null,"
            " meant: arg[3] ? G.field(arg[3], arg[2]) : null,"
            " focused: (arg[1] || arg[2] != null) ? G.focused(arg[2]) : null})",
            [arg, with_focus, typed, meant],
        )
    except Exception as exc:  # the page navigated mid-call: the checks poll again
        logger.debug("DOM snapshot failed: {}", exc)
        return None
    return found
