"""Pure comparisons of a recorded DOM target with live elements: is it the same element, and
which live element is it when the page changed.

Every answer carries a score (0..1) and a rule a person can read ("role textbox = recorded;
name 'Email' ~ 'E-mail address' (0.71); id differs"), so a replay says why it acted.

Signals, strongest first: the accessible role and name, the element id and form field name,
the visible text, the DOM path, the position relative to the named texts recorded around the
target, and its rank among elements of the same role. Some differences veto a candidate
outright whatever else agrees: another role, another input type (a password field is never
taken for a text field), an editable field for a button.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

ACCEPT = 0.25  # a re-location needs at least this score...
MARGIN = 0.15  # ...and this much more than the next best candidate
SAME_ELEMENT = 0.4  # strict: the element at the point must score this much
NEAR_PX = 24.0  # a neighbour-predicted point this close to a box counts as inside


@dataclass
class Match:
    """How well one live element agrees with the recorded target."""

    element: dict[str, Any]
    score: float
    agreed: list[str] = field(default_factory=list)
    disagreed: list[str] = field(default_factory=list)
    veto: str | None = None

    @property
    def rule(self) -> str:
        parts = self.agreed + [f"not {d}" for d in self.disagreed]
        if self.veto:
            parts.insert(0, f"VETO {self.veto}")
        return f"score {self.score:.2f}: " + ("; ".join(parts) or "no evidence in common")


@dataclass
class Decision:
    """The outcome of a re-location: the chosen match (None: undecided) and why."""

    match: Match | None
    rule: str
    ranked: list[Match] = field(default_factory=list)


def norm(text: Any) -> str:
    return " ".join(str(text or "").casefold().split())


def similarity(a: Any, b: Any) -> float:
    """0..1: equal texts 1; else how much of one name the other keeps.

    Words match when equal or when one begins the other ("auto" and "automatically"); a
    name that holds the other ("Open" / "Open file") scores 0.8. A word replaced by another
    on both sides ("Sign in" / "Sign out", "Dark mode" / "Dark theme") scores at most 0.45:
    below what counts as the same name, as the two may mean opposite things.
    """
    x, y = norm(a), norm(b)
    if not x or not y:
        return 0.0
    if x == y:
        return 1.0
    if _squeezed(x) == _squeezed(y):  # "Log in" / "Login", "E-mail" / "Email"
        return 0.95
    # "E-mail" is "email"; "Auto-save" is "auto save": try both readings of a hyphen
    return max(
        _similar(x.replace("-", " "), y.replace("-", " ")),
        _similar(x.replace("-", ""), y.replace("-", "")),
    )


def _squeezed(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


def _similar(x: str, y: str) -> float:
    wx, wy = set(_words(x)), set(_words(y))
    if not wx or not wy:
        return 0.0
    in_y = {w for w in wx if any(_same_word(w, v) for v in wy)}
    in_x = {v for v in wy if any(_same_word(w, v) for w in wx)}
    shared = min(len(in_y), len(in_x))
    words = shared / (len(wx) + len(wy) - shared)
    if in_y == wx or in_x == wy:
        return max(0.8, 0.9 * words, difflib.SequenceMatcher(None, x, y).ratio())
    chars = difflib.SequenceMatcher(None, x, y).ratio()
    return min(0.45, max(chars, 0.9 * words))


def _same_word(a: str, b: str) -> bool:
    return a == b or (min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)))


def _words(text: str) -> list[str]:
    out, word = [], []
    for ch in text:
        if ch.isalnum():
            word.append(ch)
        elif word:
            out.append("".join(word))
            word = []
    if word:
        out.append("".join(word))
    return out


def centre(box: Any) -> tuple[float, float] | None:
    if not isinstance(box, Mapping):
        return None
    try:
        return (
            float(box["x"]) + float(box["width"]) / 2,
            float(box["y"]) + float(box["height"]) / 2,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _distance_to_box(point: tuple[float, float], box: Mapping[str, Any]) -> float:
    x, y, w, h = (float(box[k]) for k in ("x", "y", "width", "height"))
    dx = max(x - point[0], 0.0, point[0] - (x + w))
    dy = max(y - point[1], 0.0, point[1] - (y + h))
    return (dx * dx + dy * dy) ** 0.5


def element_name(element: Mapping[str, Any]) -> str:
    """The accessible name; recordings made before names were kept have ``name`` = aria-label or
    placeholder, and a button's or link's name is its text."""
    name = element.get("name") or element.get("label") or element.get("placeholder")
    if not name and element.get("tag") not in ("input", "textarea", "select"):
        name = element.get("text")
    return str(name or "")


def _veto(recorded: Mapping[str, Any], live: Mapping[str, Any]) -> str | None:
    r_role, l_role = recorded.get("role"), live.get("role")
    if r_role and r_role != l_role:
        return f"role {l_role} where {r_role} was recorded"
    r_type, l_type = recorded.get("type"), live.get("type")
    if r_type and l_type and r_type != l_type:
        return f"input type {l_type} where {r_type} was recorded"
    if (r_type == "password") != (l_type == "password") and (r_type or l_type):
        return "a password field is never taken for another field"
    r_tag, l_tag = recorded.get("tag"), live.get("tag")
    editable = {"input", "textarea", "select"}
    if r_tag and l_tag and (r_tag in editable) != (l_tag in editable):
        return f"<{l_tag}> where <{r_tag}> was recorded"
    return None


def score(
    recorded: Mapping[str, Any],
    live: Mapping[str, Any],
    neighbours: Sequence[Mapping[str, Any]] = (),
    texts: Sequence[Mapping[str, Any]] = (),
    rank: tuple[int, int] | None = None,
) -> Match:
    """Score ``live`` against the recorded target.

    ``neighbours``: the recorded named texts around the target (``text`` and the target's
    offset ``dx, dy`` from their centre); ``texts``: the live page's texts with boxes;
    ``rank``: (recorded rank, live rank) among same-role elements, when known.
    """
    match = Match(element=dict(live), score=0.0)
    match.veto = _veto(recorded, live)
    total = 0.0
    if recorded.get("role") and recorded.get("role") == live.get("role"):
        match.agreed.append(f"role {live['role']}")
    r_name, l_name = element_name(recorded), element_name(live)
    if r_name:
        sim = similarity(r_name, l_name)
        if sim == 1.0:
            total += 0.45
            match.agreed.append(f"name {r_name!r}")
        elif sim >= 0.5:  # a renamed label: weaker, other signals must add up
            total += 0.45 * sim
            match.agreed.append(f"name {r_name!r} ~ {l_name!r} ({sim:.2f})")
        else:
            match.disagreed.append(f"name {l_name!r} (recorded {r_name!r})")
    for key, weight in (("id", 0.25), ("field", 0.2)):
        if recorded.get(key):
            if recorded.get(key) == live.get(key):
                total += weight
                match.agreed.append(f"{key} {recorded[key]!r}")
            else:
                match.disagreed.append(f"{key} {live.get(key)!r} (recorded {recorded[key]!r})")
    r_type = recorded.get("type")
    common = ("text", "submit", "button", "checkbox", "radio")
    if r_type and r_type not in common and r_type == live.get("type"):
        total += 0.15  # an email, password, number... field is one of few
        match.agreed.append(f"input type {r_type}")
    r_text = recorded.get("text")
    if r_text and norm(r_text) != norm(r_name):
        sim = similarity(r_text, live.get("text"))
        if sim >= 0.5:
            total += 0.15 * sim
            match.agreed.append(f"text {r_text!r}" + ("" if sim == 1.0 else f" ({sim:.2f})"))
    if recorded.get("css_path") and recorded["css_path"] == live.get("css_path"):
        total += 0.1
        match.agreed.append("DOM path")
    total += _neighbour_score(match, neighbours, texts, live)
    if rank is not None and rank[0] == rank[1]:  # positional, like the DOM path: weak
        total += 0.05
        match.agreed.append(f"position {rank[0] + 1} among {live.get('role') or 'its kind'}")
    match.score = 0.0 if match.veto else min(1.0, total)
    return match


def _neighbour_score(
    match: Match,
    neighbours: Sequence[Mapping[str, Any]],
    texts: Sequence[Mapping[str, Any]],
    live: Mapping[str, Any],
) -> float:
    """Up to 0.3 for the recorded neighbours whose offset still lands on ``live``."""
    box = live.get("box")
    if not neighbours or not texts or not isinstance(box, Mapping):
        return 0.0
    hits: list[str] = []
    for neighbour in neighbours:
        wanted = norm(neighbour.get("text"))
        found = [t for t in texts if norm(t.get("text")) == wanted]
        if len(found) != 1 or neighbour.get("dx") is None:
            continue
        anchor = centre(found[0].get("box"))
        if anchor is None:
            continue
        predicted = (anchor[0] + float(neighbour["dx"]), anchor[1] + float(neighbour["dy"]))
        if _distance_to_box(predicted, box) <= NEAR_PX:
            hits.append(str(neighbour.get("text")))
    if hits:
        match.agreed.append("beside " + ", ".join(repr(h) for h in hits))
    return 0.3 * len(hits) / len(neighbours)


def same_role_rank(elements: Sequence[Mapping[str, Any]], element: Mapping[str, Any]) -> int | None:
    """The position of ``element`` among the elements of its role, in document order."""
    same = [
        e
        for e in elements
        if e.get("role") == element.get("role") and e.get("type") == element.get("type")
    ]
    for n, e in enumerate(same):
        if e.get("css_path") == element.get("css_path"):
            return n
    return None


def same_element(recorded: Mapping[str, Any], live: Mapping[str, Any] | None) -> Match | None:
    """Strict: is ``live`` (the element at the recorded point now) the recorded target?

    None when it is; else the Match that says what disagreed. The same element keeps its role
    and type and its accessible name, or its id, or its DOM path and text.
    """
    if live is None:
        return Match(element={}, score=0.0, disagreed=["no element at the point"])
    match = score(recorded, live)
    identity = (
        (element_name(recorded) and norm(element_name(recorded)) == norm(element_name(live)))
        or (recorded.get("id") and recorded.get("id") == live.get("id"))
        or (
            recorded.get("css_path")
            and recorded.get("css_path") == live.get("css_path")
            and norm(recorded.get("text")) == norm(live.get("text"))
        )
    )
    if match.veto is None and identity and match.score >= SAME_ELEMENT:
        return None
    if match.veto is None and not identity:
        match.disagreed.append("neither name, id nor DOM path and text are the recorded ones")
    return match


def neighbours_moved(
    recorded: Sequence[Mapping[str, Any]], live: Sequence[Mapping[str, Any]], name: str = ""
) -> str | None:
    """Strict: the texts recorded beside the target, against those beside the element now at
    the point (each with ``dx, dy``: the element's centre less the text's). None unless most
    of the texts found on both sides sit at another offset now (by more than ``NEAR_PX``):
    then a same-named element in another row or box is at the point, and this says so.
    Texts equal to the target's ``name`` (its twins in the other rows) tell nothing; the
    nearest text breaks a tie."""
    now: dict[str, list[tuple[float, float]]] = {}
    for text in live:
        if text.get("dx") is not None and text.get("dy") is not None:
            now.setdefault(norm(text.get("text")), []).append(
                (float(text["dx"]), float(text["dy"]))
            )
    agreed: list[str] = []
    moved: list[str] = []
    order: list[str] = []
    for text in recorded:
        offsets = now.get(norm(text.get("text")))
        if (
            norm(text.get("text")) == norm(name)
            or not offsets
            or text.get("dx") is None
            or text.get("dy") is None
        ):
            continue
        dx, dy = float(text["dx"]), float(text["dy"])
        near = any(((dx - x) ** 2 + (dy - y) ** 2) ** 0.5 <= NEAR_PX for x, y in offsets)
        (agreed if near else moved).append(str(text.get("text")))
        order.append(str(text.get("text")))
    # the nearest text found on both sides breaks a tie (neighbours are recorded nearest first)
    nearest_moved = bool(moved) and (not agreed or order.index(moved[0]) < order.index(agreed[0]))
    if len(moved) < len(agreed) or (len(moved) == len(agreed) and not nearest_moved):
        return None
    listed = ", ".join(repr(t) for t in moved)
    return f"the texts recorded beside it are elsewhere around it now: {listed}"


def decide(
    recorded: Mapping[str, Any],
    elements: Sequence[Mapping[str, Any]],
    texts: Sequence[Mapping[str, Any]] = (),
) -> Decision:
    """Heal: the live element that is the recorded target, or None when the evidence does not decide."""
    neighbours = [n for n in recorded.get("neighbours") or [] if isinstance(n, Mapping)]
    recorded_rank = recorded.get("rank")
    ranked = []
    for element in elements:
        rank = None
        if isinstance(recorded_rank, int):
            live_rank = same_role_rank(elements, element)
            rank = (recorded_rank, live_rank) if live_rank is not None else None
        ranked.append(score(recorded, element, neighbours, texts, rank))
    ranked.sort(key=lambda m: m.score, reverse=True)
    ranked = [m for m in ranked if m.veto is None]
    if not ranked or ranked[0].score < ACCEPT:
        best = ranked[0].rule if ranked else "no candidate of the recorded role and type"
        return Decision(None, f"no element scores {ACCEPT:.2f} or more (best: {best})", ranked[:3])
    best = ranked[0]
    runner_up = ranked[1].score if len(ranked) > 1 else 0.0
    if best.score - runner_up < MARGIN:
        return Decision(
            None,
            f"ambiguous: best {best.rule} but the next scores {runner_up:.2f}"
            f" (a margin of {MARGIN:.2f} is needed)",
            ranked[:3],
        )
    return Decision(best, f"{best.rule} (next best {runner_up:.2f})", ranked[:3])
