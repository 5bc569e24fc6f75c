"""Word matching for policy rules, and the word lists shipped in ``wordlists/``."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import yaml


def _is_cjk(word: str) -> bool:
    return any(unicodedata.east_asian_width(c) in ("W", "F") for c in word)


def _word_regex(words: Sequence[str]) -> re.Pattern[str]:
    """Whole words or phrases (any whitespace between parts), case-insensitive; CJK words,
    written without spaces, also match inside a longer label."""

    def phrase(w: str) -> str:
        return r"\s+".join(re.escape(part) for part in w.split())

    whole = [phrase(w) for w in words if not _is_cjk(w)]
    inside = [phrase(w) for w in words if _is_cjk(w)]
    alternatives = []
    if whole:
        alternatives.append(r"(?<!\w)(?:" + "|".join(whole) + r")(?!\w)")
    if inside:
        alternatives.append("(?:" + "|".join(inside) + ")")
    return re.compile("|".join(alternatives) or r"(?!x)x", re.IGNORECASE)


def leading_regex(words: Sequence[str]) -> re.Pattern[str]:
    """The same words, but only at the start of a name (or of a ``" | "``-joined part):
    accessible names lead with their verb ("Delete account") and often go on with the
    user's own content ("Complete buy milk"), which must not count."""
    inner = _word_regex(words).pattern
    return re.compile(r"(?:^|\|)\s*(?:" + inner + ")", re.IGNORECASE)


WORDLISTS_DIR = Path(__file__).with_name("wordlists")


@functools.cache
def word_list_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in WORDLISTS_DIR.glob("*.yaml")))


@functools.cache
def word_list(name: str) -> tuple[str, ...]:
    """A shipped word list (``wordlists/<name>.yaml``: language -> words), all languages."""
    data = yaml.safe_load((WORDLISTS_DIR / f"{name}.yaml").read_text(encoding="utf-8")) or {}
    return tuple(str(w) for words in data.values() for w in words or [])
