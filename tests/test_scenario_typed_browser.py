"""A browser ``type into`` passes only when the field it named holds the text.

The focused field holding the text is not enough: a page that moves the focus to another
field on the first key puts the text there, and the step must fail saying so."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser

FIELDS = "<label for=a>Name</label><input id=a><label for=b>Other</label><input id=b maxlength=40>"


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


def _type(env: Any, async_runner: Any, grounder: Any, text: str) -> tuple[str | None, str, str]:
    from guiagent.scenario.ui import UI, StepFailure

    async def go() -> tuple[str | None, str, str]:
        ui = UI(env, grounder)
        error = None
        try:
            await ui.type(text, into="Name")
        except StepFailure as exc:
            error = str(exc)
        return error, await env.page.input_value("#a"), await env.page.input_value("#b")

    return async_runner.run(go())


def test_text_the_page_sent_to_another_field_fails_the_step(
    browser_env_factory: Any, async_runner: Any, grounder: Any
) -> None:
    script = "<script>a.addEventListener('keydown',()=>b.focus(),{once:true})</script>"
    env = browser_env_factory(start_url="data:text/html," + FIELDS + script)
    error, name, other = _type(env, async_runner, grounder, "alice")
    assert (name, other) == ("", "alice")  # the page really put it in the other field
    assert error is not None, "typed into 'Other' but the step passed"
    assert "went to" in error and "#b" in error and "Name" in error, error


def test_a_field_that_holds_the_text_passes_when_the_page_moves_on_after_it(
    browser_env_factory: Any, async_runner: Any, grounder: Any
) -> None:
    """A code field that jumps to the next one once full: the named field holds the text."""
    script = "<script>a.addEventListener('input',()=>{if(a.value.length>=5)b.focus()})</script>"
    env = browser_env_factory(start_url="data:text/html," + FIELDS + script)
    error, name, other = _type(env, async_runner, grounder, "12345")
    assert (name, other) == ("12345", "")
    assert error is None, error


def test_a_field_replaced_while_typing_is_judged_by_the_focused_one(
    browser_env_factory: Any, async_runner: Any, grounder: Any
) -> None:
    """A framework that swaps the input node on the first key (focus kept on the new one):
    the field meant is gone from the page, the focused field holds the text: a pass."""
    script = (
        "<script>a.addEventListener('keydown',()=>{const n=a.cloneNode();n.id='a';"
        "a.replaceWith(n);n.focus()},{once:true})</script>"
    )
    env = browser_env_factory(start_url="data:text/html," + FIELDS + script)
    error, name, other = _type(env, async_runner, grounder, "bob")
    assert (name, other) == ("bob", "")
    assert error is None, error
