"""The policy file's rule model: :class:`When` (the matchers' fields and their validation),
:class:`PolicyRule`, :class:`PolicyError`, and YAML node line lookup (split from ``policy.py``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from guiagent.agent.words import word_list_names
from guiagent.core.actions import ACTIONS_BY_NAME, normalise_key, normalise_modifiers

Decision = Literal["allow", "ask", "deny"]

_KINDS = frozenset([*ACTIONS_BY_NAME, "skill"])


class PolicyError(ValueError):
    """A policy file or rule that cannot be used; names the file and line when known."""

    def __init__(
        self, problem: str, path: str | Path | None = None, line: int | None = None
    ) -> None:
        self.problem = problem
        self.path = str(path) if path is not None else None
        self.line = line
        where = self.path or "<policy>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {problem}")


def _as_list(value: Any) -> Any:
    return (
        [value] if isinstance(value, (str, int, float)) and not isinstance(value, bool) else value
    )


def _chord(value: Any) -> frozenset[str]:
    parts = re.split(r"\s*\+\s*", value.strip()) if isinstance(value, str) else list(value)
    keys = frozenset(normalise_key(str(p)) for p in parts if str(p).strip())
    if not keys:
        raise ValueError(f"empty key chord: {value!r}")
    return keys


class When(BaseModel):
    """The matchers of one rule (all given must match)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: list[str] | None = None
    surface: list[Literal["browser", "desktop", "image"]] | None = None
    target_words: list[str] | None = None
    target_word_lists: list[str] | None = None
    target_regex: str | None = None
    target_role: list[str] | None = None
    region: list[tuple[float, float, float, float]] | None = None
    window_title: list[str] | None = None
    url: list[str] | None = None
    domain: list[str] | None = None
    domain_not: list[str] | None = None
    keys: list[frozenset[str]] | None = None
    modifiers: tuple[str, ...] | None = None
    text_regex: str | None = None
    text_secret: bool | None = None
    secret: list[str] | None = None

    @field_validator(
        "action",
        "target_word_lists",
        "target_role",
        "secret",
        "surface",
        "target_words",
        "window_title",
        "url",
        "domain",
        "domain_not",
        mode="before",
    )
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("action")
    @classmethod
    def _known_kinds(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = []
        for kind in value:
            kind = kind.strip().lower()
            if kind not in _KINDS and not kind.startswith("skill:"):
                raise ValueError(
                    f"unknown action kind {kind!r}; known: {', '.join(sorted(_KINDS))}, skill:<name>"
                )
            out.append(kind)
        return out

    @field_validator("region", mode="before")
    @classmethod
    def _regions(cls, value: Any) -> Any:
        if (
            isinstance(value, (list, tuple))
            and len(value) == 4
            and all(isinstance(v, (int, float)) for v in value)
        ):
            return [value]
        return value

    @field_validator("region")
    @classmethod
    def _positive(cls, value: list[tuple[float, float, float, float]] | None) -> Any:
        for _, _, w, h in value or []:
            if w <= 0 or h <= 0:
                raise ValueError("region width and height must be positive ([x, y, width, height])")
        return value

    @field_validator("keys", mode="before")
    @classmethod
    def _chords(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        # a flat list of key names is one chord; a list of strings with "+" or of lists is many
        if (
            isinstance(value, list)
            and value
            and all(isinstance(v, str) and "+" not in v for v in value)
        ):
            value = [value]
        return [_chord(v) for v in value]

    @field_validator("modifiers", mode="before")
    @classmethod
    def _modifiers(cls, value: Any) -> Any:
        if value is None:
            return None
        held = normalise_modifiers(value)
        if not held:
            raise ValueError("modifiers needs at least one of ctrl, shift, alt, meta")
        return held

    @field_validator("target_regex", "text_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("target_word_lists")
    @classmethod
    def _known_lists(cls, value: list[str] | None) -> list[str] | None:
        for name in value or []:
            if name not in word_list_names():
                raise ValueError(
                    f"unknown word list {name!r}; shipped: {', '.join(word_list_names())}"
                )
        return value

    @field_validator("target_words")
    @classmethod
    def _words(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not all(w.strip() for w in value):
            raise ValueError("target_words must not contain empty words")
        return value


class PolicyRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    decision: Decision
    when: When = Field(default_factory=When)
    reason: str | None = None
    priority: int = 0


def _child(node: yaml.Node | None, key: Any) -> yaml.Node | None:
    """The YAML node under ``key`` (mapping key or sequence index), for line numbers."""
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                return v
    elif (
        isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value)
    ):
        return node.value[key]
    return None


def _line(node: yaml.Node | None, fallback: yaml.Node | None = None) -> int | None:
    chosen = node if node is not None else fallback
    return chosen.start_mark.line + 1 if chosen is not None else None
