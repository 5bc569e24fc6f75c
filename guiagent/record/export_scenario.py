"""A run exported as a scenario YAML that reproduces it.

- A scenario run exports its own steps as they were written (``into:``, ``near:``, ``role:``,
  ``expect:``, ``wait_for:``, timeouts kept), with its declared variables; a variable's
  recorded value is written back as ``${name}``.
- An agent run exports each executed step by what a person sees: the element's text or
  accessible name (with its role when the text alone is ambiguous) from the recorded
  evidence (else the point), and ``type`` into the field it clicked.
- A secret is never written, nor its redaction mask: a redacted typing becomes
  ``${secret:NAME}`` (GUIAGENT_SECRET_<NAME> or the secrets file supply it at run time), or
  the scenario's own secret variable.
- The target is the page URL (browser), or the command/window (desktop).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from guiagent.core.redact import REDACTED
from guiagent.record.trajectory import Run, StepRecord

SKIPPED = ("invalid", "denied", "dry_run", "error", "failed")
POINT_ROLES = ("button", "link", "checkbox", "radio", "tab", "menuitem", "option", "switch")


class ExportError(Exception):
    """An export cannot be made (no frames, ffmpeg missing or failing, unwritable file)."""


def is_scenario_run(run: Run) -> bool:
    return run.header.settings.get("kind") == "scenario" or any(
        "scenario_step" in (s.model_extra or {}) for s in run.steps
    )


def secret_name(label: str | None, fallback: str) -> str:
    """A secret's name from its field's label: "Password" -> "password"."""
    slug = re.sub(r"[^a-z0-9]+", "_", (label or "").casefold()).strip("_")
    return slug[:40] or fallback


# --- agent runs ------------------------------------------------------------------------


def _dom(step: StepRecord) -> Mapping[str, Any]:
    dom = (step.evidence or {}).get("dom")
    return dom if isinstance(dom, Mapping) else {}


def target_label(step: StepRecord) -> str | None:
    """What a person would call the step's target: its accessible name, text, label, OCR text."""
    dom, evidence = _dom(step), step.evidence or {}
    for value in (
        dom.get("name") if dom.get("tag") not in ("input", "textarea", "select") else None,
        dom.get("text"),
        evidence.get("text"),
        dom.get("label"),
        dom.get("name"),
        dom.get("placeholder"),
    ):
        if isinstance(value, str) and value.strip() and REDACTED not in value and len(value) <= 80:
            return value.strip()
    return None


def is_input(step: StepRecord) -> bool:
    dom = _dom(step)
    return (
        bool(dom.get("editable"))
        or dom.get("tag") in ("input", "textarea")
        or (dom.get("role") in ("textbox", "searchbox", "combobox"))
    )


def _click_target(step: StepRecord) -> Any:
    """The label alone, or with the role when the same text was seen beside the target (a
    heading "Sign in" above a button "Sign in")."""
    label = target_label(step)
    role = _dom(step).get("role")
    seen = [str(n.get("text", "")).casefold() for n in _dom(step).get("neighbours") or []]
    if label and role in POINT_ROLES and label.casefold() in seen:
        return {"text": label, "role": role}
    if label:
        return label
    point = step.screen_point()
    return {"at": [round(point[0], 1), round(point[1], 1)]} if point else None


def _typed_text(step: StepRecord, field: StepRecord | None, secrets: list[str]) -> str:
    text = str((step.screen_action or {}).get("text", ""))
    name = str(step.variables.get("name") or "")
    if name.startswith("secret:"):
        return "${" + name + "}"
    if name and "value_hash" in step.variables:
        return "${" + name + "}"
    if REDACTED in text:
        secret = secret_name(target_label(field) if field else None, f"step{step.index}")
        secrets.append(secret)
        return text.replace(REDACTED, "${secret:" + secret + "}")
    return text.replace("${", "$${")  # typed literally


