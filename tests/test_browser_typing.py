"""Type actions in the browser send their key events over CDP without a round trip per key
(guiagent.envs.browser_typing): what the page sees must be exactly what Playwright's
``keyboard.type`` gives it. Each page is typed into both ways and the logs compared."""

from __future__ import annotations

import html as html_lib
import urllib.parse
from typing import Any

import pytest

from guiagent.core.actions import Key, Type
from guiagent.core.killswitch import Killed, KillSwitch
from guiagent.envs.browser import TYPE_CHUNK, BrowserEnv

# every key and input event (capture phase, on the window) with what a handler reads
LOGGER_JS = """
window.log = [];
for (const kind of ['keydown', 'keypress', 'beforeinput', 'input', 'keyup'])
  addEventListener(kind, e => log.push([kind, e.target.id, e.key ?? null, e.code ?? null,
    e.keyCode ?? null, e.shiftKey ?? null, e.ctrlKey ?? null, e.repeat ?? null,
    e.inputType ?? null, e.data ?? null]), true);
"""

TEXTAREA_PAGE = f"<textarea id=t></textarea><script>{LOGGER_JS}</script>"

FORM_PAGE = f"""<form id=f><input id=q name=q><input id=other><button>Go</button></form><p id=sent></p>
<script>{LOGGER_JS}
f.addEventListener('submit', e => {{ e.preventDefault();
  sent.textContent += 'submitted ' + q.value + ';'; }});</script>"""

# the first keydown in #a moves the focus to #b: the rest of the text follows it
FOCUS_MOVE_PAGE = f"""<input id=a><input id=b><script>{LOGGER_JS}
let moved = false;
a.addEventListener('keydown', () => {{ if (!moved) {{ moved = true; b.focus(); }} }});
</script>"""

MIXED_TEXT = "Hello World, it's 42! @home #1 (a+b)*c=$5 ~ é\nSecond line: ok?"


def _data_url(html: str) -> str:
    return "data:text/html," + urllib.parse.quote(html)


async def _typed(env: BrowserEnv, html: str, focus: str, text: str, how: str) -> dict[str, Any]:
    page = env.page
    await page.goto(_data_url(html))  # a new window each time (set_content keeps globals)
    await page.focus(focus)
    if how == "playwright":
        await page.keyboard.type(text)
    else:
        await env.act(Type(text=text))
    return await page.evaluate(
        "() => ({log, values: [...document.querySelectorAll('input,textarea')]"
        ".map(e => [e.id, e.value]), sent: document.getElementById('sent')?.textContent})"
    )


def _both_ways(
    env: BrowserEnv, runner: Any, html: str, focus: str, text: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        before = env._typing.chunks_over_cdp
        expected = await _typed(env, html, focus, text, "playwright")
        got = await _typed(env, html, focus, text, "env")
        assert env._typing.chunks_over_cdp > before, "the env did not type over CDP"
        return expected, got

    return runner.run(go())


def test_mixed_text_in_a_textarea_gives_the_same_events_and_value(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))
    expected, got = _both_ways(env, async_runner, TEXTAREA_PAGE, "#t", MIXED_TEXT)
    assert got["values"] == [["t", MIXED_TEXT]]
    assert got["log"] == expected["log"]
    downs = [e for e in got["log"] if e[0] == "keydown"]
    assert len(downs) == len(MIXED_TEXT) - 1  # every character but "é" is a key press
    assert ["keydown", "t", "Enter", "Enter", 13, False, False, False, None, None] in downs
    assert ["keydown", "t", "H", "KeyH", 72, False, False, False, None, None] in downs
    assert ["input", "t", None, None, None, None, None, None, "insertText", "é"] in got["log"]


def test_enter_typed_in_an_input_submits_its_form(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))
    expected, got = _both_ways(env, async_runner, FORM_PAGE, "#q", "walk the dog\n")
    assert got["sent"] == "submitted walk the dog;"
    assert (got["log"], got["values"], got["sent"]) == (
        expected["log"],
        expected["values"],
        expected["sent"],
    )


