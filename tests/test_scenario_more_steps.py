"""Step kinds real UIs need: select (native and ARIA), modifier clicks, scroll until a
target shows. Each runs in real Chromium and is checked against the page's own state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guiagent.scenario.ground import StepFailure

pytestmark = pytest.mark.browser

SELECTS = """<!doctype html><html><head><title>choices</title>
<style>body{font:16px sans-serif;margin:24px} p{margin:14px 0}
[role=option]{padding:4px 8px;cursor:pointer} [role=option][aria-selected=true]{background:#9cf}
#size{border:1px solid #888;width:160px}</style></head><body>
<p><label for="colour">Colour</label> <select id="colour">
<option>Red</option><option>Green</option><option>Blue</option><option>Black</option></select></p>
<p><span id="size-label">Size</span></p>
<div id="size" role="listbox" aria-labelledby="size-label">
<div role="option" aria-selected="true">Small</div><div role="option">Medium</div>
<div role="option">Large</div></div>
<p id="out">none</p>
<script>
const out = () => { document.getElementById('out').textContent = 'colour=' +
  document.getElementById('colour').value + ' size=' +
  (document.querySelector('#size [aria-selected=true]') || {}).textContent; };
document.getElementById('colour').addEventListener('change', out);
for (const o of document.querySelectorAll('#size [role=option]'))
  o.addEventListener('click', () => {
    for (const p of document.querySelectorAll('#size [role=option]'))
      p.setAttribute('aria-selected', String(p === o));
    out(); });
</script></body></html>"""


def _ui_run(
    async_runner: Any,
    browser: Any,
    grounder: Any,
    html: str,
    tmp_path: Path,
    steps: Any,
    probe: str = "document.body.innerText",
) -> Any:
    """Serve ``html`` as a file, run ``steps(ui)``; return (its result or exception, probe)."""
    from guiagent.envs.browser import BrowserEnv
    from guiagent.scenario.ui import UI

    page = tmp_path / "page.html"
    page.write_text(html, encoding="utf-8")

    async def go() -> tuple[Any, Any]:
        async with BrowserEnv(start_url=page.as_uri(), browser=browser, viewport=(640, 400)) as env:
            ui = UI(env, grounder, base_dir=tmp_path, step_timeout=1.0)
            try:
                outcome: Any = await steps(ui)
            except StepFailure as exc:
                outcome = exc
            return outcome, await env.page.evaluate(probe)

    return async_runner.run(go(), timeout=240)


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


STATE = """[document.getElementById('colour').value,
  (document.querySelector('#size [aria-selected=true]') || {}).textContent]"""


def test_select_chooses_in_a_native_select_and_an_aria_listbox(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> list[str]:
        first = await ui.select("Blue", in_="Colour")
        second = await ui.do({"select": {"option": "Large", "in": "Size"}})
        third = await ui.select("Green", in_="Colour")
        return [first, second, third]

    outcome, state = _ui_run(
        async_runner, playwright_browser, grounder, SELECTS, tmp_path, steps, STATE
    )
    assert not isinstance(outcome, Exception), outcome
    assert state == ["Green", "Large"]
    assert 'has "Blue" selected' in outcome[0]


def test_select_of_a_missing_option_fails_naming_the_options(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.select("blue", in_="Colour")

    outcome, state = _ui_run(
        async_runner, playwright_browser, grounder, SELECTS, tmp_path, steps, STATE
    )
    assert isinstance(outcome, StepFailure)
    assert 'has no option "blue" (did you mean "Blue"?)' in str(outcome)
    assert state == ["Red", "Small"]  # nothing was changed


def test_select_fails_when_the_page_refuses_the_choice(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    # a listbox whose options ignore clicks: the selection stays on Small
    stubborn = SELECTS.replace("p.setAttribute('aria-selected', String(p === o));", "")

    async def steps(ui: Any) -> None:
        await ui.select("Medium", in_="Size")

    outcome, state = _ui_run(
        async_runner, playwright_browser, grounder, stubborn, tmp_path, steps, STATE
    )
    assert isinstance(outcome, StepFailure)
    assert 'shows "Small" selected after choosing "Medium"' in str(outcome)
    assert state == ["Red", "Small"]


LONG_LIST = """<!doctype html><html><head><title>list</title>
<style>body{font:15px sans-serif;margin:20px} h3{margin:4px 0}
#list{height:150px;width:240px;overflow-y:auto;border:1px solid #888}
#list button{display:block;width:220px;height:26px;border:0;background:#def;margin:2px 0}</style>
</head><body><h3>Pick one</h3><div id="list" role="list" aria-label="Items"></div>
<p id="out">picked none</p>
<script>for (let i = 1; i <= 45; i++) { const b = document.createElement('button');
  b.textContent = 'Item ' + i + (i === 40 ? ' gold' : '');
  b.onclick = () => { document.getElementById('out').textContent = 'picked ' + b.textContent; };
  document.getElementById('list').appendChild(b); }</script></body></html>"""

SHOWN = """(() => { const box = document.getElementById('list').getBoundingClientRect();
  const item = [...document.querySelectorAll('#list button')].find(
    (b) => b.textContent === 'Item 40 gold').getBoundingClientRect();
  return [document.getElementById('list').scrollTop > 0,
          item.bottom > box.top && item.top < box.bottom,
          document.getElementById('out').textContent]; })()"""


def test_scroll_until_brings_the_target_into_its_container(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> str:
        found = await ui.do({"scroll": {"until": "Item 40 gold", "in": "Items", "amount": 2}})
        await ui.click("Item 40 gold")
        return found

    outcome, state = _ui_run(
        async_runner, playwright_browser, grounder, LONG_LIST, tmp_path, steps, SHOWN
    )
    assert not isinstance(outcome, Exception), outcome
    assert "showed after" in outcome
    assert state == [True, True, "picked Item 40 gold"]


def test_scroll_until_fails_clearly_when_the_target_never_shows(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.scroll(until="Item 99", in_="Item 1", amount=5, max=3)

    outcome, state = _ui_run(
        async_runner, playwright_browser, grounder, LONG_LIST, tmp_path, steps, SHOWN
    )
    assert isinstance(outcome, StepFailure)
    assert '"Item 99" did not show after 3 scrolls down in "Item 1"' in str(outcome)
    assert state[0] is True  # it did scroll


def test_scroll_until_stops_at_the_end_of_the_list(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    async def steps(ui: Any) -> None:
        await ui.scroll(until="Item 99", in_="Item 1", amount=10, max=50)

    outcome, _ = _ui_run(
        async_runner, playwright_browser, grounder, LONG_LIST, tmp_path, steps, SHOWN
    )
    assert isinstance(outcome, StepFailure)
    assert "the view stopped moving after" in str(outcome)


def test_select_in_yaml_validates_and_bad_keys_are_named(tmp_path: Path) -> None:
    from guiagent.scenario.schema import ScenarioError, load_scenario

    good = tmp_path / "good.yaml"
    good.write_text(
        "target: {url: x.html}\nsteps:\n  - select: {option: Blue, in: Colour}\n", "utf-8"
    )
    step = load_scenario(good).steps[0]
    assert step.kind == "select" and step.value.option == "Blue"
    assert step.value.in_.text == "Colour"
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: {url: x.html}\nsteps:\n  - select: {value: Blue, in: C}\n", "utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    assert "bad.yaml:3: step 1 (select): unknown key 'value'" in str(caught.value)
