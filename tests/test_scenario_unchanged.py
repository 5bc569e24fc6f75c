"""A scenario step reuses the last frame only while nothing on the page could have changed.

The browser's change token (envs/browser_quiet.py) stays the same while no DOM mutation,
input, scroll, load, focus change or animation happened; then the next check reads the
frame and DOM it already has. Every other case must capture again: each test makes one such
change that no DOM mutation shows and checks that the next frame has it.
"""

from __future__ import annotations

from typing import Any

import pytest

from guiagent.core.geometry import Point

pytestmark = pytest.mark.browser

PAGE = (
    "data:text/html,<style>body{margin:0;height:3000px}"
    "%23box{position:absolute;left:20px;top:60px;width:120px;height:80px;background:rgb(255,255,255)}"
    "%23box:hover{background:rgb(0,0,200)}</style><h1>Top</h1><div id=box></div>"
)


def _ui(env: Any) -> Any:
    from guiagent.grounding.local import LocalGrounder
    from guiagent.scenario.ui import UI

    return UI(env, LocalGrounder())


def _pixel(frame: Any, x: float, y: float) -> Any:
    point = frame.transform.screen_to_frame(Point(x, y))
    return frame.image.getpixel((int(point.x), int(point.y)))


def test_an_unchanged_page_gives_the_same_frame_and_a_change_a_new_one(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=PAGE)

    async def go() -> tuple[bool, bool, Any]:
        ui = _ui(env)
        await ui.expect("Top")
        first = await ui.observe_with_dom()
        same = (await ui.observe_with_dom()) is first
        await env.page.evaluate("() => { document.querySelector('h1').textContent = 'Moved'; }")
        after = await ui.observe_with_dom()
        return same, after is first, [e.get("text") for e in (await ui.dom()) or []]

    same, reused_after_change, texts = async_runner.run(go())
    assert same
    assert not reused_after_change
    assert "Moved" in texts


def test_a_scroll_is_seen_by_the_next_frame(browser_env_factory: Any, async_runner: Any) -> None:
    env = browser_env_factory(start_url=PAGE)

    async def go() -> tuple[Any, Any]:
        ui = _ui(env)
        before = await ui.observe_with_dom()
        await env.page.evaluate("() => window.scrollTo(0, 300)")
        after = await ui.observe_with_dom()
        return before.meta["scroll"], after.meta["scroll"]

    before, after = async_runner.run(go())
    assert before == [0, 0]
    assert after == [0, 300]


def test_a_hover_style_is_seen_by_the_next_frame(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=PAGE)

    async def go() -> tuple[Any, Any]:
        ui = _ui(env)
        before = await ui.observe_with_dom()
        await env.page.mouse.move(80, 100)  # onto the box: only its :hover style changes
        after = await ui.observe_with_dom()
        return _pixel(before, 80, 100), _pixel(after, 80, 100)

    before, after = async_runner.run(go())
    assert before == (255, 255, 255)
    assert after == (0, 0, 200)


def test_a_canvas_drawing_is_seen_by_the_next_frame(
    browser_env_factory: Any, async_runner: Any
) -> None:
    env = browser_env_factory(
        start_url="data:text/html,<body style=margin:0><canvas id=c width=200 height=100></canvas>"
    )

    async def go() -> tuple[Any, Any]:
        ui = _ui(env)
        before = await ui.observe_with_dom()
        await env.page.evaluate(
            "() => { const g = document.getElementById('c').getContext('2d');"
            " g.fillStyle = 'rgb(200,0,0)'; g.fillRect(0, 0, 200, 100); }"
        )
        after = await ui.observe_with_dom()
        return _pixel(before, 50, 50), _pixel(after, 50, 50)

    before, after = async_runner.run(go())
    assert before != (200, 0, 0)
    assert after == (200, 0, 0)


SHADOW_PAGE = (
    "data:text/html,<h1>Top</h1><status-box></status-box>"
    "<template id=t><p>Pending</p></template><script>"
    "customElements.define('status-box', class extends HTMLElement {"
    " connectedCallback() { const root = this.attachShadow({mode: 'open'});"
    " root.append(document.getElementById('t').content.cloneNode(true));"
    " window.finish = () => { root.querySelector('p').textContent = 'Done'; }; } });"
    "</script>"
)


# a shadow root the parser makes (declarative shadow DOM): no attachShadow call to hook
DECLARATIVE_SHADOW_PAGE = (
    "data:text/html,<h1>Top</h1><div id=host><template shadowrootmode=open><p>Pending</p>"
    "</template></div><script>window.finish = () => {"
    " document.getElementById('host').shadowRoot.querySelector('p').textContent = 'Done'; };"
    "</script>"
)


@pytest.mark.parametrize("page", [SHADOW_PAGE, DECLARATIVE_SHADOW_PAGE], ids=["script", "parser"])
def test_a_change_inside_a_shadow_root_is_seen_by_the_next_check(
    page: str, browser_env_factory: Any, async_runner: Any
) -> None:
    """A shadow root's mutations reach no document-level observer: without watching the
    root itself the old frame would be reused, and an expect of the old text pass."""
    env = browser_env_factory(start_url=page)

    async def go() -> tuple[bool, list[Any]]:
        ui = _ui(env)
        await ui.expect("Pending")
        first = await ui.observe_with_dom()
        # a change with no input and no document-level mutation (a timer, a socket message)
        await env.page.evaluate("() => window.finish()")
        after = await ui.observe_with_dom()
        return after is first, [e.get("text") for e in (await ui.dom()) or []]

    reused, texts = async_runner.run(go())
    assert not reused
    assert "Done" in texts and "Pending" not in texts
