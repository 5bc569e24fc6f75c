"""The page-side rule for typed text, one script for the scenario's field check
(``envs/page_scripts``) and the replay's DOM probe (``record/dom_probe``).

A field's value is read before typing, with its caret; afterwards the text counts as typed
there only when it is new: the old value with the text put at the caret, or the text held
more often than before. Merely being part of what the field held already does not count (a
field that held the text and ate the keys).
"""

# JavaScript declarations, spliced into a function body: ``typedBefore(el, value)`` ->
# ``{value, start, end}``; ``typedIsNew(value, typed, old, norm)`` (``old`` that record or
# undefined: no reading before, the text need only be there; ``norm`` a text normaliser)
TYPED_RULE_JS = r"""
  const typedBefore = (el, value) => {
    let start = null, end = null;
    try { start = el.selectionStart; end = el.selectionEnd; } catch (e) { start = end = null; }
    return {value, start, end};
  };
  const typedIsNew = (value, typed, old, norm) => {
    const v = norm(value), t = norm(typed);
    if (!v.includes(t)) return false;
    if (!old) return true;
    if (typeof old.start === 'number' && v === norm(old.value.slice(0, old.start) + typed + old.value.slice(old.end))) return true;
    const count = (s) => { let n = 0; for (let i = s.indexOf(t); i >= 0 && t; i = s.indexOf(t, i + 1)) n++; return n; };
    return count(v) > count(norm(old.value));
  };
"""
