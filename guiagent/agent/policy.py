"""Policy: declarative rules that allow, ask about or deny an action before it happens.

A policy file (YAML)::

    default: allow            # decision when no rule matches (allow | ask | deny)
    secret_patterns: []       # extra regexes for ``text_secret`` (built-in ones always apply)
    rules:
      - name: ask-before-delete
        decision: ask
        reason: deleting cannot be undone      # optional, shown to the approver
        when:
          action: [click, double_click]
          target_words: [Delete, Send, Pay]

Rules are tried in file order and the first rule whose ``when`` matches decides.
``priority`` (integer, default 0) lifts a rule above the file order: rules of higher
priority are tried first, ties keep file order (so a ``deny`` with ``priority: 10``
wins over any earlier ``allow``).

Inside ``when`` every matcher given must match (AND); a matcher holding a list matches
when any item does (OR). A matcher that needs context the step does not have (no URL on
the desktop, no target text) does not match. Matchers:

- ``action``: action kinds (``click``, ``type``, ``key``, ... ``skill`` or ``skill:<name>``);
- ``surface``: ``browser`` / ``desktop`` / ``image``;
- ``target_words``: words or phrases in any name of the target: its visible text (DOM or
  OCR under the point) or its CSS-drawn text (``::before``/``::after``) anywhere, its
  accessible name (``aria-label``, ``title``, ...) at its start (names lead with their
  verb, "Delete account", and may go on with the user's content, "Complete buy milk");
  whole-word and case-insensitive (CJK entries match inside a longer text);
  ``target_regex``: a regex searched in all of them;
- ``target_word_lists``: names of word lists shipped in ``guiagent/agent/wordlists/``
  (``irreversible``: delete, pay, send, close account, ... in several languages);
- ``target_role``: ARIA roles or tag names of the target (``button``, ``link``, ``a``);
- ``region``: ``[x, y, width, height]`` (or a list of them) in screen points: any point
  of the action inside;
- ``window_title``: ``re:<regex>``, a glob (``*Terminal*``) or a substring, case-insensitive;
- ``url``: globs on the whole URL; ``domain``: globs on the host (``*.example.com``
  covers example.com and its subdomains); ``domain_not``: matches when the host is
  outside all the globs given (allow-list);
- ``keys``: key chords (``ctrl+alt+delete`` or ``[ctrl, alt, delete]``), order-insensitive;
- ``modifiers``: modifier keys a click holds (``[ctrl]``, ``ctrl+shift``): matches a click,
  double or right click holding at least all of them (set by scenarios and replays);
- ``text_regex``: a regex searched in the text of a ``type`` action; ``text_secret``:
  the typed text contains a known secret (a value registered with :meth:`Policy.add_secret`
  or a match of a secret pattern) that this step may not type here; ``secret``: names of
  the stored secret a step types (a skill typing it).

Whatever the rules say, a stored secret bound to origins or windows is never typed, nor
handed to a skill, outside them: the verdict is ``deny`` with rule ``secret-scope``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from guiagent.agent.policy_rules import (  # noqa: F401  (re-exported: old import path)
    _KINDS,
    Decision,
    PolicyError,
    PolicyRule,
    When,
    _as_list,
    _child,
    _chord,
    _line,
)
from guiagent.agent.words import (  # noqa: F401  (word_list_names: re-exported)
    _word_regex,
    leading_regex,
    word_list,
    word_list_names,
)
from guiagent.core import yamlio
from guiagent.core.actions import (  # noqa: F401  (ACTIONS_BY_NAME: re-exported)
    ACTIONS_BY_NAME,
    BaseAction,
    Key,
    SkillCall,
    Type,
    normalise_key,
)
from guiagent.core.geometry import Point, Rect
from guiagent.core.redact import DEFAULT_SECRET_PATTERNS, SecretScope, title_matches


class ActionContext(BaseModel):
    """What the loop knows about the place an action lands."""

    surface: str = "desktop"
    url: str | None = None
    window_title: str | None = None
    target_text: str | None = None  # visible text (DOM, or OCR around the point)
    target_name: str | None = None  # accessible name: aria-label, title, alt, placeholder
    target_role: str | None = None  # ARIA role, else the tag name
    target_css_text: str | None = None  # text drawn by CSS (::before/::after), or OCR at the point
    screen_point: tuple[float, float] | None = None
    secret: str | None = None  # the stored secret this step types (a skill typing it)

    def target_names(self) -> list[str]:
        """Every name the target goes by, for word and regex matchers."""
        names = (self.target_text, self.target_name, self.target_css_text)
        return [n for n in names if n]


class Verdict(BaseModel):
    decision: Decision
    rule: str | None = None
    reason: str
    asked: bool = False  # an approver was consulted (the decision is then its answer)


def host_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(
        url if "://" in url or url.startswith(("about:", "data:", "file:")) else f"//{url}"
    )
    return (parts.hostname or "").lower()


def domain_matches(pattern: str, host: str) -> bool:
    pattern = pattern.lower().strip()
    if pattern.startswith("*.") and host == pattern[2:]:
        return True
    return fnmatch.fnmatchcase(host, pattern)


@dataclass(frozen=True)
class KnownSecret:
    """A secret value the policy must recognise in typed text, with its name and scope."""

    value: str
    name: str | None = None
    scope: SecretScope | None = None


class Policy:
    """An ordered list of rules; :meth:`judge` returns the first match's decision."""

    def __init__(
        self,
        rules: Sequence[PolicyRule] = (),
        default: Decision = "allow",
        secret_patterns: Sequence[str] = (),
        secrets: Sequence[str] = (),
        source: str | None = None,
    ) -> None:
        if default not in ("allow", "ask", "deny"):
            raise PolicyError(f"default must be allow, ask or deny, got {default!r}", source)
        self.rules = list(rules)
        self.default: Decision = default
        self.source = source
        self._ordered = [
            r for _, r in sorted(enumerate(self.rules), key=lambda ir: (-ir[1].priority, ir[0]))
        ]
        words = {
            r.name: [
                *(r.when.target_words or []),
                *(w for name in r.when.target_word_lists or [] for w in word_list(name)),
            ]
            for r in self.rules
            if r.when.target_words or r.when.target_word_lists
        }
        self._words = {name: _word_regex(ws) for name, ws in words.items()}
        self._leading = {name: leading_regex(ws) for name, ws in words.items()}
        try:
            self._secret_patterns = [
                re.compile(p) for p in (*DEFAULT_SECRET_PATTERNS, *secret_patterns)
            ]
        except re.error as exc:
            raise PolicyError(
                f"secret_patterns: not a valid regular expression: {exc}", source
            ) from exc
        self._secrets: list[KnownSecret] = [KnownSecret(s) for s in secrets if s]

    def add_secret(
        self, value: str, name: str | None = None, scope: SecretScope | None = None
    ) -> None:
        """Typing this value now matches ``text_secret`` rules, unless the step types it as
        the stored secret ``name`` where its ``scope`` allows (a skill); a skill asked to
        use ``name`` outside ``scope`` is denied."""
        if not value:
            return
        known = KnownSecret(value, name, scope if scope and not scope.unrestricted else None)
        self._secrets = [k for k in self._secrets if k.value != value or k.name != name]
        self._secrets.append(known)

    # --- loading ------------------------------------------------------------------------

    @classmethod
    def from_yaml(cls, path: str | Path) -> Policy:
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise PolicyError(f"cannot read policy file: {exc.strerror or exc}", path) from exc
        return cls.from_yaml_text(text, source=str(path))

    @classmethod
    def from_yaml_text(cls, text: str | bytes, source: str = "<policy>") -> Policy:
        try:
            doc = yamlio.parse_yaml(text, source, line_map=False)
        except yamlio.YamlError as exc:
            problem = exc.message.replace("not valid YAML", "invalid YAML", 1)
            raise PolicyError(problem, source, exc.line) from exc
        root, data = doc.node, doc.data
        if data is None or root is None:
            raise PolicyError(
                "the policy file is empty (expected 'rules:' with a list of rules)", source, 1
            )
        if isinstance(data, list):
            data, rules_node = {"rules": data}, root
        elif isinstance(data, dict):
            unknown = set(data) - {"default", "rules", "secret_patterns"}
            if unknown:
                key = sorted(unknown, key=str)[0]
                raise PolicyError(
                    f"unknown top-level key {key!r} (expected default, rules, secret_patterns)",
                    source,
                    _line(_child(root, key), root),
                )
            rules_node = _child(root, "rules")
        else:
            raise PolicyError(
                "a policy file must be a mapping with 'rules:' or a list of rules", source, 1
            )
        raw_rules = data.get("rules") or []
        if not isinstance(raw_rules, list):
            raise PolicyError("'rules' must be a list of rules", source, _line(rules_node, root))
        rules: list[PolicyRule] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_rules):
            node = _child(rules_node, i)
            try:
                rule = PolicyRule.model_validate(raw)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                loc = list(err.get("loc", ()))
                target = node
                for part in loc:
                    found = _child(target, part)
                    if found is None:
                        break
                    target = found
                name = raw.get("name") if isinstance(raw, dict) else None
                label = f"rule {name!r}" if name else f"rule #{i + 1}"
                field = ".".join(str(p) for p in loc) or "rule"
                raise PolicyError(
                    f"{label}: {field}: {err.get('msg')}", source, _line(target, root)
                ) from exc
            if rule.name in seen:
                raise PolicyError(f"duplicate rule name {rule.name!r}", source, _line(node, root))
            seen.add(rule.name)
            rules.append(rule)
        default = data.get("default", "allow")
        if default not in ("allow", "ask", "deny"):
            raise PolicyError(
                f"default must be allow, ask or deny, got {default!r}",
                source,
                _line(_child(root, "default"), root),
            )
        patterns = _as_list(data.get("secret_patterns") or [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise PolicyError(
                "secret_patterns must be a list of regexes",
                source,
                _line(_child(root, "secret_patterns"), root),
            )
        for j, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                node = _child(_child(root, "secret_patterns"), j)
                raise PolicyError(
                    f"secret_patterns[{j}]: not a valid regular expression: {exc}",
                    source,
                    _line(node, root),
                ) from exc
        return cls(rules, default=default, secret_patterns=patterns, source=source)

    @classmethod
    def default_policy(cls) -> Policy:
        """The built-in policy used when no file is given (same rules as policies/default.yaml)."""
        return cls(
            [PolicyRule.model_validate(r) for r in BUILTIN_RULES],
            default="allow",
            source="<built-in>",
        )

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        return cls.default_policy() if path is None else cls.from_yaml(path)

    # --- judging ------------------------------------------------------------------------

    def kinds_reading_target(self) -> set[str]:
        """Action kinds whose rules look at the target's names or role (``*``: every kind):
        the loop reads what is under the point only for these."""
        return {
            kind
            for rule in self.rules
            if rule.when.target_words
            or rule.when.target_word_lists
            or rule.when.target_regex
            or rule.when.target_role
            for kind in (rule.when.action or ["*"])
        }

    def judge(self, action: BaseAction, ctx: ActionContext) -> Verdict:
        refused = self._secret_out_of_scope(action, ctx)
        if refused is not None:
            return Verdict(decision="deny", rule="secret-scope", reason=refused)
        for rule in self._ordered:
            if self._matches(rule, action, ctx):
                reason = rule.reason or f"policy rule {rule.name!r}"
                return Verdict(decision=rule.decision, rule=rule.name, reason=reason)
        return Verdict(
            decision=self.default, rule=None, reason=f"no rule matched; default is {self.default}"
        )

    def _matches(self, rule: PolicyRule, action: BaseAction, ctx: ActionContext) -> bool:
        return all(self._checks(rule, action, ctx))

    def _checks(self, rule: PolicyRule, action: BaseAction, ctx: ActionContext) -> Iterator[bool]:
        """One boolean per matcher the rule gives, lazily (all() stops at the first False)."""
        w = rule.when
        if w.action is not None:
            kinds = {action.name}
            if isinstance(action, SkillCall):
                kinds.add(f"skill:{action.skill}")
            yield bool(kinds & set(w.action))
        if w.surface is not None:
            yield ctx.surface in w.surface
        if w.target_words is not None or w.target_word_lists is not None:
            # visible and CSS text anywhere; an accessible name by the words it starts with
            words, leading = self._words[rule.name], self._leading[rule.name]
            shown = [t for t in (ctx.target_text, ctx.target_css_text) if t]
            yield any(words.search(t) for t in shown) or bool(
                ctx.target_name and leading.search(ctx.target_name)
            )
        if w.target_regex is not None:
            yield any(re.search(w.target_regex, name, re.IGNORECASE) for name in ctx.target_names())
        if w.target_role is not None:
            yield bool(ctx.target_role) and (ctx.target_role or "").lower() in {
                r.lower() for r in w.target_role
            }
        if w.region is not None:
            points = [ctx.screen_point] if ctx.screen_point is not None else action.points()
            rects = [Rect(*r) for r in w.region]
            yield any(rect.contains(Point(*p)) for p in points for rect in rects)
        if w.window_title is not None:
            yield any(title_matches(p, ctx.window_title) for p in w.window_title)
        if w.url is not None:
            yield bool(ctx.url) and any(fnmatch.fnmatchcase(ctx.url or "", p) for p in w.url)
        if w.domain is not None or w.domain_not is not None:
            host = host_of(ctx.url)
            yield host is not None
            if w.domain is not None:
                yield any(domain_matches(p, host or "") for p in w.domain)
            if w.domain_not is not None:
                yield not any(domain_matches(p, host or "") for p in w.domain_not)
        if w.keys is not None:
            yield (
                isinstance(action, Key)
                and frozenset(normalise_key(k) for k in action.keys) in w.keys
            )
        if w.modifiers is not None:  # a click holding (at least) these modifier keys
            yield set(w.modifiers) <= set(getattr(action, "modifiers", ()))
        if w.text_regex is not None:
            yield isinstance(action, Type) and re.search(w.text_regex, action.text) is not None
        if w.text_secret is not None:
            yield isinstance(action, Type) and self._has_secret(action.text, ctx) == w.text_secret
        if w.secret is not None:
            yield ctx.secret is not None and ctx.secret in w.secret

    def _has_secret(self, text: str, ctx: ActionContext) -> bool:
        """The text holds a known secret this step is not entitled to type here, or a
        credential pattern. Only a step typing the stored secret by its name (a skill) in
        that secret's scope is entitled; the model typing a value it read is not."""
        for known in self._secrets:
            if known.value in text and not self._entitled(known, ctx):
                return True
        if any(k.value in text for k in self._secrets):
            return False  # the entitled secret itself may look like a pattern
        return any(p.search(text) for p in self._secret_patterns)

    @staticmethod
    def _entitled(known: KnownSecret, ctx: ActionContext) -> bool:
        if known.name is None or ctx.secret != known.name:
            return False
        return known.scope is None or known.scope.allows(ctx.url, ctx.window_title)

    def _secret_out_of_scope(self, action: BaseAction, ctx: ActionContext) -> str | None:
        """Why this action would put a scoped secret where it does not belong (or None)."""
        here = ctx.url or (f"window {ctx.window_title!r}" if ctx.window_title else "this screen")
        scoped = [k for k in self._secrets if k.scope is not None]
        if isinstance(action, Type):
            for known in scoped:
                if known.value in action.text and not known.scope.allows(  # type: ignore[union-attr]
                    ctx.url, ctx.window_title
                ):
                    label = f"secret {known.name!r}" if known.name else "a stored secret"
                    return f"{label} may only be typed on {known.scope.describe()}, not on {here}"  # type: ignore[union-attr]
        if isinstance(action, SkillCall):
            names = {v for v in action.params.values() if isinstance(v, str)}
            for known in scoped:
                if known.name in names and not known.scope.allows(  # type: ignore[union-attr]
                    ctx.url, ctx.window_title
                ):
                    return (
                        f"skill {action.skill!r} may not use secret {known.name!r} here: it is "
                        f"bound to {known.scope.describe()}, this is {here}"  # type: ignore[union-attr]
                    )
        return None


BUILTIN_RULES: list[dict[str, Any]] = [
    {
        "name": "deny-ctrl-alt-delete",
        "decision": "deny",
        "reason": "ctrl+alt+delete / ctrl+alt+backspace can log out or kill the session",
        "when": {"action": "key", "keys": ["ctrl+alt+delete", "ctrl+alt+backspace"]},
    },
    {
        "name": "deny-typing-secrets",
        "decision": "deny",
        "reason": "the text to type looks like a secret (API key, token, private key or a known password)",
        "when": {"action": "type", "text_secret": True},
    },
    {
        "name": "ask-before-irreversible-clicks",
        "decision": "ask",
        "reason": "this click may delete, send, pay for, publish or close something for good",
        "when": {
            "action": ["click", "double_click"],
            "target_word_lists": ["irreversible"],
        },
    },
]


from guiagent.agent.approval import (  # noqa: E402 - re-exported; approval imports this module
    Approver,
    AutoApprover,
    CallbackApprover,
    TerminalApprover,
    decide,
    describe_action,
)

__all__ = [
    "ActionContext",
    "Approver",
    "AutoApprover",
    "CallbackApprover",
    "KnownSecret",
    "Policy",
    "PolicyError",
    "PolicyRule",
    "TerminalApprover",
    "Verdict",
    "When",
    "decide",
    "describe_action",
    "word_list",
]