def _agent_steps(run: Run, secrets: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    previous: StepRecord | None = None
    for step in run.steps:
        action = step.screen_action or {}
        kind = action.get("action")
        if not kind or step.outcome in SKIPPED:
            continue
        if kind in ("finish", "fail"):
            break
        if kind in ("click", "double_click", "right_click"):
            target = _click_target(step)
            held = list(action.get("modifiers") or [])
            if target is not None and held:  # a ctrl-click exports as a ctrl-click
                target = {**(target if isinstance(target, dict) else {"text": target})}
                target["modifiers"] = held
            if target is not None:
                out.append({kind: target})
        elif kind == "type":
            field = previous if previous is not None and is_input(previous) else None
            spec: dict[str, Any] = {"text": _typed_text(step, field, secrets)}
            if field is not None and out and "click" in out[-1] and target_label(field):
                out.pop()  # "type into" clicks the field itself
                spec["into"] = target_label(field)
            out.append({"type": spec})
        elif kind == "key":
            out.append({"press": "+".join(action.get("keys", []))})
        elif kind == "scroll":
            scroll: dict[str, Any] = {
                "direction": action.get("direction", "down"),
                "amount": action.get("amount", 3),
            }
            if action.get("x") is not None:
                scroll["at"] = [round(float(action["x"]), 1), round(float(action["y"]), 1)]
            out.append({"scroll": scroll})
        elif kind == "drag":
            start = {"at": [action["x1"], action["y1"]]}
            out.append({"drag": {"from": start, "to": {"at": [action["x2"], action["y2"]]}}})
        previous = step
    return out


# --- scenario runs -----------------------------------------------------------------------


def _secret_reference(step: StepRecord, into: Any, secret_vars: list[str]) -> str:
    """What a redacted typing of a scenario step becomes: its secret, or the secret variable."""
    names = [str(s.get("variables", {}).get("name", "")) for s in step.sub_steps]
    named = next((n for n in [*names, str(step.variables.get("name", ""))] if n), "")
    if named:
        return "${" + named + "}"
    if len(secret_vars) == 1:
        return "${" + secret_vars[0] + "}"
    label = into if isinstance(into, str) else (into or {}).get("text", "")
    return "${secret:" + secret_name(str(label), f"step{step.index}") + "}"


def _scenario_steps(run: Run, variables: Mapping[str, str]) -> list[dict[str, Any]]:
    secret_vars = [k for k, v in variables.items() if REDACTED in str(v)]
    plain = {k: str(v) for k, v in variables.items() if k not in secret_vars and len(str(v)) >= 3}
    out: list[dict[str, Any]] = []
    for step in run.steps:
        info = (step.model_extra or {}).get("scenario_step")
        if not isinstance(info, Mapping) or not isinstance(info.get("spec"), Mapping):
            continue
        if step.outcome in SKIPPED:
            break  # the run failed here: what followed was never played
        spec = _with_variables(_compact(dict(info["spec"])), plain)
        typed = spec.get("type")
        if isinstance(typed, str):
            typed = {"text": typed}
        if isinstance(typed, dict) and REDACTED in str(typed.get("text", "")):
            value = _secret_reference(step, typed.get("into"), secret_vars)
            spec["type"] = {**typed, "text": str(typed["text"]).replace(REDACTED, value)}
        out.append(spec)
    return out


def _compact(value: Any) -> Any:
    """A recorded step as a person writes it: defaults (False, None) left out, ``{text: X}`` as X."""
    if isinstance(value, Mapping):
        kept = {k: _compact(v) for k, v in value.items() if v is not None and v is not False}
        return kept["text"] if list(kept) == ["text"] and isinstance(kept["text"], str) else kept
    if isinstance(value, list):
        return [_compact(v) for v in value]
    return value


def _with_variables(value: Any, plain: Mapping[str, str]) -> Any:
    """``value`` with each variable's recorded value written back as ``${name}``."""
    if isinstance(value, str):
        value = value.replace("${", "$${")
        for name, recorded in sorted(plain.items(), key=lambda kv: -len(kv[1])):
            value = value.replace(recorded, "${" + name + "}")
        return value
    if isinstance(value, Mapping):
        return {k: _with_variables(v, plain) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_variables(v, plain) for v in value]
    return value


# --- the file ----------------------------------------------------------------------------


def _target(run: Run) -> dict[str, Any]:
    recorded = run.header.settings.get("target")
    if isinstance(recorded, Mapping) and recorded:
        return dict(recorded)
    first = next((s.meta for s in run.steps if s.meta.get("url")), {})
    if first.get("url"):
        return {"url": first["url"]}
    if run.header.settings.get("command"):
        return {"command": run.header.settings["command"]}
    if run.header.settings.get("start_url"):
        return {"url": run.header.settings["start_url"]}
    window = next((s.meta["window_title"] for s in run.steps if s.meta.get("window_title")), None)
    if window:
        return {"window": str(window)}
    raise ExportError(
        f"{run.path}: the run records neither a page URL, a launch command nor a window title,"
        " so the scenario has no target"
    )


def scenario_data(run: Run) -> dict[str, Any]:
    """The scenario (as plain data) that reproduces ``run``."""
    header = run.header
    data: dict[str, Any] = {"name": header.task or header.run_id, "target": _target(run)}
    if header.surface == "desktop" or "command" in data["target"] or "window" in data["target"]:
        data["env"] = "desktop"
    viewport = header.settings.get("viewport")
    first = next((s for s in run.steps if s.meta.get("viewport")), None)
    if viewport or first is not None:
        data["viewport"] = list(viewport or first.meta["viewport"])  # type: ignore[union-attr]
    secrets: list[str] = []
    if is_scenario_run(run):
        declared = header.settings.get("variables") or {}
        variables = {
            k: ("${secret:" + k + "}" if REDACTED in str(v) else v) for k, v in declared.items()
        }
        if variables:
            data["variables"] = variables
        data["steps"] = _scenario_steps(run, declared)
        if data["target"]:
            data["target"] = _with_variables(
                data["target"],
                {
                    k: str(v)
                    for k, v in declared.items()
                    if REDACTED not in str(v) and len(str(v)) >= 3
                },
            )
    else:
        data["steps"] = _agent_steps(run, secrets)
    if secrets:
        env_names = ", ".join(
            "GUIAGENT_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", s).upper() for s in secrets
        )
        data["description"] = f"Exported from run {header.run_id}. Needs the secrets: {env_names}."
    if not data["steps"]:
        raise ExportError(f"{run.path}: the run has no executed step to export")
    return data


def export_scenario(run: Run, out: Path) -> Path:
    data = scenario_data(run)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out