def test_a_keydown_handler_moving_the_focus_splits_the_text_as_playwright_does(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))
    text = "split me across the two fields"
    expected, got = _both_ways(env, async_runner, FOCUS_MOVE_PAGE, "#a", text)
    assert got["values"] == expected["values"]
    assert got["log"] == expected["log"]
    values = dict(got["values"])
    assert values["a"] + values["b"] == text and values["b"], values


def test_a_text_longer_than_a_chunk_types_every_key_in_order(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))
    text = "".join(chr(ord("a") + i % 26) + ("A" if i % 7 == 0 else "") for i in range(150))
    assert len(text) > 2 * TYPE_CHUNK
    expected, got = _both_ways(env, async_runner, TEXTAREA_PAGE, "#t", text)
    assert got["values"] == [["t", text]]
    assert got["log"] == expected["log"]


class TripAt(KillSwitch):
    """A kill switch that trips itself at its ``n``-th check."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.calls = n, 0

    def check(self) -> None:
        self.calls += 1
        if self.calls == self.n:
            self.trigger("tripped between chunks by the test")
        super().check()


def test_the_kill_switch_stops_typing_between_chunks(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))
    text = "x" * (3 * TYPE_CHUNK)

    async def go() -> tuple[str, str]:
        await env.page.goto(_data_url(TEXTAREA_PAGE))
        await env.page.focus("#t")
        # checks: once by act(), then before each chunk: the 3rd is before the 2nd chunk
        env.killswitch = TripAt(3)
        try:
            await env.act(Type(text=text))
        except Killed as exc:
            killed = str(exc)
        else:
            killed = ""
        finally:
            env.killswitch = None
        return killed, await env.page.input_value("#t")

    killed, value = async_runner.run(go())
    assert "tripped between chunks" in killed
    assert value == "x" * TYPE_CHUNK


def test_after_a_chord_fails_midway_typing_honours_playwrights_held_key(
    browser_env_factory: Any, async_runner: Any
) -> None:
    """Playwright's keyboard keeps Control down when a chord's later key is unknown; its
    keyboard.type then types with Control held, and so does the env (through it)."""
    env = browser_env_factory(viewport=(640, 480))

    async def go() -> tuple[str, list[Any], str]:
        await env.page.goto(_data_url(TEXTAREA_PAGE))
        await env.page.focus("#t")
        with pytest.raises(Exception, match="Unknown key"):
            await env.act(Key(keys=["ctrl", "é"]))
        await env.page.evaluate("() => { log = []; }")
        await env.act(Type(text="kk"))
        log = await env.page.evaluate("log")
        value = await env.page.input_value("#t")
        await env.page.keyboard.up("Control")
        return value, log, str(env._typing.keys_may_be_held)

    value, log, held = async_runner.run(go())
    downs = [e for e in log if e[0] == "keydown"]
    assert held == "True"
    assert [(e[2], e[6]) for e in downs] == [("k", True), ("k", True)]
    assert value == ""


def test_a_detached_session_is_replaced_before_the_next_text(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))

    async def go() -> tuple[str, int]:
        await env.page.goto(_data_url(TEXTAREA_PAGE))
        await env.page.focus("#t")
        await env.act(Type(text="one "))
        await env._typing._session.detach()  # e.g. a debugger client detached it
        await env.act(Type(text="two"))
        return await env.page.input_value("#t"), env._typing.chunks_over_cdp

    value, over_cdp = async_runner.run(go())
    assert value == "one two"
    assert over_cdp == 2


def test_a_field_inside_an_iframe_gets_the_same_events(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(viewport=(640, 480))
    inner = f"<input id=inner><script>{LOGGER_JS}</script>"
    html = '<iframe id=f srcdoc="' + html_lib.escape(inner, quote=True) + '"></iframe>'
    text = "Inside: A1!"

    async def typed(how: str) -> tuple[Any, str]:
        await env.page.goto(_data_url(html))
        frame = env.page.frame_locator("#f")
        await frame.locator("#inner").focus()
        if how == "playwright":
            await env.page.keyboard.type(text)
        else:
            await env.act(Type(text=text))
        child = env.page.frames[1]
        return await child.evaluate("log"), await child.input_value("#inner")

    expected = async_runner.run(typed("playwright"))
    got = async_runner.run(typed("env"))
    assert got[1] == text
    assert sum(e[0] == "keydown" for e in got[0]) == len(text)
    assert got == expected
