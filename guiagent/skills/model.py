"""Skills: reusable procedures, as YAML steps (the scenario language) or decorated Python functions.

A skill is both a hermes tool for the model (name, description, JSON-schema parameters made
from its declaration) and a ``use:`` step for scenarios. Parameters of type ``secret`` take the
*name* of a secret in the :class:`SecretStore`; the value is looked up only when the skill runs,
so it never appears in a prompt, a tool call or a recording.
"""

from __future__ import annotations

import fnmatch
import inspect
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, field_validator

from guiagent.core import yamlio
from guiagent.core.actions import ACTIONS_BY_NAME

ParamType = Literal["string", "number", "integer", "boolean", "secret", "object"]
_JSON_TYPES = {
    "string": "string",
    "number": "number",
    "integer": "integer",
    "boolean": "boolean",
    "secret": "string",
    "object": "object",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class SkillError(ValueError):
    """A skill that cannot be loaded, called with bad parameters, or that failed while running."""


class Secret(str):
    """Annotation marker for a Python skill parameter that names a secret."""


class SkillParam(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    type: ParamType = "string"
    description: str = ""
    required: bool = True
    default: Any = None
    enum: list[Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": _JSON_TYPES[self.type]}
        description = self.description
        if self.type == "secret":
            description = (
                description + " " if description else ""
            ) + "(the NAME of a stored secret, never its value)"
        if description:
            schema["description"] = description
        if self.enum:
            schema["enum"] = self.enum
        if self.type == "object":
            schema["additionalProperties"] = {"type": "string"}
        return schema

    def check(self, value: Any) -> Any:
        expected = {
            "string": (str,),
            "secret": (str,),
            "number": (int, float),
            "integer": (int,),
            "boolean": (bool,),
            "object": (dict,),
        }[self.type]
        if isinstance(value, bool) and self.type in ("number", "integer"):
            raise SkillError(f"parameter {self.name!r} must be a {self.type}, got a boolean")
        if self.type == "number" and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if (
            self.type == "integer"
            and isinstance(value, str)
            and value.strip().lstrip("-").isdigit()
        ):
            return int(value)
        if not isinstance(value, expected):
            raise SkillError(
                f"parameter {self.name!r} must be a {self.type}, got {type(value).__name__} {value!r}"
            )
        if self.enum and value not in self.enum:
            raise SkillError(f"parameter {self.name!r} must be one of {self.enum}, got {value!r}")
        return value


class AppliesTo(BaseModel):
    """Where a skill makes sense; the model only sees the skills that apply to its screen."""

    model_config = ConfigDict(extra="forbid")
    surface: Literal["browser", "desktop"] | None = None
    url: list[str] = Field(default_factory=list)  # glob patterns
    window_title: list[str] = Field(default_factory=list)  # glob patterns

    @field_validator("url", "window_title", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    def matches(self, surface: str | None, url: str | None, title: str | None) -> bool:
        if self.surface and surface and self.surface != surface:
            return False
        if self.url and not any(fnmatch.fnmatch(url or "", p) for p in self.url):
            return False
        return not (
            self.window_title
            and not any(fnmatch.fnmatch(title or "", p) for p in self.window_title)
        )


SkillFunction = Callable[..., Awaitable[Any]]


class Skill(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    name: str
    description: str
    params: list[SkillParam] = Field(default_factory=list)
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    steps: list[Any] | None = None  # scenario-language steps (YAML skills)
    function: SkillFunction | None = None  # async (ctx, **params) (Python skills)
    source: str = "<api>"

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"skill names are lower_snake_case identifiers, got {value!r}")
        if value in ACTIONS_BY_NAME or value == "skill":
            raise ValueError(f"{value!r} is a built-in action name; choose another skill name")
        return value

    def parameters_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {p.name: p.json_schema() for p in self.params},
            "required": [p.name for p in self.params if p.required],
        }

    def validate_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Check names, types and presence; fill defaults. Raises SkillError naming the problem."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise SkillError(
                f"skill {self.name!r}: unknown parameter(s) {', '.join(unknown)}; it takes: {', '.join(known) or 'none'}"
            )
        out: dict[str, Any] = {}
        for param in self.params:
            if param.name in given and given[param.name] is not None:
                try:
                    out[param.name] = param.check(given[param.name])
                except SkillError as exc:
                    raise SkillError(f"skill {self.name!r}: {exc}") from None
            elif param.required:
                raise SkillError(
                    f"skill {self.name!r}: missing required parameter {param.name!r} ({param.type})"
                )
            else:
                out[param.name] = param.default
        return out

    @property
    def secret_params(self) -> list[str]:
        return [p.name for p in self.params if p.type == "secret"]


# --- declaration: YAML files and the decorator -----------------------------------------


def skill_from_yaml(path: Path) -> Skill:
    try:
        data = yamlio.load_yaml(path)
    except yamlio.YamlError as exc:
        raise SkillError(str(exc)) from exc
    if not isinstance(data, dict):
        raise SkillError(
            f"{path}: a skill file is a mapping with name, description, params and steps"
        )
    params = data.pop("params", {}) or {}
    if isinstance(params, dict):
        params = [
            {"name": name, **(spec if isinstance(spec, dict) else {"type": spec})}
            for name, spec in params.items()
        ]
    try:
        skill = Skill(params=params, source=str(path), **data)
    except (ValueError, TypeError) as exc:
        raise SkillError(f"{path}: {exc}") from exc
    if not skill.steps:
        raise SkillError(f"{path}: a YAML skill needs a non-empty steps list")
    return skill


_PY_TYPES: dict[Any, ParamType] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    Secret: "secret",
}


def skill(
    name: str | None = None,
    description: str | None = None,
    applies_to: AppliesTo | dict[str, Any] | None = None,
    params: Mapping[str, str] | None = None,
) -> Callable[[SkillFunction], SkillFunction]:
    """Declare an async function ``f(ctx, **params)`` as a skill; parameters come from its signature.

    ``params`` adds descriptions by parameter name; annotate a parameter with :class:`Secret` to
    take a secret's name.
    """

    def wrap(function: SkillFunction) -> SkillFunction:
        if not inspect.iscoroutinefunction(function):
            raise SkillError(
                f"skill {function.__name__}: must be an async function (ctx, **params)"
            )
        hints = get_type_hints(function)
        declared = []
        for index, (pname, parameter) in enumerate(inspect.signature(function).parameters.items()):
            if index == 0:
                continue  # the SkillContext
            kind = _PY_TYPES.get(hints.get(pname, str))
            if kind is None:
                raise SkillError(
                    f"skill {function.__name__}: parameter {pname} has an unsupported type {hints.get(pname)}"
                )
            has_default = parameter.default is not inspect.Parameter.empty
            declared.append(
                SkillParam(
                    name=pname,
                    type=kind,
                    description=(params or {}).get(pname, ""),
                    required=not has_default,
                    default=parameter.default if has_default else None,
                )
            )
        doc = inspect.getdoc(function) or ""
        function.__guiagent_skill__ = Skill(  # type: ignore[attr-defined]
            name=name or function.__name__,
            description=description or doc.split("\n\n")[0] or function.__name__,
            params=declared,
            applies_to=AppliesTo.model_validate(applies_to or {}),
            function=function,
            source=f"{function.__module__}.{function.__qualname__}",
        )
        return function

    return wrap


# --- secrets ----------------------------------------------------------------------------


class SecretStore:
    """Secret values by name: given values, then ``GUIAGENT_SECRET_<NAME>``, then a YAML file."""

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        file: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._values = dict(values or {})
        self._environ = os.environ if environ is None else environ
        path = file or self._environ.get("GUIAGENT_SECRETS_FILE")
        if path:
            try:
                loaded = yamlio.load_yaml(path) or {}
            except yamlio.YamlError as exc:
                raise SkillError(f"secrets file {exc}") from exc
            if not isinstance(loaded, dict):
                raise SkillError(f"secrets file {path}: expected a mapping of name: value")
            for key, value in loaded.items():
                self._values.setdefault(str(key), str(value))

    def get(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        env_name = "GUIAGENT_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()
        if env_name in self._environ:
            return self._environ[env_name]
        raise SkillError(
            f"secret {name!r} not found: set {env_name} or add it to the secrets file (GUIAGENT_SECRETS_FILE)"
        )

    def known_values(self) -> list[str]:
        return [v for v in self._values.values() if v]
