"""Generated pages for the heal benchmark: three pages (a sign-up form, a toolbar, a settings
panel), each in an original layout and in layout changes made of moves, restyles, renames
(labels, ids and field names) and reorders of the DOM.

Every control carries a ``data-key`` that no replay evidence reads: the page logs the key of
each control clicked and reports each field's value by key, so a benchmark can tell a right
action from a wrong-element one by the page's own state.
"""

from __future__ import annotations

import html
import itertools
import random
from dataclasses import dataclass

CHANGES = ("move", "restyle", "rename", "reorder")
# ten combinations per page, every kind of change alone and mixed
VARIANTS: tuple[tuple[str, ...], ...] = (
    ("move",),
    ("restyle",),
    ("rename",),
    ("reorder",),
    ("move", "rename"),
    ("restyle", "reorder"),
    ("move", "restyle"),
    ("rename", "reorder"),
    ("move", "rename", "reorder"),
    ("move", "restyle", "rename", "reorder"),
)


@dataclass(frozen=True)
class Control:
    key: str
    kind: str  # input type (text, email, tel, password, number, search, checkbox), button, link
    label: str
    renamed: str


@dataclass(frozen=True)
class PageSpec:
    name: str
    title: str
    controls: tuple[Control, ...]
    steps: tuple[tuple[str, str, str], ...]  # (click|type, key, text)


PAGES = (
    PageSpec(
        "signup",
        "Sign up",
        (
            Control("fullname", "text", "Full name", "Your full name"),
            Control("email", "email", "Email", "Email address"),
            Control("phone", "tel", "Phone", "Phone number"),
            Control("password", "password", "Password", "Choose a password"),
            Control("create", "button", "Create account", "Create my account"),
        ),
        (
            ("click", "fullname", ""),
            ("type", "fullname", "Ada Lovelace"),
            ("click", "email", ""),
            ("type", "email", "ada@example.org"),
            ("click", "phone", ""),
            ("type", "phone", "5550100"),
            ("click", "password", ""),
            ("type", "password", "s3cret-pw"),
            ("click", "create", ""),
        ),
    ),
    PageSpec(
        "toolbar",
        "Files",
        (
            Control("new", "button", "New", "New file"),
            Control("open", "button", "Open", "Open file"),
            Control("save", "button", "Save", "Save now"),
            Control("share", "button", "Share", "Share link"),
            Control("delete", "button", "Delete", "Delete item"),
            Control("search", "search", "Search", "Search files"),
        ),
        (
            ("click", "open", ""),
            ("click", "save", ""),
            ("click", "search", ""),
            ("type", "search", "report"),
            ("click", "share", ""),
            ("click", "delete", ""),
        ),
    ),
    PageSpec(
        "settings",
        "Settings",
        (
            Control("notify", "checkbox", "Email notifications", "Notifications by email"),
            Control("dark", "checkbox", "Dark mode", "Dark theme"),
            Control("autosave", "checkbox", "Auto-save", "Save automatically"),
            Control("fontsize", "number", "Font size", "Text size"),
            Control("privacy", "link", "Privacy policy", "Privacy"),
            Control("help", "link", "Help", "Help center"),
        ),
        (
            ("click", "dark", ""),
            ("click", "autosave", ""),
            ("click", "fontsize", ""),
            ("type", "fontsize", "14"),
            ("click", "privacy", ""),
            ("click", "help", ""),
        ),
    ),
)

_SCRIPT = """<script>
window.benchLog = [];
document.querySelectorAll('[data-key]').forEach(el => el.addEventListener('click', (e) => {
  if (e.isTrusted || el.type === 'checkbox') window.benchLog.push(el.dataset.key);
}));
document.querySelectorAll('a[data-key]').forEach(a => a.addEventListener('click', e => e.preventDefault()));
window.benchState = () => {
  const values = {}, checked = {};
  document.querySelectorAll('input[data-key]').forEach(el => {
    if (el.type === 'checkbox') checked[el.dataset.key] = el.checked; else values[el.dataset.key] = el.value;
  });
  return {log: window.benchLog, values, checked};
};
</script>"""


