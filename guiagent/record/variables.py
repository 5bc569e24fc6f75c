"""Values a replay types: ``--var NAME=VALUE`` for typed variables, a scenario's declared
variables, secrets and texts the recorder redacted; an unknown name is an error."""

from __future__ import annotations

from collections.abc import Mapping

from guiagent.core.actions import BaseAction, Type, action_from_dict
from guiagent.core.redact import REDACTED
from guiagent.record.trajectory import Run, StepRecord


class ReplayError(Exception):
    """A replay cannot start as asked (unknown mode, unknown or missing variable, bad step)."""


class RedactedTextError(ReplayError):
    """A typed text was redacted by the recorder and no value was given for it."""


def declared_variables(run: Run) -> dict[str, str]:
    """The variables a scenario recording declared, with their recorded values ([REDACTED]
    for a secret one)."""
    raw = run.header.settings.get("variables") or {}
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items()}


def substitute_declared(
    text: str, variables: Mapping[str, str], declared: Mapping[str, str]
) -> str:
    """``text`` with the recorded value of each given scenario variable replaced by the new one."""
    for key, recorded in declared.items():
        if key in variables and recorded and REDACTED not in recorded and recorded in text:
            text = text.replace(recorded, variables[key])
    return text


def variable_names(run: Run, steps: list[StepRecord]) -> set[str]:
    """Every name ``--var`` may give for this recording."""
    names = set(
        (run.header.settings.get("variables") or {})
        if isinstance(run.header.settings.get("variables"), Mapping)
        else ()
    )
    for step in steps:
        name = step.variables.get("name")
        if name:
            names.add(str(name))
            if str(name).startswith("secret:"):
                names.add(str(name).removeprefix("secret:"))
        action = step.screen_action or {}
        if action.get("action") == "type" and REDACTED in str(action.get("text", "")):
            names.add(f"step{step.index}")
    return names


def resolve_typed(
    step: StepRecord, action: BaseAction, variables: Mapping[str, str], declared: Mapping[str, str]
) -> BaseAction:
    """The text a type step types in this replay: a given variable, else the recorded text."""
    if not isinstance(action, Type):
        return action
    name = str(step.variables.get("name") or "")
    for key in (name, name.removeprefix("secret:")) if name else ():
        if key in variables:
            return action.model_copy(update={"text": variables[key]})
    if name and "value" in step.variables:
        return action.model_copy(update={"text": str(step.variables["value"])})
    if name and "value_hash" in step.variables:
        # only a hash (or nothing) was kept: the recorded text is not the value
        given = ", ".join(sorted(variables)) or "none"
        raise ReplayError(
            f"step {step.index} types the variable {name!r}: give its value with --var"
            f" {name.removeprefix('secret:')}=VALUE (variables given: {given})"
            if name.startswith("secret:")
            else f"step {step.index} types the variable {name!r}: give its value with --var {name}=VALUE"
            f" (variables given: {given})"
        )
    text = action.text
    if REDACTED in text:
        # the recorder replaced a secret in the typed text: the value must come from the user
        key = f"step{step.index}"
        if key in variables:
            return action.model_copy(update={"text": variables[key]})
        secret = [k for k, v in declared.items() if REDACTED in v]
        if text == REDACTED and len(secret) == 1 and secret[0] in variables:
            # the scenario declared one secret variable: this is its value
            return action.model_copy(update={"text": variables[secret[0]]})
        raise RedactedTextError(
            f"step {step.index} types text that was redacted when it was recorded ({text!r}):"
            f" give the value with --var {key}=VALUE"
        )
    text = substitute_declared(text, variables, declared)  # a scenario variable, replaced
    return action if text == action.text else action.model_copy(update={"text": text})


def check_variables(
    run: Run, steps: list[StepRecord], variables: Mapping[str, str], declared: Mapping[str, str]
) -> None:
    known = variable_names(run, steps)
    unknown = sorted(set(variables) - known)
    if unknown:
        raise ReplayError(
            f"unknown variable {', '.join(unknown)}: this recording takes"
            f" {', '.join(sorted(known)) or 'no variables'}"
        )
    for step in steps:
        if step.screen_action and step.screen_action.get("action") == "type":
            try:
                resolve_typed(step, action_from_dict(step.screen_action), variables, declared)
            except RedactedTextError:
                continue  # reported when the replay reaches it: the steps before still run
