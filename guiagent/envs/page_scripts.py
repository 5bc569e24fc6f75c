"""JavaScript the browser environment runs in the page (declarative: no logic in Python)."""

from guiagent.core.typed_js import TYPED_RULE_JS

_FOCUSED_JS = """() => {
    let el = document.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    if (!el || el === document.body || el === document.documentElement) return null;
    return {tag: el.tagName.toLowerCase(), type: (el.getAttribute('type') || '').toLowerCase(), id: el.id || null};
}"""


_PAGE_STATE_JS = """() => ({
    dpr: window.devicePixelRatio,
    width: window.innerWidth,
    height: window.innerHeight,
    scrollX: window.scrollX,
    scrollY: window.scrollY,
    docWidth: Math.max(document.documentElement.scrollWidth, document.body ? document.body.scrollWidth : 0),
    docHeight: Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0),
    url: location.href,
    title: document.title,
})"""


# Element references stable across snapshots (a WeakMap in the page), so that a step can ask
# about the element it grounded (hit test, focus, scroll into view) after a later snapshot.
_REFS_JS = """
  if (!window.__guiagentRefs) window.__guiagentRefs = {byEl: new WeakMap(), byRef: new Map(), next: 1};
  const REFS = window.__guiagentRefs;
  const refOf = (el) => {
    let ref = REFS.byEl.get(el);
    if (!ref) { ref = REFS.next++; REFS.byEl.set(el, ref); REFS.byRef.set(ref, new WeakRef(el)); }
    return ref;
  };
  const byRef = (ref) => { const w = REFS.byRef.get(ref); return w ? w.deref() || null : null; };
  // the element drawn at a viewport point, through open shadow roots and same-origin iframes
  const deepAt = (x, y) => {
    let doc = document, el = doc.elementFromPoint(x, y), ox = 0, oy = 0;
    for (let hops = 0; el && hops < 20; hops++) {
      if (el.shadowRoot) {
        const inner = el.shadowRoot.elementFromPoint(x - ox, y - oy);
        if (inner && inner !== el) { el = inner; continue; }
      }
      if (el.tagName === 'IFRAME' || el.tagName === 'FRAME') {
        let sub = null;
        try { sub = el.contentDocument; } catch (e) { sub = null; }
        if (!sub) break;
        const r = el.getBoundingClientRect();
        ox += r.left + el.clientLeft; oy += r.top + el.clientTop;
        const inner = sub.elementFromPoint(x - ox, y - oy);
        if (!inner) break;
        el = inner; continue;
      }
      break;
    }
    return el;
  };
  // whether `inner` is `outer` or inside it (crossing shadow roots and iframes upwards)
  const within = (inner, outer) => {
    for (let n = inner; n; ) {
      if (n === outer) return true;
      if (n.parentNode) { n = n.parentNode; continue; }
      if (n.host) { n = n.host; continue; }
      n = n.defaultView && n.defaultView.frameElement ? n.defaultView.frameElement : null;
    }
    return false;
  };
  const describe = (el) => {
    if (!el) return 'nothing';
    const tag = el.tagName ? el.tagName.toLowerCase() : '#node';
    const shown = (el.type || '').toLowerCase() === 'password' ? '' : el.value;  // never a password
    const text = ((el.innerText || shown || el.getAttribute && (el.getAttribute('aria-label') || el.getAttribute('placeholder')) || '') + '').trim().replace(/\\s+/g, ' ').slice(0, 60);
    return '<' + tag + (el.id ? '#' + el.id : '') + '>' + (text ? ' "' + text + '"' : '');
  };
  const editable = (el) => !!el && (el.isContentEditable ||
    (el.tagName === 'TEXTAREA' && !el.readOnly && !el.disabled) ||
    (el.tagName === 'INPUT' && !el.readOnly && !el.disabled &&
      !['button', 'submit', 'reset', 'checkbox', 'radio', 'image', 'file', 'range', 'color', 'hidden'].includes((el.type || 'text').toLowerCase())));
  const focusedDeep = () => {
    let el = document.activeElement;
    for (let hops = 0; el && hops < 20; hops++) {
      if (el.shadowRoot && el.shadowRoot.activeElement) { el = el.shadowRoot.activeElement; continue; }
      if ((el.tagName === 'IFRAME' || el.tagName === 'FRAME')) {
        let sub = null;
        try { sub = el.contentDocument; } catch (e) { sub = null; }
        if (sub && sub.activeElement && sub.activeElement !== sub.body) { el = sub.activeElement; continue; }
      }
      break;
    }
    return el;
  };
"""


