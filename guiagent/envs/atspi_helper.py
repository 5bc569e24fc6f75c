"""AT-SPI reader run on Debian's own Python 3 (``/usr/bin/python3`` with ``python3-gi``).

The project's Python (often a pyenv build) cannot import Debian's PyGObject, so
:mod:`guiagent.envs.atspi` starts this file as a helper process and talks to it in JSON
lines over a pipe. It imports nothing of guiagent and only the standard library besides
``gi``. Requests: ``{"cmd": "tree", "max_nodes": N}`` answers the showing applications
with their windows' trees; ``{"cmd": "focus", "pid": P, "x": X, "y": Y}`` answers, for the application of process P,
its focused object and the text field at screen point (X, Y) (``{"app": null}`` when P is
not on the bus); ``{"cmd": "ping"}`` answers ``{"ok": true}``. A password text's content is
never sent: only whether it is filled, or how many characters it holds.
"""

import json
import sys

import gi  # type: ignore[import-not-found]

gi.require_version("Atspi", "2.0")
from gi.repository import Atspi  # type: ignore[import-not-found]  # noqa: E402

STATES = (
    ("focused", Atspi.StateType.FOCUSED),
    ("checked", Atspi.StateType.CHECKED),
    ("pressed", Atspi.StateType.PRESSED),
    ("selected", Atspi.StateType.SELECTED),
    ("expanded", Atspi.StateType.EXPANDED),
    ("editable", Atspi.StateType.EDITABLE),
    ("checkable", Atspi.StateType.CHECKABLE),
    ("expandable", Atspi.StateType.EXPANDABLE),
    ("enabled", Atspi.StateType.ENABLED),
    ("showing", Atspi.StateType.SHOWING),
    ("visible", Atspi.StateType.VISIBLE),
    ("active", Atspi.StateType.ACTIVE),
)
TEXT_ROLES = {"text", "entry", "password text", "spin button", "editbar", "paragraph"}


def _text(acc, role):
    try:
        text = acc.get_text_iface()
        if text is None:
            return None
        count = text.get_character_count()
        if role == "password text":
            return count  # only how many: never the characters
        return text.get_text(0, count) if count else ""
    except Exception:  # a widget that went away
        return None


def _labelled_by(acc):
    """The name of the label a nameless widget is labelled by (GTK's mnemonic labels)."""
    try:
        for relation in acc.get_relation_set() or []:
            if relation.get_relation_type() == Atspi.RelationType.LABELLED_BY:
                for i in range(relation.get_n_targets()):
                    target = relation.get_target(i)
                    if target is not None and target.get_name():
                        return target.get_name()
    except Exception:  # a widget that went away
        pass
    return ""


def node(acc, budget, depth=0):
    """One accessible and its showing children, depth first, in the tree's order."""
    if acc is None or budget[0] <= 0 or depth > 60:
        return None
    budget[0] -= 1
    try:
        state_set = acc.get_state_set()
        states = [name for name, st in STATES if state_set.contains(st)]
        if "showing" not in states and depth > 1:
            return None
        role = acc.get_role_name() or "unknown"
        name = acc.get_name() or _labelled_by(acc)
        ext = acc.get_extents(Atspi.CoordType.SCREEN)
        out = {
            "role": role,
            "name": name,
            "description": acc.get_description() or "",
            "states": states,
            "box": [ext.x, ext.y, ext.width, ext.height],
            "children": [],
        }
        if role in TEXT_ROLES:
            text = _text(acc, role)
            if role == "password text":
                out["filled"] = bool(text)
            elif text is not None:
                out["text"] = text
        value = acc.get_value_iface()
        if value is not None and role not in TEXT_ROLES:
            out["value"] = value.get_current_value()
        if role in ("table", "tree table"):
            table = acc.get_table_iface()
            if table is not None:
                out["rows"], out["columns"] = table.get_n_rows(), table.get_n_columns()
        for i in range(acc.get_child_count()):
            child = node(acc.get_child_at_index(i), budget, depth + 1)
            if child is not None:
                out["children"].append(child)
        return out
    except Exception as exc:  # the application went away or hung
        return {
            "role": "error",
            "name": str(exc),
            "states": [],
            "box": [0, 0, 0, 0],
            "children": [],
        }


