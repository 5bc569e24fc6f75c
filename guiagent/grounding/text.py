"""Text matching for targets (pure): exact > whole phrase > substring > fuzzy, where a
fuzzy match never forgives a sign, a digit or a currency symbol."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from guiagent.core.geometry import Rect


@dataclass(frozen=True)
class TextMatch:
    score: float  # 0..1
    start: int  # span of the match within the whitespace-normalised line
    end: int
    kind: str  # "exact" | "phrase" | "substring" | "fuzzy"


def normalise(text: str) -> str:
    return " ".join(text.split())


def match_text(
    target: str, line: str, exact: bool = False, fuzzy_threshold: float = 0.8
) -> TextMatch | None:
    """Score how well ``line`` names ``target``: exact > whole phrase inside > fuzzy.

    Spans index the whitespace-normalised line (used to estimate a sub-box).
    """
    wanted, seen = normalise(target), normalise(line)
    if not wanted or not seen:
        return None
    if exact:  # the whole text of one element or OCR line, nothing less
        return TextMatch(1.0, 0, len(seen), "exact") if seen == wanted else None
    low_wanted, low_seen = wanted.lower(), seen.lower()
    if len(low_seen) != len(seen):  # lower() changed the length: spans would drift
        low_seen = seen
        low_wanted = wanted
    if low_seen == low_wanted:
        return TextMatch(1.0 if seen == wanted else 0.98, 0, len(seen), "exact")
    found = re.search(_bounded(low_wanted), low_seen)
    if found:
        return TextMatch(0.8 + 0.15 * len(wanted) / len(seen), found.start(), found.end(), "phrase")
    index = _find_unsigned(low_wanted, low_seen)
    if index >= 0:
        return TextMatch(
            0.5 + 0.2 * len(wanted) / len(seen), index, index + len(wanted), "substring"
        )
    best: tuple[float, int, int] = (0.0, 0, 0)
    numbers = _numbers(low_wanted)
    for ratio, start, end in _fuzzy_windows(low_wanted, low_seen):
        # "Task 6" is not a misreading of "Task 1", nor "-1.00" of "1.00" or "$5" of "€5":
        # numbers (with their sign and currency) must agree exactly.
        if _numbers(_with_sign(low_seen, start, end)) != numbers:
            continue
        if ratio > best[0]:
            best = (ratio, start, end)
    ratio, start, end = best
    if ratio >= fuzzy_threshold:
        return TextMatch(0.75 * ratio, start, end, "fuzzy")
    return None


# a number as written: its sign and currency symbol, digits, separators
_NUMBER = re.compile(r"[-+\u2212]?\s?[$\u20ac\u00a3\u00a5]?\s?\d(?:[\d.,]*\d)?%?")
_NUMERIC_EDGE = "-+\u2212$\u20ac\u00a3\u00a5.,"


def _numbers(text: str) -> list[str]:
    """The numbers of ``text`` with their sign and currency, spaces and minus kinds folded."""
    return [m.group(0).replace(" ", "").replace("\u2212", "-") for m in _NUMBER.finditer(text)]


def _with_sign(line: str, start: int, end: int) -> str:
    """``line[start:end]`` widened left over a sign or currency symbol right before it."""
    while (
        start > 0
        and (line[start - 1] in _NUMERIC_EDGE or line[start - 1] == " ")
        and (line[start - 1] != " " or (start > 1 and line[start - 2] in _NUMERIC_EDGE))
    ):
        start -= 1
    return line[start:end]


def _bounded(wanted: str) -> str:
    """A regex for ``wanted`` as a whole phrase; a number inside a longer number, or after a
    sign or currency symbol, is not that number ("1.00" is not in "-1.00")."""
    before = r"(?<![\w" + re.escape(_NUMERIC_EDGE) + "])" if wanted[:1].isdigit() else r"(?<!\w)"
    after = r"(?!\w)(?![.,]\d)" if wanted[-1:].isdigit() else r"(?!\w)"
    return before + re.escape(wanted) + after


def _find_unsigned(wanted: str, seen: str) -> int:
    """Where ``wanted`` occurs in ``seen`` as a substring, skipping places where a number
    would lose its sign, currency or digits; -1 when none."""
    index = seen.find(wanted)
    while index >= 0:
        before = seen[index - 1] if index > 0 else ""
        after = seen[index + len(wanted) : index + len(wanted) + 1]
        numeric_start = wanted[:1].isdigit() and (
            before.isdigit() or (before != "" and before in _NUMERIC_EDGE)
        )
        numeric_end = wanted[-1:].isdigit() and after.isdigit()
        if not (numeric_start or numeric_end):
            return index
        index = seen.find(wanted, index + 1)
    return -1


def _fuzzy_windows(wanted: str, seen: str) -> list[tuple[float, int, int]]:
    """Ratios of the target against the whole line and each run of about as many words."""
    results = [(difflib.SequenceMatcher(None, wanted, seen).ratio(), 0, len(seen))]
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", seen)]
    count = len(wanted.split())
    for size in {max(1, count - 1), count, count + 1}:
        if size >= len(words):
            continue
        for i in range(len(words) - size + 1):
            start, end = words[i][0], words[i + size - 1][1]
            ratio = difflib.SequenceMatcher(None, wanted, seen[start:end]).ratio()
            results.append((ratio, start, end))
    return results


def sub_box(box: Rect, line: str, start: int, end: int) -> Rect:
    """The part of a line's box holding characters ``start:end``, by character proportion."""
    length = len(normalise(line))
    if length == 0 or (start <= 0 and end >= length):
        return box
    left = box.left + box.width * start / length
    right = box.left + box.width * end / length
    return Rect(left, box.top, max(1.0, right - left), box.height)


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, normalise(a).lower(), normalise(b).lower()).ratio()
