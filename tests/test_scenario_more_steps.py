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
