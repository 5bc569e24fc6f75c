"""A browser run exported as a plain Playwright Python script (sync API), for users of other tools.

Targets are located the way the evidence allows, best first: the accessible role and name
(``page.get_by_role``), the visible text (``page.get_by_text``), else the recorded point
(``page.mouse.click``). Typing goes to the focused field with ``page.keyboard.type``; a
redacted secret is read from ``GUIAGENT_SECRET_<NAME>`` at run time, never written. A
scenario run's ``expect``/``wait_for`` steps become Playwright ``expect`` assertions and
waits; an agent run ends with an ``expect`` of the title it ended on.

The script defines ``run(page)`` (the steps, on a page already at the start URL) and
``main()`` (launches Chromium, opens ``START_URL`` or the recorded URL, calls ``run``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guiagent.core.redact import REDACTED
from guiagent.record.export_scenario import (
    SKIPPED,
    ExportError,
    is_input,
    is_scenario_run,
    secret_name,
    target_label,
)
from guiagent.record.trajectory import Run, StepRecord

ROLES = {
    "button", "link", "checkbox", "radio", "tab", "menuitem", "option", "switch", "textbox",
    "searchbox", "combobox", "listbox", "slider", "heading", "img",
}  # fmt: skip
KEYS = {"enter": "Enter", "tab": "Tab", "escape": "Escape", "esc": "Escape", "backspace": "Backspace",
        "delete": "Delete", "ctrl": "Control", "alt": "Alt", "shift": "Shift", "up": "ArrowUp",
        "down": "ArrowDown", "left": "ArrowLeft", "right": "ArrowRight", "space": "Space",
        "home": "Home", "end": "End", "pageup": "PageUp", "pagedown": "PageDown"}  # fmt: skip


def _locator(step: StepRecord) -> str | None:
    dom = (step.evidence or {}).get("dom")
    dom = dom if isinstance(dom, Mapping) else {}
    role, name = dom.get("role"), dom.get("name")
    if role in ROLES and isinstance(name, str) and name.strip() and REDACTED not in name:
        return f"page.get_by_role({role!r}, name={name.strip()!r}, exact=True)"
    label = target_label(step)
    if label and not is_input(step):
        return f"page.get_by_text({label!r}, exact=True).first"
    return None


# modifier names of guiagent.core.actions.MODIFIERS -> Playwright's
_MODIFIER_KEYS = {"ctrl": "Control", "shift": "Shift", "alt": "Alt", "meta": "Meta"}


def _pointed(step: StepRecord, kind: str) -> list[str]:
    locator = _locator(step)
    held = [
        _MODIFIER_KEYS[m]
        for m in (step.screen_action or {}).get("modifiers") or []
        if m in _MODIFIER_KEYS
    ]
    options = {"click": [], "double_click": [], "right_click": ['button="right"']}[kind]
    if held:
        options.append(f"modifiers={held!r}")
    method = "dblclick" if kind == "double_click" else "click"
    if locator:
        return [f"{locator}.{method}({', '.join(options)})"]
    point = step.screen_point()
    if point is None:
        return []
    x, y = round(point[0], 1), round(point[1], 1)
    button = ', button="right"' if kind == "right_click" else ""
    mouse = f"page.mouse.{method}({x}, {y}{button})  # no role or text was recorded for this target"
    # page.mouse takes no modifiers: the keys are held on the keyboard around it
    return [
        *(f"page.keyboard.down({key!r})" for key in held),
        mouse,
        *(f"page.keyboard.up({key!r})" for key in reversed(held)),
    ]


def _typed(step: StepRecord, field: StepRecord | None, secrets: list[str]) -> str:
    text = str((step.screen_action or {}).get("text", ""))
    name = str(step.variables.get("name") or "")
    if REDACTED in text or "value_hash" in step.variables:
        secret = (
            name.removeprefix("secret:")
            if name
            else secret_name(target_label(field) if field else None, f"step{step.index}")
        )
        env = "GUIAGENT_SECRET_" + "".join(c if c.isalnum() else "_" for c in secret).upper()
        secrets.append(env)
        return f"page.keyboard.type(os.environ[{env!r}])"
    return f"page.keyboard.type({text!r})"


def _key(keys: list[str]) -> str:
    chord = "+".join(KEYS.get(k.lower(), k) for k in keys)
    return f"page.keyboard.press({chord!r})"


def _pattern(glob: str) -> str:
    """A scenario glob (or ``re:`` regex) as a Python pattern Playwright can hand to JavaScript."""
    if glob.startswith("re:"):
        return f"re.compile({glob[3:]!r})"
    parts = []
    for ch in glob:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        elif ch in "\\^$.|+()[]{}/":
            parts.append("\\" + ch)
        else:
            parts.append(ch)
    return f"re.compile({'^' + ''.join(parts) + '$'!r})"


def _check(kind: str, spec: Mapping[str, Any]) -> list[str]:
    negate = bool(spec.get("not") or spec.get("gone"))
    timeout = spec.get("timeout")
    wait = f", timeout={float(timeout) * 1000:.0f}" if timeout else ""
    out = []
    if spec.get("text") is not None:
        text = str(spec["text"])
        locator = f"page.get_by_text({text!r}{', exact=True' if spec.get('exact') else ''}).first"
        if kind == "wait_for":
            out.append(f"{locator}.wait_for(state={'hidden' if negate else 'visible'!r}{wait})")
        else:
            out.append(
                f"expect({locator}).{'not_to_be_visible' if negate else 'to_be_visible'}({wait.lstrip(', ')})"
            )
    for key, method in (("title", "to_have_title"), ("url", "to_have_url")):
        if spec.get(key) is not None:
            check = "not_" + method if negate else method
            out.append(f"expect(page).{check}({_pattern(str(spec[key]))})")
    if spec.get("image") is not None:
        out.append(f"# expect image {spec['image']}: not expressible as a Playwright locator")
    return out


def script_lines(run: Run, secrets: list[str]) -> list[str]:
    """The body of ``run(page)``."""
    lines: list[str] = []
    previous: StepRecord | None = None
    scenario = is_scenario_run(run)
    for top in run.steps:
        info = (top.model_extra or {}).get("scenario_step") or {}
        if top.outcome in SKIPPED:
            if scenario:
                break
            continue
        if info.get("kind") in ("expect", "wait_for"):
            lines.extend(_check(info["kind"], (info.get("spec") or {}).get(info["kind"]) or {}))
            continue
        subs = [StepRecord.model_validate(s) for s in top.sub_steps] or [top]
        for step in subs:
            action = step.screen_action or {}
            kind = action.get("action")
            if not kind or step.outcome in SKIPPED:
                continue
            if kind in ("finish", "fail"):
                break
            if kind in ("click", "double_click", "right_click"):
                lines.extend(_pointed(step, kind))
            elif kind == "type":
                field = previous if previous is not None and is_input(previous) else None
                lines.append(_typed(step, field, secrets))
            elif kind == "key":
                lines.append(_key(list(action.get("keys", []))))
            elif kind == "scroll":
                dy = (
                    {"up": -1, "down": 1}.get(str(action.get("direction")), 0)
                    * 100
                    * int(action.get("amount", 3))
                )
                dx = (
                    {"left": -1, "right": 1}.get(str(action.get("direction")), 0)
                    * 100
                    * int(action.get("amount", 3))
                )
                if action.get("x") is not None:
                    lines.append(f"page.mouse.move({action['x']}, {action['y']})")
                lines.append(f"page.mouse.wheel({dx}, {dy})")
            elif kind == "wait":
                lines.append(f"page.wait_for_timeout({float(action.get('seconds', 1)) * 1000:.0f})")
            elif kind == "drag":
                lines.append(f"page.mouse.move({action['x1']}, {action['y1']})")
                lines += [
                    "page.mouse.down()",
                    f"page.mouse.move({action['x2']}, {action['y2']}, steps=8)",
                    "page.mouse.up()",
                ]
            previous = step
    if not scenario:
        last = next((s for s in reversed(run.steps) if s.meta.get("title")), None)
        if last is not None:
            lines.append(f"expect(page).to_have_title({str(last.meta['title'])!r})")
    return lines


def export_playwright(run: Run, out: Path) -> Path:
    if run.header.surface not in ("browser", ""):
        raise ExportError(
            f"{run.path}: a Playwright script needs a browser run (this one is {run.header.surface})"
        )
    url = next((str(s.meta["url"]) for s in run.steps if s.meta.get("url")), None)
    if url is None:
        raise ExportError(f"{run.path}: the run records no page URL to start from")
    viewport = next((s.meta["viewport"] for s in run.steps if s.meta.get("viewport")), [1280, 800])
    secrets: list[str] = []
    body = script_lines(run, secrets) or ["pass"]
    needs = f" Needs {', '.join(sorted(set(secrets)))} in the environment." if secrets else ""
    text = f'''"""Exported by guiagent from run {run.header.run_id}: {run.header.task!r}.{needs}

python {Path(out).name}   (START_URL=... to open another server; CHROMIUM=... a browser binary)
"""

import os
import re

from playwright.sync_api import Page, expect, sync_playwright

START_URL = os.environ.get("START_URL", {url!r})
VIEWPORT = {{"width": {int(viewport[0])}, "height": {int(viewport[1])}}}


def run(page: Page) -> None:
{chr(10).join("    " + line for line in body)}


def main() -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=os.environ.get("CHROMIUM") or None)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(START_URL)
        run(page)
        browser.close()


if __name__ == "__main__":
    main()
'''
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
