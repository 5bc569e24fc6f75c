"""Variables in scenario files: ``${name}``, ``${env:NAME}``, ``${secret:NAME}`` and ``$${``.

Substitution walks the parsed YAML before validation and reports each unknown name with
its data path (the loader turns paths into line numbers).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from guiagent.core.yamlio import PathKey

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)\}")


class SecretLookup:
    """Resolves ``${secret:NAME}`` through a skills :class:`SecretStore` and keeps what it found.

    ``values`` are given secrets (name -> value) tried first; then ``GUIAGENT_SECRET_<NAME>``
    in ``environ`` and the YAML file named by ``GUIAGENT_SECRETS_FILE``.
    """

    def __init__(
        self, values: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self._values = dict(values or {})
        self._environ = os.environ if environ is None else environ
        self._store: Any = None
        self.found: dict[str, str] = {}

    def get(self, name: str) -> str:
        from guiagent.skills.model import SecretStore, SkillError

        try:
            if self._store is None:  # built on first use: it may read a secrets file
                self._store = SecretStore(self._values, environ=self._environ)
            value = str(self._store.get(name))
        except SkillError as exc:
            raise KeyError(str(exc)) from None
        self.found[name] = value
        return value


def _substitute(
    text: str,
    variables: Mapping[str, Any],
    environ: Mapping[str, str],
    secrets: SecretLookup | None = None,
) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1).strip()
        if name.startswith("secret:"):
            key = name[7:].strip()
            if not key:
                raise KeyError("${secret:} needs a name: ${secret:NAME}")
            return (secrets or SecretLookup(environ=environ)).get(key)
        if name.startswith("env:"):
            key, _, default = name[4:].partition(":-")
            if key in environ:
                return environ[key]
            if ":-" in name:
                return default
            raise KeyError(
                f"environment variable {key!r} is not set (use ${{env:{key}:-default}} for a default)"
            )
        if name in variables:
            value = variables[name]
            return str(value).lower() if isinstance(value, bool) else str(value)
        known = ", ".join(sorted(variables)) or "none defined"
        raise KeyError(f"unknown variable ${{{name}}} (variables: {known})")

    return _VAR.sub(repl, text)


def _walk_substitute(
    data: Any,
    path: PathKey,
    variables: Mapping[str, Any],
    environ: Mapping[str, str],
    errors: list[tuple[PathKey, str]],
    secrets: SecretLookup | None = None,
) -> Any:
    if isinstance(data, str):
        try:
            return _substitute(data, variables, environ, secrets)
        except KeyError as exc:
            errors.append((path, str(exc.args[0])))
            return data
    if isinstance(data, dict):
        return {
            k: _walk_substitute(v, (*path, k), variables, environ, errors, secrets)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            _walk_substitute(v, (*path, i), variables, environ, errors, secrets)
            for i, v in enumerate(data)
        ]
    return data


def resolve_variables(
    data: dict[str, Any],
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    secrets: SecretLookup | None = None,
) -> tuple[dict[str, Any], list[tuple[PathKey, str]]]:
    """Substitute ``${name}``, ``${env:NAME}`` and ``${secret:NAME}`` in every string;
    ``$${`` is a literal ``${``.

    Variables may refer to the environment, to secrets and to variables defined before
    them; ``overrides`` (``--var NAME=VALUE``) replace the file's values. Secrets resolved
    are kept in ``secrets.found``.
    """
    environ = os.environ if environ is None else environ
    errors: list[tuple[PathKey, str]] = []
    raw_vars = data.get("variables") or {}
    if not isinstance(raw_vars, dict):
        return data, errors  # pydantic reports the wrong shape
    merged: dict[str, Any] = {}
    for key, value in {**raw_vars, **(overrides or {})}.items():
        path: PathKey = ("variables", key)
        merged[key] = (
            _walk_substitute(value, path, merged, environ, errors, secrets)
            if key not in (overrides or {})
            else value
        )
    out = {k: v for k, v in data.items()}
    out["variables"] = merged
    for key, value in data.items():
        if key != "variables":
            out[key] = _walk_substitute(value, (key,), merged, environ, errors, secrets)
    return out, errors
