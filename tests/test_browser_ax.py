"""Accessible names in DOM snapshots stay right when they are reused between snapshots.

The accessibility tree is read again only when the page changed (envs/browser_ax.py); each
test changes a name in one way and checks that the next snapshot has the new name.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

PAGE = (
    "data:text/html,<button id=b aria-label=Open>x</button>"
    "<label for=f id=l>Town</label><input id=f>"
    "<div id=host></div><script>"
    "const root = document.getElementById('host').attachShadow({mode: 'open'});"
    "root.innerHTML = '<button id=s>Alpha</button>';</script>"
)


def _names(elements: list[dict[str, Any]]) -> dict[str, str | None]:
    return {str(e.get("tag")) + ":" + str(e.get("text") or ""): e.get("ax_name") for e in elements}


def _ax_name_of(elements: list[dict[str, Any]], tag: str, text: str = "") -> str | None:
    for element in elements:
        if element.get("tag") == tag and (not text or element.get("text") == text):
            return element.get("ax_name")
    raise AssertionError(f"no {tag} {text!r} in {_names(elements)}")


def test_names_follow_attribute_text_and_shadow_changes(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=PAGE)

    async def go() -> list[tuple[str | None, str | None, str | None]]:
        seen = []
        for change in (
            None,
            "document.getElementById('b').setAttribute('aria-label', 'Close')",
            "document.getElementById('l').textContent = 'City'",
            "document.getElementById('host').shadowRoot.getElementById('s').textContent = 'Beta'",
        ):
            if change is not None:
                await env.page.evaluate(f"() => {{ {change}; }}")
            elements = await env.dom_elements()
            again = await env.dom_elements()  # unchanged page: the names are reused as they were
            assert _names(again) == _names(elements)
            shadow = next(e for e in elements if e.get("tag") == "button" and e.get("id") == "s")
            seen.append(
                (
                    _ax_name_of(elements, "button", "x"),
                    _ax_name_of(elements, "input"),
                    shadow.get("ax_name"),
                )
            )
        return seen

    seen = async_runner.run(go())
    assert seen == [
        ("Open", "Town", "Alpha"),
        ("Close", "Town", "Alpha"),
        ("Close", "City", "Alpha"),
        ("Close", "City", "Beta"),
    ]


def test_names_are_read_again_on_a_new_document(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url="data:text/html,<button aria-label=First>x</button>")

    async def go() -> tuple[str | None, str | None]:
        first = _ax_name_of(await env.dom_elements(), "button")
        await env.page.goto("data:text/html,<button aria-label=Second>x</button>")
        return first, _ax_name_of(await env.dom_elements(), "button")

    assert async_runner.run(go()) == ("First", "Second")
