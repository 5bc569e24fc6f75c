"""Narrations as plain text (speech, terminals), SSML (speech engines) and JSON (other tools:
screen readers, Braille displays)."""

from __future__ import annotations

from typing import Literal
from xml.sax.saxutils import escape

from guiagent.narrate.schema import Announcement, Narration, Region

Format = Literal["text", "ssml", "json"]


def region_lines(region: Region) -> list[str]:
    announced = (region.kind != "body" or region.title) and not region.continued
    lines = [region.heading() + "."] if announced else []
    lines.extend(item.spoken() for item in region.items)
    return lines


def to_text(narration: Narration) -> str:
    """One line per item, each region introduced by its kind and title."""
    lines: list[str] = []
    if narration.description:
        lines.append(narration.description)
    for region in narration.regions:
        if region.kind == "title_bar" and not region.items and not region.title:
            continue
        lines.extend(region_lines(region))
    lines.extend(f"({note})" for note in narration.notes)
    return "\n".join(lines)


def to_ssml(narration: Narration) -> str:
    """SSML 1.1: a paragraph per region, a sentence per item, a pause between regions."""
    parts = ['<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en">']
    if narration.description:
        parts.append(f"<p><s>{escape(narration.description)}</s></p>")
    for region in narration.regions:
        lines = region_lines(region)
        if not lines:
            continue
        sentences = "".join(f"<s>{escape(line)}</s>" for line in lines)
        parts.append(f'<p>{sentences}</p><break time="300ms"/>')
    if narration.notes:
        parts.append("<p>" + "".join(f"<s>{escape(n)}</s>" for n in narration.notes) + "</p>")
    parts.append("</speak>")
    return "".join(parts)


def to_json(narration: Narration) -> str:
    return narration.model_dump_json(indent=2)


def render(narration: Narration, fmt: Format) -> str:
    if fmt == "text":
        return to_text(narration)
    if fmt == "ssml":
        return to_ssml(narration)
    if fmt == "json":
        return to_json(narration)
    raise ValueError(f"unknown format {fmt!r}: one of text, ssml, json")


def announcement_ssml(announcements: list[Announcement]) -> str:
    body = "".join(f"<s>{escape(a.text)}</s>" for a in announcements)
    return f'<speak version="1.1" xmlns="http://www.w3.org/2001/10/synthesis" xml:lang="en"><p>{body}</p></speak>'


def _key(label: str) -> str:
    return "".join(ch for ch in label.casefold() if ch.isalnum())


def compare_text(tree: Narration, pixels: Narration, width: int = 48) -> str:
    """The tree's narration beside the pixels', item by item; items the two share (same
    label, ignoring case and punctuation) on one line, the rest facing a blank."""
    from difflib import SequenceMatcher

    left, right = tree.items(), pixels.items()
    matcher = SequenceMatcher(
        a=[_key(i.label) for i in left], b=[_key(i.label) for i in right], autojunk=False
    )
    rows: list[tuple[str, str]] = []
    for op, a1, a2, b1, b2 in matcher.get_opcodes():
        if op == "equal":
            rows.extend(
                (left[a].spoken(), right[b].spoken())
                for a, b in zip(range(a1, a2), range(b1, b2), strict=True)
            )
            continue
        rows.extend((left[a].spoken(), "") for a in range(a1, a2))
        rows.extend(("", right[b].spoken()) for b in range(b1, b2))
    names = (
        f"tree ({', '.join(tree.sources) or 'nothing'})",
        f"pixels ({', '.join(pixels.sources) or 'nothing'})",
    )
    lines = [f"{names[0]:<{width}} | {names[1]}", "-" * width + "-+-" + "-" * width]
    lines.extend(f"{a[:width]:<{width}} | {b[:width]}" for a, b in rows)
    shared = sum(1 for a, b in rows if a and b)
    lines.append(f"{shared} of {len(left)} tree items also read from the pixels")
    return "\n".join(lines)