def _control(c: Control, renamed: bool, uid: str) -> str:
    label = html.escape(c.renamed if renamed else c.label)
    ident = f"{c.key}-{uid}" if renamed else c.key
    name = f"f-{uid}-{c.key[:2]}" if renamed else c.key
    if c.kind == "button":
        return f'<button id="{ident}" data-key="{c.key}">{label}</button>'
    if c.kind == "link":
        return f'<a href="#{ident}" id="{ident}" data-key="{c.key}">{label}</a>'
    if c.kind == "checkbox":
        return (
            f'<input type="checkbox" id="{ident}" name="{name}" data-key="{c.key}">'
            f' <label for="{ident}">{label}</label>'
        )
    return (
        f'<label for="{ident}">{label}</label><br>'
        f'<input type="{c.kind}" id="{ident}" name="{name}" data-key="{c.key}">'
    )


def page_html(spec: PageSpec, changes: tuple[str, ...] = (), seed: int = 0) -> str:
    """The page in its original layout (no changes) or with the given layout changes."""
    rng = random.Random(f"{spec.name}-{'-'.join(changes)}-{seed}")
    order = list(spec.controls)
    if "reorder" in changes:
        while order == list(spec.controls):
            rng.shuffle(order)
    slots = [(40 + 380 * (i // 6), 70 + 70 * (i % 6)) for i in range(12)]
    if "move" in changes:
        chosen = rng.sample(slots[len(spec.controls) :] + slots[: len(spec.controls)], len(order))
        place = {c.key: chosen[i] for i, c in enumerate(spec.controls)}
    else:
        place = {c.key: slots[i] for i, c in enumerate(spec.controls)}
    style = (
        "body{margin:0;font:16px 'DejaVu Sans',sans-serif} .c{position:absolute;width:340px}"
        " input[type=text],input[type=email],input[type=tel],input[type=password],"
        "input[type=number],input[type=search]{width:280px;height:26px;font:inherit}"
        " button{font:inherit;padding:6px 14px}"
    )
    if "restyle" in changes:
        size = rng.choice((13, 18, 20))
        style += (
            f" body{{font-size:{size}px;background:#f4f1ea}} button{{background:#234;color:#fff;"
            f"border:0;border-radius:8px;padding:10px 22px}} input{{border:2px solid #567}}"
            f" a{{color:#a30;font-weight:bold}} .c{{width:360px}}"
        )
    uid = f"{rng.randrange(10**6):06d}"
    rows = []
    for c in order:
        x, y = place[c.key]
        rows.append(
            f'<div class="c" style="left:{x}px;top:{y}px">{_control(c, "rename" in changes, uid)}</div>'
        )
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{spec.title}</title>'
        f"<style>{style}</style></head><body><h1 style='margin:16px 40px;font-size:22px'>"
        f"{spec.title}</h1>{''.join(rows)}{_SCRIPT}</body></html>"
    )


def expected_state(spec: PageSpec) -> dict[str, object]:
    """What the page reports after the steps ran right."""
    clicks = [key for kind, key, _ in spec.steps if kind == "click"]
    kinds = {c.key: c.kind for c in spec.controls}
    values = {
        c.key: "" for c in spec.controls if kinds[c.key] not in ("button", "link", "checkbox")
    }
    values.update({key: text for kind, key, text in spec.steps if kind == "type"})
    checked = {c.key: False for c in spec.controls if c.kind == "checkbox"}
    for key in clicks:
        if key in checked:
            checked[key] = not checked[key]
    return {"log": clicks, "values": values, "checked": checked}


def wrong_actions(spec: PageSpec, state: dict[str, object]) -> list[str]:
    """Actions that hit another control than the recorded one (by the page's own state)."""
    want = expected_state(spec)
    wrong = [
        f"click {i + 1} hit {got!r} instead of {exp!r}"
        for i, (got, exp) in enumerate(itertools.zip_longest(state["log"], want["log"]))  # type: ignore[arg-type]
        if got is not None and got != exp
    ]
    for key, value in state["values"].items():  # type: ignore[attr-defined]
        if value not in ("", want["values"][key]):  # type: ignore[index]
            wrong.append(f"{key} holds {value!r}")
    return wrong