def tree(max_nodes):
    budget = [max_nodes]
    desktop = Atspi.get_desktop(0)
    apps = []
    for i in range(desktop.get_child_count()):
        app = desktop.get_child_at_index(i)
        if app is None:
            continue
        windows = []
        for k in range(app.get_child_count()):
            window = node(app.get_child_at_index(k), budget, 1)
            if window is not None:
                windows.append(window)
        apps.append({"name": app.get_name() or "", "pid": app.get_process_id(), "windows": windows})
    return {"apps": apps}


def _field(acc):
    """What a check of typed text needs of one accessible: role, name, states, box, and its
    text (a password text: only its length)."""
    role = acc.get_role_name() or "unknown"
    state_set = acc.get_state_set()
    ext = acc.get_extents(Atspi.CoordType.SCREEN)
    out = {
        "role": role,
        "name": acc.get_name() or _labelled_by(acc),
        "states": [name for name, st in STATES if state_set.contains(st)],
        "box": [ext.x, ext.y, ext.width, ext.height],
    }
    if role in TEXT_ROLES or acc.get_text_iface() is not None:
        text = _text(acc, "password text")  # the length only, whatever the role
        out["count"] = text if isinstance(text, int) else None
        if role != "password text":
            out["text"] = _text(acc, role)
    return out


def _inside(acc, x, y):
    ext = acc.get_extents(Atspi.CoordType.SCREEN)
    return ext.x <= x < ext.x + ext.width and ext.y <= y < ext.y + ext.height


def focus(pid, x, y, max_nodes):
    """The focused object of the application of process ``pid`` and the deepest text
    field at (x, y), walking its showing windows depth first within ``max_nodes``."""
    desktop = Atspi.get_desktop(0)
    apps = [
        app
        for app in (desktop.get_child_at_index(i) for i in range(desktop.get_child_count()))
        if app is not None and app.get_process_id() == pid
    ]
    if not apps:
        return {"app": None}
    budget = [max_nodes]
    found = {"focused": None, "at_point": None}

    def walk(acc, depth):
        if acc is None or budget[0] <= 0 or depth > 60:
            return
        budget[0] -= 1
        state_set = acc.get_state_set()
        if depth > 1 and not state_set.contains(Atspi.StateType.SHOWING):
            return
        if state_set.contains(Atspi.StateType.FOCUSED):
            found["focused"] = acc
        if (acc.get_role_name() or "") in TEXT_ROLES and _inside(acc, x, y):
            found["at_point"] = acc  # deeper ones come later and win
        for i in range(acc.get_child_count()):
            walk(acc.get_child_at_index(i), depth + 1)

    chain = []
    for app in apps:
        for k in range(app.get_child_count()):
            window = app.get_child_at_index(k)
            if window is not None and _inside(window, x, y):
                walk(window, 1)
                chain = chain or _chain_at(window, x, y)
    return {
        "app": apps[0].get_name() or "",
        "focused": _field(found["focused"]) if found["focused"] is not None else None,
        "at_point": _field(found["at_point"]) if found["at_point"] is not None else None,
        "chain": chain,
    }


def _chain_at(window, x, y, depth=6):
    """The objects at (x, y) under ``window``, deepest first, up to ``depth`` of them:
    role, name and states (what a click there lands on, and what holds it)."""
    path = []
    acc = window
    for _ in range(40):
        try:
            child = Atspi.Component.get_accessible_at_point(
                acc, int(x), int(y), Atspi.CoordType.SCREEN
            )
        except Exception:  # no component interface
            break
        if child is None or child == acc:
            break
        path.append(child)
        acc = child
    out = []
    for acc in reversed(path[-depth:]):
        state_set = acc.get_state_set()
        out.append(
            {
                "role": acc.get_role_name() or "unknown",
                "name": acc.get_name() or "",
                "states": [name for name, st in STATES if state_set.contains(st)],
            }
        )
    return out


def main():
    for line in sys.stdin:
        try:
            request = json.loads(line)
            if request.get("cmd") == "ping":
                answer = {"ok": True}
            elif request.get("cmd") == "focus":
                answer = focus(
                    int(request["pid"]),
                    float(request["x"]),
                    float(request["y"]),
                    int(request.get("max_nodes", 2000)),
                )
            elif request.get("cmd") == "tree":
                answer = tree(int(request.get("max_nodes", 4000)))
            else:
                answer = {"error": f"unknown command {request.get('cmd')!r}"}
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
