"""Outcome checks of a replay: what a recorded step expected to see, checked on the live screen.

- a scenario's ``expect`` and ``wait_for`` steps (text, title, url, image; ``not``/``gone``);
- the page or window that followed a step: the next recorded step's URL (path, query and
  fragment: the host may differ) and title, or window title on a desktop;
- typing: the focused field holds the typed text (checked in a browser).

Text is read from the DOM in a browser (``document.body.innerText``), by OCR elsewhere.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from guiagent.core.env import DomSource, Environment
from guiagent.record import compare
from guiagent.record.dom_probe import has_dom, install
from guiagent.record.trajectory import StepRecord

EXPECT_TIMEOUT_S = 2.0
WAIT_FOR_TIMEOUT_S = 5.0
POLL_S = 0.1


def match_pattern(pattern: str, value: str) -> bool:
    """A glob, or a regular expression after ``re:`` (searched)."""
    if pattern.startswith("re:"):
        return re.search(pattern[3:], value) is not None
    return fnmatch.fnmatchcase(value, pattern)


def _page_key(url: str) -> str:
    parts = urlsplit(url)
    return (
        parts.path
        + ("?" + parts.query if parts.query else "")
        + ("#" + parts.fragment if parts.fragment else "")
    )


def _path(url: str) -> str:
    return urlsplit(url).path


class OutcomeChecker:
    """Checks outcomes on one environment; ``grounder`` reads text where there is no DOM."""

    def __init__(self, env: Environment, grounder: Any = None, settle_timeout: float = 2.0) -> None:
        self.env, self.grounder, self.settle_timeout = env, grounder, settle_timeout
        self.dom = has_dom(env)
        self.start_page: tuple[str, str] | None = None  # (recorded, live) when they differ

    async def start(self, steps: list[StepRecord]) -> None:
        """Note the page the replay starts on. When it is not the recorded first page (another
        variant or copy of it), the recorded first page stands for it: then paths are compared."""
        first = next((str(s.meta["url"]) for s in steps if s.meta.get("url")), None)
        if first is None:
            return
        # in a browser, the probe of every later page read is installed in the same call
        state = await install(self.env) if self.dom else await self._state()
        live = str(state.get("url") or "")
        if live and _page_key(first) != _page_key(live):
            self.start_page = (_path(first), _path(live))

    async def _state(self, with_text: bool = False) -> dict[str, Any]:
        if self.dom:
            text = "document.body ? document.body.innerText : ''" if with_text else "null"
            state: dict[str, Any] = await self.env.page.evaluate(  # type: ignore[attr-defined]
                f"() => ({{url: location.href, title: document.title, text: {text}}})"
            )
            if not with_text:
                state.pop("text", None)
            return state
        frame = await self.env.observe()
        return {
            "url": frame.meta.get("url"),
            "title": frame.meta.get("title") or frame.meta.get("window_title"),
            "frame": frame,
        }

    async def _text(self, state: dict[str, Any]) -> str:
        if "text" in state:
            return str(state["text"])
        if self.grounder is None:
            raise OutcomeUnchecked("reading text on this surface needs OCR (no grounder given)")
        from guiagent.record.locate import read_text

        lines = await read_text(self.grounder, state["frame"])
        return "\n".join(str(getattr(line, "text", "")) for line in lines)

    async def followed(self, step: StepRecord, seen: Mapping[str, Any] | None = None) -> str | None:
        """Is the live page/window the one ``step`` was recorded on? None if so, else why not.
        ``seen``: the page's url and title already read for this step (one round trip less)."""
        url, title = step.meta.get("url"), step.meta.get("title") or step.meta.get("window_title")
        if not url and not title:
            return None
        deadline = time.monotonic() + self.settle_timeout
        while True:
            state, seen = dict(seen) if seen else await self._state(), None
            problems = []
            if url and state.get("url") and not self._same_page(str(url), str(state["url"])):
                problems.append(
                    f"page {_page_key(str(state['url']))!r}, recorded {_page_key(str(url))!r}"
                )
            if title and state.get("title") is not None and str(state["title"]) != str(title):
                problems.append(f"title {state['title']!r}, recorded {title!r}")
            if not problems or time.monotonic() >= deadline:
                return "; ".join(problems) or None
            await asyncio.sleep(POLL_S)

    def _same_page(self, recorded: str, live: str) -> bool:
        if self.start_page is None:
            return _page_key(recorded) == _page_key(live)
        first_recorded, first_live = self.start_page
        if _path(recorded) == first_recorded:
            return _path(live) == first_live
        return _path(recorded) == _path(live)

    async def scenario_check(
        self, kind: str, spec: Mapping[str, Any], base: Path | None
    ) -> str | None:
        """An ``expect`` or ``wait_for`` of a scenario recording, on the live screen: None or why it failed."""
        if kind == "wait_for":
            limit = float(spec.get("timeout") or WAIT_FOR_TIMEOUT_S)
        else:
            limit = float(spec["timeout"]) if spec.get("timeout") is not None else EXPECT_TIMEOUT_S
        negate = bool(spec.get("not") or spec.get("gone"))
        deadline = time.monotonic() + limit
        while True:
            problems = await self._problems(spec, negate, base)
            if not problems or time.monotonic() >= deadline:
                return "; ".join(problems) or None
            await asyncio.sleep(POLL_S)

    async def _problems(
        self, spec: Mapping[str, Any], negate: bool, base: Path | None
    ) -> list[str]:
        state = await self._state(with_text=spec.get("text") is not None)
        problems: list[str] = []
        for key in ("title", "url"):
            pattern = spec.get(key)
            if pattern is None:
                continue
            seen = str(state.get(key) or "")
            if match_pattern(str(pattern), seen) == negate:
                problems.append(
                    f"{key} {'matches' if negate else 'is not'} {pattern!r}; seen {seen!r}"
                )
        if spec.get("text") is not None:
            text, body = str(spec["text"]), await self._text(state)
            if spec.get("exact"):
                present = any(line.strip() == text for line in body.splitlines())
            else:
                present = compare.normalise_text(text) in compare.normalise_text(body)
            if present and isinstance(self.env, DomSource):
                # innerText holds text nobody sees (covered, transparent, clipped...)
                elements = await self.env.dom_elements(accessible_names=False)
                present = not unseen_only(text, elements)
            if present == negate:
                problems.append(
                    f"text {text!r} is {'visible but should not be' if negate else 'not visible'}"
                )
        if spec.get("image") is not None:
            problems.extend(await self._image_problems(str(spec["image"]), negate, base))
        return problems

    async def _image_problems(self, image: str, negate: bool, base: Path | None) -> list[str]:
        from PIL import Image

        path = Path(image) if Path(image).is_absolute() or base is None else base / image
        if not path.is_file():
            raise OutcomeUnchecked(f"the expected image {image} is not at {path}")
        frame = await self.env.observe()
        with Image.open(path) as im:
            found = compare.template_match(frame.image, im.convert("RGB"), frame.transform.scale)
        present = found is not None and found[0] >= 0.8
        return (
            [f"image {image} is {'visible but should not be' if negate else 'not visible'}"]
            if present == negate
            else []
        )

    async def typed(self, text: str, secret: bool, meant: str | None = None) -> str | None:
        """After typing: the field the text was meant for (css_path ``meant``, the field the
        replay clicked; else the focused one) holds the text (browser). None when it does,
        else why not: the text went to another field, or did not show in time."""
        if not self.dom or not text:
            return None
        from guiagent.record.dom_probe import typed_fields, typed_verdict

        shown = "the secret text" if secret else repr(text)
        deadline = time.monotonic() + self.settle_timeout
        while True:
            found = await typed_fields(self.env, text, meant)
            field, target = found.get("focused"), found.get("meant")
            verdict = typed_verdict(field, target)
            if verdict == "landed":
                return None
            if verdict == "elsewhere":
                assert field is not None and target is not None
                return (
                    f"{shown} went to {field.get('role')} {field.get('name')!r}, not the field "
                    f"the replay clicked ({target.get('role')} {target.get('name')!r}): the "
                    "page moved the focus while typing"
                )
            if time.monotonic() >= deadline:
                where = target if target is not None else field or {}
                which = "the clicked field" if target is not None else "the focused field"
                return f"{shown} is not in {which} ({where.get('role')} {where.get('name')!r})"
            await asyncio.sleep(POLL_S)


def unseen_only(text: str, elements: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every page element (a DOM snapshot's) whose text holds ``text`` is one a
    person cannot see, or shows only a part of it without ``text`` (its ``unseen`` and
    ``shown``). False when no element holds it alone (a phrase across elements, or below
    the fold): the page's text decides then."""
    wanted = compare.normalise_text(text)

    def full(element: Mapping[str, Any]) -> str:
        return f"{element.get('text') or ''}{element.get('more_text') or ''}"

    holding = [e for e in elements if wanted in compare.normalise_text(full(e))]
    seen = [
        e
        for e in holding
        if not e.get("unseen")
        and wanted in compare.normalise_text(e["shown"] if e.get("shown") is not None else full(e))
    ]
    return bool(holding) and not seen


class OutcomeUnchecked(Exception):
    """An outcome this replay cannot check (no OCR on a desktop, a missing expected image)."""
