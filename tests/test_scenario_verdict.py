"""Honest verdicts: steps that used to pass while the page showed the wrong result.

Each page here holds one pattern found on third-party pages (a label above its field, a
field named by aria-label and placeholder, a signed number, an item clipped by its scroll
box, a repeated anchor text, a field with no name, an icon that swaps its image on hover).
The steps either do the right thing (the page says so) or fail with a clear message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from guiagent.scenario.ground import StepFailure

pytestmark = pytest.mark.browser

LABEL_ABOVE = """<!doctype html><html><head><title>sign up</title>
<style>body{font:15px sans-serif;margin:24px;background:#eee} p{margin:10px 0}
label{display:block;font-weight:bold} input{width:160px}</style></head><body>
<p><label>Member name</label><input id="member"></p>
<p><label for="town">Town</label><input id="town"></p>
<p><input id="nameless"></p>
<div id="out"></div>
<script>for (const id of ['member', 'town', 'nameless'])
  document.getElementById(id).addEventListener('input', () => {
    document.getElementById('out').textContent = ['member', 'town', 'nameless']
      .map((k) => k + '=' + document.getElementById(k).value).join(' '); });</script>
</body></html>"""

PLACEHOLDER_ARIA = """<!doctype html><html><head><title>notes</title>
<style>body{font:16px sans-serif;margin:0;background:#bbb} div{width:420px;margin:60px auto;background:#fff}
input{width:100%;box-sizing:border-box;padding:12px 12px 12px 48px;font-size:20px;border:none}</style></head>
<body><div><input id="n" aria-label="Note entry" placeholder="Write a note here"></div>
<p id="out">saved: none</p>
<script>document.getElementById('n').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') document.getElementById('out').textContent = 'saved: ' + e.target.value; });</script>
</body></html>"""

SIGNED = """<!doctype html><html><head><title>score</title>
<style>body{font:18px sans-serif;margin:24px}</style></head>
<body><p>Score change: <b>-2.50</b></p><p>Price: <b>$40</b></p></body></html>"""

CLIPPED = """<!doctype html><html><head><title>list</title>
<style>body{font:14px sans-serif;margin:0} #box{height:90px;width:220px;overflow-y:auto;border:1px solid #888}
#box button{display:block;width:200px;height:22px;border:0;background:#def;margin:0}
#trap{position:absolute;left:0;top:92px;width:220px;height:70px;background:#a00;color:#fff;border:0}
#out{position:absolute;left:300px;top:20px}</style></head>
<body><div id="box"></div><button id="trap" onclick="say('TRAP HIT')">Reset all</button>
<div id="out">none</div>
<script>function say(t) { document.getElementById('out').textContent = t; }
for (let i = 1; i <= 15; i++) { const b = document.createElement('button'); b.textContent = 'Row ' + i;
  b.onclick = () => say('picked Row ' + i); document.getElementById('box').appendChild(b); }</script>
</body></html>"""

COVERED = """<!doctype html><html><head><title>covered</title>
<style>body{font:16px sans-serif;margin:30px} #veil{position:fixed;left:0;top:0;width:400px;height:200px;background:rgba(0,0,0,.05)}</style></head>
<body><button onclick="document.getElementById('out').textContent='paid'">Pay now</button>
<div id="veil"></div><p id="out" style="margin-top:200px">unpaid</p></body></html>"""

REPEATED_ANCHOR = """<!doctype html><html><head><title>rows</title>
<style>body{font:15px sans-serif;margin:20px} .r{display:flex;gap:30px;height:32px;align-items:center}
.r span{width:100px}</style></head>
<body><p>Archive the file of <b>Dora</b>.</p>
<div class="r"><span>Evan</span><button onclick="done('Evan')">Archive</button></div>
<div class="r"><span>Dora</span><button onclick="done('Dora')">Archive</button></div>
<p id="out">archived: none</p>
<script>function done(n) { document.getElementById('out').textContent = 'archived: ' + n; }</script>
</body></html>"""

HOVER_SWAP = """<!doctype html><html><head><title>hover</title>
<style>body{font:16px sans-serif;margin:20px} .ic{content:url(idle.png);height:20px;cursor:pointer}
.ic:hover{content:url(hover.png)}</style></head>
<body><p>Play <span class="ic" id="ic"></span></p><p id="out">plays: 0</p>
<script>let n = 0; document.getElementById('ic').addEventListener('click', () => {
  document.getElementById('out').textContent = 'plays: ' + (++n); });</script></body></html>"""


def _icon(path: Path, colour: tuple[int, int, int], size: int) -> None:
    image = Image.new("RGB", (size, size), (255, 255, 255))
    for x in range(size):
        for y in range(size):
            if (x - size / 2) ** 2 + (y - size / 2) ** 2 < (size / 2.4) ** 2:
                image.putpixel((x, y), colour)
            if size / 3 < x < size / 1.6 and abs(y - size / 2) < (x - size / 3):
                image.putpixel((x, y), (255, 255, 255))
    image.save(path)


def _ui_run(
    async_runner: Any,
    browser: Any,
    grounder: Any,
    html: str,
    tmp_path: Path,
    steps: Any,
    viewport: tuple[int, int] = (640, 400),
) -> Any:
    """Serve ``html`` as a file, run ``steps(ui)``; return (its result or exception, page text)."""
    from guiagent.envs.browser import BrowserEnv
    from guiagent.scenario.ui import UI

    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")

    async def go() -> tuple[Any, str]:
        async with BrowserEnv(start_url=page.as_uri(), browser=browser, viewport=viewport) as env:
            ui = UI(env, grounder, base_dir=tmp_path, step_timeout=1.0)
            try:
                outcome: Any = await steps(ui)
            except StepFailure as exc:
                outcome = exc
            text = await env.page.evaluate("document.body.innerText")
            return outcome, text

    return async_runner.run(go(), timeout=240)


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


def test_type_into_a_label_without_for_types_into_its_field(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.type("alice", into="Member name")
        await ui.type("bob", into={"text": "Town", "role": "textbox"})

    outcome, text = _ui_run(
        async_runner, playwright_browser, grounder, LABEL_ABOVE, tmp_path, steps
    )
    assert not isinstance(outcome, Exception), outcome
    assert "member=alice town=bob nameless=" in text


def test_role_alone_with_nth_reaches_a_field_without_a_name(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.type("carol", into={"role": "textbox", "nth": 3})

    outcome, text = _ui_run(
        async_runner, playwright_browser, grounder, LABEL_ABOVE, tmp_path, steps
    )
    assert not isinstance(outcome, Exception), outcome
    assert "nameless=carol" in text and "member= " in text


def test_a_role_alone_without_nth_is_ambiguous(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.click({"role": "textbox"})

    outcome, _ = _ui_run(async_runner, playwright_browser, grounder, LABEL_ABOVE, tmp_path, steps)
    assert isinstance(outcome, StepFailure)
    assert "3 equally good matches" in str(outcome)


def test_a_field_answers_to_its_placeholder_and_its_aria_label(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.type("first", into="Write a note here", enter=True)
        await ui.expect("saved: first")
        await ui.type("+more", into={"text": "Note entry", "role": "textbox"}, enter=True)
        await ui.expect("saved: first+more")

    outcome, text = _ui_run(
        async_runner, playwright_browser, grounder, PLACEHOLDER_ARIA, tmp_path, steps
    )
    assert not isinstance(outcome, Exception), outcome
    assert "saved: first+more" in text


def test_typing_that_reaches_no_field_fails_saying_where_focus_went(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.type("lost", into="Score change:")  # a text, no field anywhere

    outcome, _ = _ui_run(async_runner, playwright_browser, grounder, SIGNED, tmp_path, steps)
    assert isinstance(outcome, StepFailure)
    assert "did not focus a text field: focus is on" in str(outcome)


@pytest.mark.parametrize(
    ("spec", "present"),
    [
        ({"text": "2.50", "exact": True}, False),  # the page shows -2.50
        ({"text": "-2.50", "exact": True}, True),
        ({"text": "Score change: 2.50"}, False),  # a sign is not an OCR misreading
        ({"text": "Score change: -2.50"}, True),
        ({"text": "Price: 40"}, False),  # nor a currency symbol
        ({"text": "Price: $40"}, True),
    ],
)
def test_expect_never_forgives_a_sign_or_a_currency_symbol(
    spec: dict[str, Any],
    present: bool,
    async_runner: Any,
    playwright_browser: Any,
    grounder: Any,
    tmp_path: Path,
) -> None:
    async def steps(ui: Any) -> None:
        await ui.expect(**spec, timeout=0.3)

    outcome, _ = _ui_run(async_runner, playwright_browser, grounder, SIGNED, tmp_path, steps)
    if present:
        assert not isinstance(outcome, Exception), outcome
    else:
        assert isinstance(outcome, StepFailure), f"{spec} passed on a page showing -2.50 and $40"


def test_a_click_on_an_item_clipped_by_its_scroll_box_scrolls_it_into_view(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.click("Row 5")

    outcome, text = _ui_run(async_runner, playwright_browser, grounder, CLIPPED, tmp_path, steps)
    assert not isinstance(outcome, Exception), outcome
    assert "picked Row 5" in text and "TRAP HIT" not in text


def test_a_click_on_a_covered_button_fails_naming_what_is_in_the_way(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.click("Pay now")

    outcome, text = _ui_run(async_runner, playwright_browser, grounder, COVERED, tmp_path, steps)
    assert isinstance(outcome, StepFailure)
    assert "<div#veil> is drawn there" in str(outcome)
    assert "unpaid" in text


def test_near_an_ambiguous_anchor_is_an_ambiguity_error(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.click({"text": "Archive", "role": "button", "near": "Dora"})

    outcome, text = _ui_run(
        async_runner, playwright_browser, grounder, REPEATED_ANCHOR, tmp_path, steps
    )
    assert isinstance(outcome, StepFailure)
    assert 'the near text "Dora"' in str(outcome) and "2 places" in str(outcome)
    assert "archived: none" in text


def test_a_click_on_an_icon_that_swaps_on_hover_fires(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    _icon(tmp_path / "idle.png", (30, 90, 200), 20)
    _icon(tmp_path / "hover.png", (230, 120, 20), 20)
    _icon(tmp_path / "template.png", (30, 90, 200), 20)

    async def steps(ui: Any) -> None:
        await ui.click({"image": "template.png"})
        await ui.expect("plays: 1")

    outcome, text = _ui_run(async_runner, playwright_browser, grounder, HOVER_SWAP, tmp_path, steps)
    assert not isinstance(outcome, Exception), outcome
    assert "plays: 1" in text


HOVER_MENU = """<!doctype html><html><head><title>menu</title>
<style>body{font:16px sans-serif;margin:20px} #menu{display:inline-block;padding:6px;background:#ddd}
#items{display:none} #menu:hover #items{display:block}</style></head>
<body><div id="menu">Tools<div id="items">Export report</div></div></body></html>"""


def test_hover_opens_a_hover_menu_without_pressing(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.expect("Export report", not_=True, timeout=0.3)
        await ui.hover("Tools")
        await ui.expect("Export report")

    outcome, _ = _ui_run(async_runner, playwright_browser, grounder, HOVER_MENU, tmp_path, steps)
    assert not isinstance(outcome, Exception), outcome


def test_yaml_accepts_a_role_alone_and_hover() -> None:
    from guiagent.scenario.schema import scenario_from_data

    scenario = scenario_from_data(
        {
            "name": "role",
            "target": {"url": "about:blank"},
            "steps": [
                {"type": {"text": "x", "into": {"role": "textbox", "nth": 2}}},
                {"hover": "Tools"},
            ],
        }
    )
    into = scenario.steps[0].value.into
    assert (into.role, into.nth, into.text) == ("textbox", 2, None)
    assert into.describe() == "a textbox (nth=2)"
    assert scenario.steps[1].kind == "hover"