# Names as a screen reader computes them: every name an element answers to is kept
# (aria-labelledby, aria-label, its <label>s, placeholder, title, alt); ``name`` is the
# accessible name in the accname order. ``box`` is the part left visible by scrolling
# ancestors (``clipped``: nothing of it is).
_DOM_ELEMENTS_JS = (
    "(inViewport) => {"
    + _REFS_JS
    + """
  // walks the page, open shadow roots and same-origin iframes (boxes in the top page's
  // viewport); text past 200 characters goes to more_text, CSS ::before/::after to pseudo
  const INTERACTIVE = 'a[href],button,input,select,textarea,summary,label,[role],[onclick],[tabindex],[contenteditable=""],[contenteditable=true],img[alt],[aria-label],[title]';
  const CONTROL = 'a[href],button,[role=button],[role=link],[role=menuitem],[role=tab],[role=option],summary,label';
  const vw = window.innerWidth, vh = window.innerHeight;
  const out = [];
  const seen = new Set();
  const pushed = new Map();
  const clean = (s) => (s || '').replace(/\\s+/g, ' ').trim();
  const visible = (el, r) => {
    if (r.width <= 0 || r.height <= 0) return false;
    if (inViewport && (r.right <= 0 || r.bottom <= 0 || r.left >= vw || r.top >= vh)) return false;
    const s = getComputedStyle(el);
    return s.visibility !== 'hidden' && s.display !== 'none' && parseFloat(s.opacity || '1') > 0;
  };
  // the part of r (the element's own frame coordinates) not cut away by ancestors that clip
  const clipRect = (el, r) => {
    let [l, t, rr, b] = [r.left, r.top, r.right, r.bottom];
    const doc = el.ownerDocument;
    for (let p = el.parentElement; p && p !== doc.body && p !== doc.documentElement; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowX === 'visible' && s.overflowY === 'visible') continue;
      const c = p.getBoundingClientRect();
      if (s.overflowX !== 'visible') { l = Math.max(l, c.left + p.clientLeft); rr = Math.min(rr, c.left + p.clientLeft + p.clientWidth); }
      if (s.overflowY !== 'visible') { t = Math.max(t, c.top + p.clientTop); b = Math.min(b, c.top + p.clientTop + p.clientHeight); }
    }
    return [l, t, rr, b];
  };
  const textOf = (el, id) => {
    const root = el.getRootNode();
    const n = root.getElementById ? root.getElementById(id) : el.ownerDocument.getElementById(id);
    return n ? clean(n.innerText || n.textContent) : '';
  };
  const pseudo = (el, which) => {
    const c = getComputedStyle(el, which).content;
    return c && c !== 'none' && c !== 'normal' && /^["']/.test(c) ? c.slice(1, -1) : '';
  };
  const pseudoText = (el) => clean(pseudo(el, '::before') + ' ' + pseudo(el, '::after'));
  // why a person would not see an element's own text although it is laid out (expect and
  // wait_for read only text a person can see): hidden or transparent by an ancestor, its
  // colour the background's, too small to read, or something else drawn over it
  const rgba = (c) => { const m = /rgba?\\(([^)]*)\\)/.exec(c || ''); if (!m) return null;
    const v = m[1].split(/[ ,\\/]+/).filter(Boolean).map(parseFloat); return v.length >= 3 ? [v[0], v[1], v[2], v.length > 3 ? v[3] : 1] : null; };
  const up = (n) => n.parentElement || (n.parentNode && n.parentNode.host) || null;
  const backdrop = (el) => {  // the colour behind el's text: null when an image may be there
    for (let p = el; p; p = up(p)) {
      const s = getComputedStyle(p);
      if (s.backgroundImage && s.backgroundImage !== 'none') return null;
      const c = rgba(s.backgroundColor);
      if (c && c[3] >= 0.99) return c;
      if (c && c[3] > 0.01) return null;  // translucent layers: cannot tell
    }
    return el.ownerDocument === document ? [255, 255, 255, 1] : null;
  };
  const inside = (el, box, x, y) => {
    if (x < 0 || y < 0 || x >= vw || y >= vh) return null;
    const at = deepAt(x, y);
    return at ? (within(at, el) ? true : at) : null;
  };
  // something drawn over text hides it when it is opaque (a translucent or empty layer,
  // a click-catcher, leaves the text to be read)
  const opaque = (el) => {
    if (['IMG', 'VIDEO', 'CANVAS', 'IFRAME', 'EMBED', 'OBJECT'].includes(el.tagName)) return true;
    const s = getComputedStyle(el), c = rgba(s.backgroundColor);
    return (s.backgroundImage && s.backgroundImage !== 'none') || (!!c && c[3] >= 0.5);
  };
  const coveredBy = (el, box) => {
    const points = [[box.x + box.width / 2, box.y + box.height / 2]];
    for (const q of Array.from(el.getClientRects()).slice(0, 3)) points.push([q.left + q.width / 2, q.top + q.height / 2]);
    let blocker = null;
    for (const [x, y] of points) {
      const found = inside(el, box, x, y);
      if (found === true) return null;
      if (found && !within(el, found) && !opaque(found)) return null;
      if (found) blocker = found;
    }
    return blocker;
  };
  const unseenWhy = (el, box) => {
    const shows = (e) => !e.checkVisibility || e.checkVisibility({opacityProperty: true, visibilityProperty: true, contentVisibilityAuto: true});
    for (let e = el; e; e = e.ownerDocument.defaultView && e.ownerDocument.defaultView.frameElement)
      if (!shows(e)) return 'hidden by an ancestor';  // its frame's ancestors too
    if (box.width < 3 || box.height < 3) return 'too small to read';
    const s = getComputedStyle(el);
    for (let p = el; p; p = up(p)) if (/opacity\\(0(\\.0*)?%?\\)/.test(getComputedStyle(p).filter || '')) return 'transparent';
    const ink = rgba(s.webkitTextFillColor) || rgba(s.color);
    const plain = (s.textShadow === 'none' || !s.textShadow) && !(parseFloat(s.webkitTextStrokeWidth) > 0);
    if (ink && plain && !['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)) {
      if (ink[3] < 0.05) return 'transparent text';
      const bg = backdrop(el);
      if (bg && Math.abs(ink[0] - bg[0]) + Math.abs(ink[1] - bg[1]) + Math.abs(ink[2] - bg[2]) < 12) return 'drawn in the colour of its background';
    }
    if (s.pointerEvents === 'none' || !inViewport) return '';
    const blocker = coveredBy(el, box);
    return blocker ? 'covered by ' + describe(blocker) : '';
  };
  const nameOf = (el) => el.getAttribute('aria-label') || el.getAttribute('placeholder') || el.getAttribute('name') || el.getAttribute('title') || el.getAttribute('alt') || null;
  const push = (el, interactive, dx, dy) => {
    if (seen.has(el)) return;
    const own = el.getBoundingClientRect();
    const r = {left: own.left + dx, top: own.top + dy, right: own.right + dx, bottom: own.bottom + dy, width: own.width, height: own.height};
    if (!visible(el, r)) return;
    seen.add(el);
    const tag = el.tagName.toLowerCase();
    const type = tag === 'input' ? (el.getAttribute('type') || 'text').toLowerCase() : null;
    let text = clean(el.innerText || el.textContent);
    if (tag === 'input' && ['button', 'submit', 'reset'].includes(type)) text = el.value || text;
    const generated = pseudoText(el);
    if (!text) text = generated;
    const secret = type === 'password';
    const by = el.getAttribute('aria-labelledby');
    const labelledby = by ? clean(by.split(/\\s+/).map((id) => textOf(el, id)).join(' ')) : '';
    const labels = el.labels && el.labels.length ? clean(Array.from(el.labels).map((l) => l.innerText).join(' ')) : '';
    const aria = clean(el.getAttribute('aria-label'));
    const placeholder = clean(el.getAttribute('placeholder'));
    const title = clean(el.getAttribute('title'));
    const alt = clean(el.getAttribute('alt'));
    const named = tag === 'label' || tag === 'option' || tag === 'button' || tag === 'a' || el.getAttribute('role');
    const name = labelledby || aria || labels || (named && text) || placeholder || title || alt || null;
    const owner = el.parentElement ? el.parentElement.closest(CONTROL) : null;
    const [l, t, rr, b] = clipRect(el, own);
    const clipped = rr <= l || b <= t;
    const box = clipped ? {x: r.left, y: r.top, width: r.width, height: r.height}
      : {x: l + dx, y: t + dy, width: rr - l, height: b - t};
    out.push({
      tag, type, role: el.getAttribute('role') || null, id: el.id || null,
      text: text.slice(0, 200), more_text: text.length > 200 ? text.slice(200, 20000) : null,
      name: name ? name.slice(0, 200) : null,
      label: (labelledby || labels || null), aria_label: aria || null,
      placeholder: placeholder || null, title: title || null, alt: alt || null,
      owner_name: owner ? (nameOf(owner) || clean(owner.innerText).slice(0, 100) || null) : null,
      pseudo: generated || null,
      value: secret ? null : (('value' in el && typeof el.value === 'string') ? el.value.slice(0, 200) : null),
      interactive, disabled: !!el.disabled || el.matches(':disabled') || !!el.closest('[aria-disabled="true"]'), password: secret, editable: editable(el),
      ref: refOf(el), clipped, box, unseen: (clipped ? 'clipped' : unseenWhy(el, box)) || null,
    });
    pushed.set(el, out[out.length - 1]);
    if (tag === 'select') out[out.length - 1].shown = clean(el.selectedOptions && el.selectedOptions[0] ? el.selectedOptions[0].text : '');
    if (text && !clipped && !['INPUT', 'TEXTAREA', 'SELECT'].includes(el.tagName)) textCut(el, [l, t, rr, b]);
  };
  // where el's text is cut (by its own overflow, an ancestor's or the window's edge): the
  // box its words must be in to be seen, kept when some of its text lies outside it
  const cuts = new Map();
  const textCut = (el, [l, t, rr, b]) => {
    const s = getComputedStyle(el), win = el.ownerDocument.defaultView;
    if (s.overflowX !== 'visible' || s.overflowY !== 'visible') {
      const c = el.getBoundingClientRect();
      l = Math.max(l, c.left + el.clientLeft); rr = Math.min(rr, c.left + el.clientLeft + el.clientWidth);
      t = Math.max(t, c.top + el.clientTop); b = Math.min(b, c.top + el.clientTop + el.clientHeight);
    }
    if (inViewport) { l = Math.max(l, 0); t = Math.max(t, 0); rr = Math.min(rr, win.innerWidth); b = Math.min(b, win.innerHeight); }
    const range = el.ownerDocument.createRange();
    range.selectNodeContents(el);
    const q = range.getBoundingClientRect();
    if (q.width <= 0 || (q.left >= l - 1 && q.right <= rr + 1 && q.top >= t - 1 && q.bottom <= b + 1)) return;
    cuts.set(el, [l, t, rr, b]);
  };
  // an element whose text holds an unseen element's text: shown is what a person reads of it
  // what a person reads of el's text: without unseen elements in it, and (``cut``: a box)
  // only the words whose middle is inside the box
  const shownText = (el, cut) => {
    const skip = (n) => { const e = pushed.get(n);
      return !!(e && e.unseen) || ['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE'].includes(n.tagName) || getComputedStyle(n).display === 'none'; };
    const w = el.ownerDocument.createTreeWalker(el, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT,
      {acceptNode: (n) => n.nodeType === Node.ELEMENT_NODE && skip(n) ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
    const range = el.ownerDocument.createRange();
    const shows = (node, start, end) => {
      if (!cut) return true;
      range.setStart(node, start); range.setEnd(node, end);
      const q = range.getBoundingClientRect(), x = q.left + q.width / 2, y = q.top + q.height / 2;
      return q.width > 0 && x >= cut[0] && x <= cut[2] && y >= cut[1] && y <= cut[3];
    };
    let t = '', words = 0;
    for (let n = w.nextNode(); n; n = w.nextNode()) {
      if (n.nodeType !== Node.TEXT_NODE) { if (n.tagName === 'BR' || getComputedStyle(n).display !== 'inline') t += ' '; continue; }
      if (getComputedStyle(n.parentElement).visibility === 'hidden') continue;
      const data = n.textContent;
      if (words > 400) { if (shows(n, 0, data.length)) t += data; continue; }  // long: by node
      for (const m of data.matchAll(/\\S+/g)) {
        words++;
        if (shows(n, m.index, m.index + m[0].length)) t += ' ' + m[0]; else t += ' ';
      }
      if (/\\s$/.test(data)) t += ' ';
    }
    return clean(t);
  };
  const markShown = () => {
    const tainted = new Set();
    for (const [el, e] of pushed) if (e.unseen) for (let p = up(el); p && !tainted.has(p); p = up(p)) tainted.add(p);
    for (const [el, e] of pushed) {
      if (e.unseen || !e.text || el.tagName === 'SELECT' || !(tainted.has(el) || cuts.has(el))) continue;
      e.shown = shownText(el, cuts.get(el) || null).slice(0, 20000);
      if (!e.shown && cuts.has(el)) e.unseen = 'cut off by the edge of its box or the window';
    }
  };
  const walk = (root, dx, dy, depth) => {
    if (depth > 8) return;
    root.querySelectorAll(INTERACTIVE).forEach(el => push(el, true, dx, dy));
    const start = root.body || root.documentElement || root;
    if (!start) return;
    const walker = document.createTreeWalker(start, NodeFilter.SHOW_ELEMENT | NodeFilter.SHOW_TEXT);
    for (let n = walker.currentNode; n; n = walker.nextNode()) {
      if (n.nodeType === Node.TEXT_NODE) {
        if (n.textContent.trim() && n.parentElement && !['SCRIPT', 'STYLE', 'NOSCRIPT'].includes(n.parentElement.tagName)) push(n.parentElement, false, dx, dy);
        continue;
      }
      if (n.nodeType !== Node.ELEMENT_NODE) continue;
      if (n.shadowRoot) walk(n.shadowRoot, dx, dy, depth + 1);
      if (n.tagName === 'IFRAME' || n.tagName === 'FRAME') {
        let doc = null;
        try { doc = n.contentDocument; } catch (e) { doc = null; }  // cross-origin: not readable
        if (doc) {
          const fr = n.getBoundingClientRect();
          walk(doc, dx + fr.left + n.clientLeft, dy + fr.top + n.clientTop, depth + 1);
        }
      }
      if (n !== start && pseudoText(n)) push(n, false, dx, dy);
    }
  };
  walk(document, 0, 0, 0);
  markShown();
  return out;
}"""
)


