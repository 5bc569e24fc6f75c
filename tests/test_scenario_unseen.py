"""``expect`` counts only text a person can see on the page.

One page holds text that is in the DOM but not seen (transparent by an ancestor, drawn in the
background's colour, clipped, covered by a modal, folded in a closed <details>, an
attribute only, cut off by its box, an unchosen <select> option) beside text that is seen
though the DOM holds it oddly (split across elements, from CSS, in a field's value, under a
translucent veil or an empty layer, on a disabled button). Each must satisfy ``expect`` exactly when a person
would read it, and ``expect not`` exactly when not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guiagent.scenario.ground import StepFailure

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><title>unseen</title><style>
body{font:15px sans-serif;margin:90px 20px 20px;background:#fff} p,div{margin:3px 0}
#modal{position:absolute;left:0;top:0;width:360px;height:70px;background:#fff;border:1px solid #000}
#under{position:absolute;left:12px;top:12px;margin:0}
.clip{width:70px;overflow:hidden;white-space:nowrap}
#veil{position:absolute;left:0;top:96px;width:300px;height:24px;background:rgba(0,0,0,.08)}
#glass{position:absolute;left:0;top:116px;width:300px;height:30px}
.b::before{content:"Pseudo words"}
</style></head><body>
<p>Veiled words</p><div id="veil"></div>
<p id="behind">Behind glass</p><div id="glass"></div>
<div style="opacity:0"><span>Ghost parent</span></div>
<p style="color:#fff">White ink</p>
<p style="color:rgba(0,0,0,0)">Clear ink</p>
<div class="clip"><span>Head ............ Tail words</span></div>
<p id="under">Under the modal</p>
<details><summary>More</summary><p>Folded body</p></details>
<p><span title="Tooltip words">i</span> <button aria-label="Label only">x</button></p>
<div style="position:absolute;clip:rect(0 0 0 0);width:1px;height:1px;overflow:hidden">Reader words</div>
<div style="text-indent:-9999px">Cut by indent</div>
<p><b>Bo</b>ld split</p>
<p class="b"></p>
<input value="Field value words" style="width:200px">
<select><option>Red pick</option><option>Blue pick</option></select>
<p>Total: <span style="color:#fff">Ghost word</span> done</p>
<button disabled>Disabled words</button>
<div id="modal">Modal on top</div>
</body></html>"""

# text -> whether a person sees it
CASES = {
    "Veiled words": True,
    "Behind glass": True,  # under an empty layer (a click-catcher): still read
    "Ghost parent": False,
    "White ink": False,
    "Clear ink": False,
    "Tail words": False,
    "Under the modal": False,
    "Folded body": False,
    "Tooltip words": False,
    "Label only": False,
    "Reader words": False,
    "Cut by indent": False,
    "Bold split": True,
    "Pseudo words": True,
    "Field value words": True,
    "Red pick": True,
    "Blue pick": False,
    "Ghost word": False,
    "Total: done": True,
    "Disabled words": True,
    "Modal on top": True,
}


def test_expect_counts_only_text_a_person_sees(
    async_runner: Any, playwright_browser: Any, tmp_path: Path
) -> None:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.grounding.local import LocalGrounder
    from guiagent.scenario.ui import UI

    page = tmp_path / "page.html"
    page.write_text(PAGE, encoding="utf-8")

    async def passes(ui: Any, text: str, negate: bool) -> bool:
        try:
            await ui.expect(text, not_=negate, timeout=0)
        except StepFailure:
            return False
        return True

    async def go() -> dict[str, tuple[bool, bool]]:
        async with BrowserEnv(
            start_url=page.as_uri(), browser=playwright_browser, viewport=(640, 560)
        ) as env:
            ui = UI(env, LocalGrounder(), base_dir=tmp_path, step_timeout=0.5)
            return {t: (await passes(ui, t, False), await passes(ui, t, True)) for t in CASES}

    seen = async_runner.run(go(), timeout=240)
    # (expect passes, expect not passes): (True, False) when seen, (False, True) when not
    assert seen == {text: (shown, not shown) for text, shown in CASES.items()}


# what a replay's outcome check reads otherwise (the page's text, not its pixels): no CSS
# text nor a field's value, and the unseen word inside "Total: done"; the rest must agree
NOT_IN_PAGE_TEXT = {
    "Pseudo words",
    "Field value words",
    "Tooltip words",
    "Label only",
    "Total: done",
}


def test_a_replayed_expect_counts_only_text_a_person_sees(
    async_runner: Any, playwright_browser: Any, tmp_path: Path
) -> None:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.record.outcomes import OutcomeChecker

    page = tmp_path / "page.html"
    page.write_text(PAGE, encoding="utf-8")

    async def go() -> dict[str, tuple[bool, bool]]:
        async with BrowserEnv(
            start_url=page.as_uri(), browser=playwright_browser, viewport=(640, 560)
        ) as env:
            checker = OutcomeChecker(env)
            seen = {}
            for text in set(CASES) - NOT_IN_PAGE_TEXT:
                shown = await checker.scenario_check("expect", {"text": text, "timeout": 0}, None)
                hidden = await checker.scenario_check(
                    "expect", {"text": text, "not": True, "timeout": 0}, None
                )
                seen[text] = (shown is None, hidden is None)
            return seen

    seen = async_runner.run(go(), timeout=240)
    wanted = {t: (shown, not shown) for t, shown in CASES.items() if t not in NOT_IN_PAGE_TEXT}
    assert seen == wanted
