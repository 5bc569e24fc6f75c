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
from guiagent.core.redact import SecretScope

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


class SecretScopeError(SkillError):
    """A secret asked for outside the origins or windows it is bound to."""


class SecretEntry(BaseModel):
    """A stored secret: its name, its value (never shown by repr) and where it may be typed."""

    model_config = ConfigDict(frozen=True)
    name: str
    value: str = Field(repr=False)
    scope: SecretScope = Field(default_factory=SecretScope)


def env_name(name: str) -> str:
    return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


ENV_PREFIX = "GUIAGENT_SECRET_"


class SecretStore:
    """Secret values by name, each optionally bound to origins or windows.

    Sources, first found wins: given ``values``, then ``GUIAGENT_SECRET_<NAME>`` variables,
    then a YAML file (``file`` or ``GUIAGENT_SECRETS_FILE``) whose entries are either
    ``name: value`` or::

        bank_pw:
          value: hunter2            # or leave it out: taken from GUIAGENT_SECRET_BANK_PW
          origins: [https://bank.example]    # origins or URL globs it may be typed on
          windows: ["*KeePass*"]             # window titles it may be typed into

    ``scopes`` binds names to origins/windows from code. The model only ever sees names.
    """

    def __init__(
        self,
        values: Mapping[str, str] | None = None,
        file: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
        scopes: Mapping[str, SecretScope | Mapping[str, Any]] | None = None,
    ) -> None:
        self._values = dict(values or {})
        self._scopes: dict[str, SecretScope] = {
            name: SecretScope.model_validate(scope) for name, scope in (scopes or {}).items()
        }
        self._environ = os.environ if environ is None else environ
        path = file or self._environ.get("GUIAGENT_SECRETS_FILE")
        if path:
            self._load_file(Path(path))

    def _load_file(self, path: Path) -> None:
        try:
            loaded = yamlio.load_yaml(path) or {}
        except yamlio.YamlError as exc:
            raise SkillError(f"secrets file {exc}") from exc
        if not isinstance(loaded, dict):
            raise SkillError(f"secrets file {path}: expected a mapping of name: value")
        for key, entry in loaded.items():
            name = str(key)
            if isinstance(entry, dict):
                unknown = set(entry) - {"value", "origins", "windows"}
                if unknown:
                    raise SkillError(
                        f"secrets file {path}: secret {name!r}: unknown key(s) "
                        f"{', '.join(sorted(map(str, unknown)))} (expected value, origins, windows)"
                    )
                try:
                    scope = SecretScope(
                        origins=_strings(entry.get("origins")),
                        windows=_strings(entry.get("windows")),
                    )
                except ValueError as exc:
                    raise SkillError(f"secrets file {path}: secret {name!r}: {exc}") from None
                self._scopes.setdefault(name, scope)
                if entry.get("value") is not None:
                    self._values.setdefault(name, str(entry["value"]))
            elif entry is not None:
                self._values.setdefault(name, str(entry))

    def add(self, name: str, value: str, scope: SecretScope | None = None) -> None:
        """Store a value (e.g. one asked for on the terminal) under ``name``."""
        self._values[name] = value
        if scope is not None:
            self._scopes[name] = scope

    def get(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        variable = env_name(name)
        if variable in self._environ:
            return self._environ[variable]
        raise SkillError(
            f"secret {name!r} not found: set {variable} or add it to the secrets file (GUIAGENT_SECRETS_FILE)"
        )

    def scope(self, name: str) -> SecretScope:
        return self._scopes.get(name, SecretScope())

    def check_scope(self, name: str, url: str | None, window_title: str | None) -> None:
        """Raise :class:`SecretScopeError` when ``name`` may not be typed here."""
        scope = self.scope(name)
        if not scope.allows(url, window_title):
            here = url or (f"window {window_title!r}" if window_title else "this screen")
            raise SecretScopeError(
                f"secret {name!r} may only be used on {scope.describe()}, not on {here}"
            )

    def entries(self) -> list[SecretEntry]:
        """Every secret whose value is known now (given, file, or environment)."""
        found: dict[str, SecretEntry] = {}
        for name, value in self._values.items():
            if value:
                found[name] = SecretEntry(name=name, value=value, scope=self.scope(name))
        for variable, value in self._environ.items():
            if variable.startswith(ENV_PREFIX) and value:
                name = variable[len(ENV_PREFIX) :].lower()
                declared = next((n for n in self._scopes if env_name(n) == variable), name)
                if declared not in found:
                    found[declared] = SecretEntry(
                        name=declared, value=value, scope=self.scope(declared)
                    )
        return list(found.values())

    def known_values(self) -> list[str]:
        return [entry.value for entry in self.entries()]


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("origins and windows must be a string or a list of strings")