# What is under a viewport point, and whether it is the element ``ref`` or inside it.
_HIT_TEST_JS = (
    "([x, y, ref]) => {"
    + _REFS_JS
    + """
  const target = byRef(ref);
  const at = deepAt(x, y);
  // a checkbox's, radio's or switch's state (a label's control's): a click on one must change it
  const toggle = (el) => {
    const c = el && el.tagName === 'LABEL' && el.control ? el.control : el;
    if (!c) return null;
    if (c.tagName === 'INPUT' && (c.type === 'checkbox' || c.type === 'radio')) return c.indeterminate ? 'mixed' : String(c.checked);
    return c.getAttribute('aria-checked') || c.getAttribute('aria-pressed');
  };
  return {found: !!target, checked: target && target.isConnected ? toggle(target) : null, hit: !!target && !!at && (within(at, target) || (target.control && within(at, target.control))),
          at: describe(at), target: describe(target), through: !!target && !!at && at !== target && within(target, at)};
}"""
)


# Scroll the element ``ref`` into view (its scrolling ancestors too); false when it is gone.
_SCROLL_INTO_VIEW_JS = (
    "(ref) => {"
    + _REFS_JS
    + """
  const el = byRef(ref);
  if (!el || !el.isConnected) return false;
  el.scrollIntoView({block: 'center', inline: 'nearest'});
  return true;
}"""
)


