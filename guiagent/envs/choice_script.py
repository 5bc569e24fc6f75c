"""Page script that finds a choice control (a ``<select>``, an ARIA listbox or combobox)
and reads its options and which one is selected: what a ``select`` step acts on and checks.

Called with ``[x, y, name, mark]``: the control is the one at viewport point (x, y) (or an
ancestor of it), else the one whose accessible name (its labels, aria-label,
aria-labelledby) contains ``name``, else the nearest one right of or below the point (a
label beside its control). ``mark``: re-read the control found before (``x``/``y`` unused).
Returns None when there is none, else {kind (select, listbox, combobox), name, box,
expanded, options: [{label, selected}], selected (label or None), value, text}.
"""

from __future__ import annotations

CHOICE_JS = r"""([x, y, name, mark]) => {
  const ATTR = 'data-guiagent-choice';
  const SEL = 'select, [role=listbox], [role=combobox]';
  const norm = (t) => (t || '').replace(/\s+/g, ' ').trim();
  const kindOf = (el) => el.tagName === 'SELECT' ? 'select' : el.getAttribute('role');
  const nameOf = (el) => {
    const parts = [el.getAttribute('aria-label')];
    for (const l of (el.labels || [])) parts.push(l.innerText);
    for (const id of (el.getAttribute('aria-labelledby') || '').split(/\s+/)) {
      const l = id && document.getElementById(id); if (l) parts.push(l.innerText);
    }
    return norm(parts.filter(Boolean).join(' '));
  };
  let found = null;
  if (mark) {
    found = document.querySelector('[' + ATTR + ']');
  } else {
    let at = document.elementFromPoint(x, y);
    if (at && at.tagName === 'LABEL' && at.control) at = at.control;
    found = at && at.closest(SEL);
    const all = [...document.querySelectorAll(SEL)].filter((el) => {
      const r = el.getBoundingClientRect(); return r.width > 0 && r.height > 0; });
    if (!found && name) {
      const want = norm(name).toLowerCase();
      const named = all.filter((el) => nameOf(el).toLowerCase().includes(want));
      if (named.length === 1) found = named[0];
    }
    if (!found) {
      let best = null, bestD = 300;
      for (const el of all) {
        const r = el.getBoundingClientRect();
        const dx = Math.max(0, r.left - x), dy = Math.max(0, r.top - y);
        if (r.right < x - 2 || r.bottom < y - 2) continue;  // only right of or below the point
        const d = Math.hypot(dx, dy);
        if (d < bestD) { best = el; bestD = d; }
      }
      found = best;
    }
    for (const el of document.querySelectorAll('[' + ATTR + ']')) el.removeAttribute(ATTR);
    if (found) found.setAttribute(ATTR, '1');
  }
  if (!found) return null;
  const kind = kindOf(found);
  let options = [];
  if (kind === 'select') {
    options = [...found.options].map((o) => ({label: norm(o.label || o.text), selected: o.selected}));
  } else {
    let box = found;
    if (kind === 'combobox') {
      const id = found.getAttribute('aria-controls') || found.getAttribute('aria-owns');
      box = (id && document.getElementById(id)) || found.querySelector('[role=listbox]') || found;
    }
    options = [...box.querySelectorAll('[role=option]')].map((o) => ({
      label: norm(o.getAttribute('aria-label') || o.innerText),
      selected: o.getAttribute('aria-selected') === 'true' || o.getAttribute('aria-checked') === 'true'}));
  }
  const r = found.getBoundingClientRect();
  const chosen = options.filter((o) => o.selected);
  return {kind, name: nameOf(found), options,
          box: {x: r.left, y: r.top, width: r.width, height: r.height},
          expanded: found.getAttribute('aria-expanded') === 'true',
          selected: chosen.length === 1 ? chosen[0].label : null,
          value: 'value' in found ? String(found.value) : null,
          text: norm(found.innerText || found.textContent).slice(0, 200)};
}"""
