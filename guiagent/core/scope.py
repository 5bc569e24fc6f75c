"""Where a secret may be typed: origins (URL patterns) and window titles."""

from __future__ import annotations

import fnmatch
import re
from urllib.parse import urlsplit

from pydantic import BaseModel


def title_matches(pattern: str, title: str | None) -> bool:
    """Match a window title: ``re:<regex>`` is a regex search, a pattern with ``*?[`` a
    glob, anything else a substring; all case-insensitive."""
    if title is None:
        return False
    if pattern.startswith("re:"):
        return re.search(pattern[3:], title, re.IGNORECASE) is not None
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(title.lower(), pattern.lower())
    return pattern.lower() in title.lower()


class SecretScope(BaseModel):
    """Where a secret may be typed: URL globs (``https://bank.example/*``) or origins
    (``https://bank.example``), and window-title patterns (``re:``, glob or substring).

    An empty scope (neither given) means "anywhere a skill uses it"; the model itself may
    never type a stored secret, whatever its scope.
    """

    origins: list[str] = []
    windows: list[str] = []

    @property
    def unrestricted(self) -> bool:
        return not self.origins and not self.windows

    def allows(self, url: str | None, window_title: str | None) -> bool:
        if self.unrestricted:
            return True
        if url and any(origin_matches(p, url) for p in self.origins):
            return True
        return bool(window_title) and any(title_matches(p, window_title) for p in self.windows)

    def describe(self) -> str:
        parts = [*self.origins, *(f"window {w!r}" for w in self.windows)]
        return ", ".join(parts) or "anywhere"


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-case (``""`` when it has none)."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def origin_matches(pattern: str, url: str) -> bool:
    """A scope pattern against a URL: a bare origin (``https://bank.example``, no path)
    matches that origin exactly; anything else is a glob on the whole URL."""
    pattern = pattern.strip()
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(url, pattern)
    pattern_origin = origin_of(pattern)
    if pattern_origin and pattern.rstrip("/") == pattern_origin.rstrip("/"):
        return origin_of(url) == pattern_origin
    return url == pattern