# The focused element (through shadow roots and same-origin iframes), whether it takes
# text, whether its value holds ``text`` (the value itself is never returned).
_FOCUS_STATE_JS = (
    "({text, expect}) => {"
    + _REFS_JS
    + TYPED_RULE_JS
    + """
  // a field's value as read before typing (text null), kept in the page: after typing, the
  // text must be new there (core/typed_js.py)
  if (!REFS.before) REFS.before = new WeakMap();
  const valueOf = (el) => el.isContentEditable ? (el.innerText || '') : (typeof el.value === 'string' ? el.value : '');
  const norm = (v) => v.replace(/\\s+/g, ' ');
  const holds = (el) => {
    if (text === null) {
      REFS.before.set(el, typedBefore(el, valueOf(el)));
      return null;
    }
    return typedIsNew(valueOf(el), text, REFS.before.get(el), norm);
  };
  const doc = performance.timeOrigin;
  // the field the typing was meant for (a ref read before typing, in this same document)
  let expected = null;
  if (expect !== null && expect.doc === doc) {
    const target = byRef(expect.ref);
    expected = target ? {connected: target.isConnected, at: describe(target), contains: holds(target)}
                      : {connected: false};
  }
  const el = focusedDeep();
  if (!el || el === document.body || el === document.documentElement)
    return {focused: false, at: 'the page body', doc, expected};
  return {focused: true, editable: editable(el), ref: refOf(el), at: describe(el), doc, expected,
          contains: holds(el), password: (el.type || '').toLowerCase() === 'password'};
}"""
)


# Mark (or unmark) every element a DOM snapshot reported with its ref, so that a CDP
# DOM.getDocument can tell which backend node each one is.
_MARK_REFS_JS = (
    "(on) => {"
    + _REFS_JS
    + """
  for (const [ref, weak] of REFS.byRef) {
    const el = weak.deref();
    if (!el) { REFS.byRef.delete(ref); continue; }
    if (on) el.setAttribute('data-guiagent-ref', String(ref)); else el.removeAttribute('data-guiagent-ref');
  }
}"""
)


# the DOM snapshot the scenarios ground with (BrowserEnv.dom_elements, without the AX names)
DOM_ELEMENTS_JS = _DOM_ELEMENTS_JS
