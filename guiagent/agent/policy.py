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
- ``target_words``: words or phrases in the target text (the OCR/DOM text under or near
  the point), whole-word and case-insensitive; ``target_regex``: a regex searched in it;
- ``region``: ``[x, y, width, height]`` (or a list of them) in screen points: any point
  of the action inside;
- ``window_title``: ``re:<regex>``, a glob (``*Terminal*``) or a substring, case-insensitive;
- ``url``: globs on the whole URL; ``domain``: globs on the host (``*.example.com``
  covers example.com and its subdomains); ``domain_not``: matches when the host is
  outside all the globs given (allow-list);
- ``keys``: key chords (``ctrl+alt+delete`` or ``[ctrl, alt, delete]``), order-insensitive;
- ``text_regex``: a regex searched in the text of a ``type`` action; ``text_secret``:
  the typed text contains a known secret (a value registered with :meth:`Policy.add_secret`
  or a match of a secret pattern).
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import re
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TextIO
from urllib.parse import urlsplit

import yaml
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from guiagent.core import yamlio
from guiagent.core.actions import ACTIONS_BY_NAME, BaseAction, Key, SkillCall, Type, normalise_key
from guiagent.core.env import Frame
from guiagent.core.geometry import Point, Rect
from guiagent.core.redact import DEFAULT_SECRET_PATTERNS, title_matches

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
    target_regex: str | None = None
    region: list[tuple[float, float, float, float]] | None = None
    window_title: list[str] | None = None
    url: list[str] | None = None
    domain: list[str] | None = None
    domain_not: list[str] | None = None
    keys: list[frozenset[str]] | None = None
    text_regex: str | None = None
    text_secret: bool | None = None

    @field_validator(
        "action",
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

    @field_validator("target_regex", "text_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
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


class ActionContext(BaseModel):
    """What the loop knows about the place an action lands."""

    surface: str = "desktop"
    url: str | None = None
    window_title: str | None = None
    target_text: str | None = None
    screen_point: tuple[float, float] | None = None


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


def _word_regex(words: Sequence[str]) -> re.Pattern[str]:
    alternatives = [r"\s+".join(re.escape(part) for part in w.split()) for w in words]
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


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
        self._words = {
            r.name: _word_regex(r.when.target_words) for r in self.rules if r.when.target_words
        }
        try:
            self._secret_patterns = [
                re.compile(p) for p in (*DEFAULT_SECRET_PATTERNS, *secret_patterns)
            ]
        except re.error as exc:
            raise PolicyError(
                f"secret_patterns: not a valid regular expression: {exc}", source
            ) from exc
        self._secrets = [s for s in secrets if s]

    def add_secret(self, value: str) -> None:
        """Typing this value now matches ``text_secret`` rules."""
        if value and value not in self._secrets:
            self._secrets.append(value)

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

    def judge(self, action: BaseAction, ctx: ActionContext) -> Verdict:
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
        if w.target_words is not None:
            yield (
                bool(ctx.target_text)
                and self._words[rule.name].search(ctx.target_text or "") is not None
            )
        if w.target_regex is not None:
            yield (
                bool(ctx.target_text)
                and re.search(w.target_regex, ctx.target_text or "", re.IGNORECASE) is not None
            )
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
        if w.text_regex is not None:
            yield isinstance(action, Type) and re.search(w.text_regex, action.text) is not None
        if w.text_secret is not None:
            yield isinstance(action, Type) and self._has_secret(action.text) == w.text_secret

    def _has_secret(self, text: str) -> bool:
        return any(s in text for s in self._secrets) or any(
            p.search(text) for p in self._secret_patterns
        )


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
        "reason": "this click may delete, send or pay for something",
        "when": {
            "action": ["click", "double_click"],
            "target_words": [
                "Delete",
                "Send",
                "Pay",
                "Purchase",
                "Submit payment",
                "Place order",
                "Buy now",
            ],
        },
    },
]


# --- approvals --------------------------------------------------------------------------


class Approver(Protocol):
    """Asked when a verdict is ``ask``; returns True to let the action happen."""

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool: ...


def describe_action(action: BaseAction, max_text: int = 60) -> str:
    args = action.arguments()
    if isinstance(action, Type):
        shown = action.text if len(action.text) <= max_text else action.text[:max_text] + "..."
        args = {"text": shown}
    inner = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in args.items()
    )
    return f"{action.name}({inner})"


class TerminalApprover:
    """Asks on the terminal (rich); with no terminal to ask on, it denies and logs it."""

    def __init__(self, stream: TextIO | None = None, console: Any = None) -> None:
        self.stream = stream
        self.console = console

    def _interactive(self) -> bool:
        stream = self.stream if self.stream is not None else sys.stdin
        try:
            return stream is not None and stream.isatty()
        except (ValueError, OSError):  # closed or detached stream
            return False

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool:
        if not self._interactive():
            logger.warning(
                "action {} needs approval ({}) but there is no terminal to ask on: denied",
                action.name,
                verdict.reason,
            )
            return False
        return await asyncio.to_thread(self._ask, action, verdict)

    def _ask(self, action: BaseAction, verdict: Verdict) -> bool:
        from rich.console import Console
        from rich.markup import escape
        from rich.prompt import Confirm

        console = self.console or Console(stderr=True, soft_wrap=True, emoji=False)
        console.print(
            f"[bold yellow]Approval needed[/]: {escape(describe_action(action))}", highlight=False
        )
        why = verdict.reason + (f" (rule {verdict.rule})" if verdict.rule else "")
        console.print(f"  why: {escape(why)}", highlight=False)
        try:
            answer = Confirm.ask(
                "Allow this action?", default=False, console=console, stream=self.stream
            )
        except EOFError:
            answer = False
        logger.info(
            "user {} action {} (rule {})",
            "approved" if answer else "denied",
            action.name,
            verdict.rule,
        )
        return bool(answer)


class CallbackApprover:
    """Wraps a sync or async callback ``fn(action, verdict, frame) -> bool``."""

    def __init__(
        self, fn: Callable[[BaseAction, Verdict, Frame | None], bool | Awaitable[bool]]
    ) -> None:
        self.fn = fn

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool:
        result = self.fn(action, verdict, frame)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)


class AutoApprover:
    """Always answers the same (tests, dry runs). Counts how often it was asked."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked = 0

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool:
        self.asked += 1
        return self.answer


async def decide(
    policy: Policy,
    action: BaseAction,
    ctx: ActionContext,
    approver: Approver,
    frame: Frame | None = None,
) -> Verdict:
    """Judge ``action`` and settle an ``ask`` with the approver: the result is allow or deny."""
    verdict = policy.judge(action, ctx)
    if verdict.decision != "ask":
        return verdict
    approved = await approver(action, verdict, frame)
    return Verdict(
        decision="allow" if approved else "deny",
        rule=verdict.rule,
        reason=f"{'approved' if approved else 'denied'} on request: {verdict.reason}",
        asked=True,
    )
