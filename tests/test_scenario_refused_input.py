"""Steps on controls that refuse or undo the input pass only when the input took.

One page holds disabled targets (``disabled``, a disabled fieldset, ``aria-disabled``), a
button that lets clicks through (``pointer-events: none``), one made invisible by its
parent (``opacity: 0``), fields that already hold the
text and reject keys, and checkboxes, radios and toggle buttons whose page undoes or ignores
the click; beside them the same controls that work, which must still pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guiagent.scenario.ground import StepFailure

pytestmark = pytest.mark.browser

PAGE = """<!doctype html><html><head><title>refused</title><style>
body{font:15px sans-serif;margin:16px} p{margin:5px 0}</style></head><body>
<p><button disabled onclick="say('A')">Alpha save</button>
<fieldset disabled style="display:inline;border:0;padding:0"><button onclick="say('B')">Bravo save</button></fieldset>
<span role="button" aria-disabled="true" onclick="say('C')">Charlie save</span>
<button style="pointer-events:none" onclick="say('D')">Delta save</button>
<button onclick="say('E')">Echo save</button>
<span style="opacity:0"><button onclick="say('F')">Foxtrot save</button></span></p>
<p><label>Blocked field <input id="blocked" value="hello"></label>
<label>Partial field <input id="partial" value="banana"></label>
<label>Quantity <input id="qty" value="7" onfocus="this.select()"></label></p>
<p><input type="checkbox" id="k1"><label for="k1">Normal box</label>
<input type="checkbox" id="k2" onclick="this.checked = false"><label for="k2">Stubborn box</label>
<input type="checkbox" id="k3" onclick="setTimeout(() => { this.checked = false; }, 0)"><label for="k3">Later box</label>
<span role="checkbox" aria-checked="false" tabindex="0">Aria dead</span>
<span role="checkbox" aria-checked="false" tabindex="0" onclick="this.setAttribute('aria-checked',
  this.getAttribute('aria-checked') === 'true' ? 'false' : 'true')">Aria live</span></p>
<p><input type="radio" name="r" id="r1"><label for="r1">Radio one</label>
<input type="radio" name="r" id="r2" onclick="return false"><label for="r2">Radio dead</label>
<button aria-pressed="false">Press dead</button></p>
<p id="out">none</p>
<script>
function say(t) { const out = document.getElementById('out');
  out.textContent = (out.textContent === 'none' ? 'clicked ' : out.textContent) + t; }
for (const id of ['blocked', 'partial'])
  document.getElementById(id).addEventListener('keydown', (e) => { if (e.key.length === 1) e.preventDefault(); });
</script></body></html>"""

# step -> the failure message's telling part (None: the step passes)
CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "disabled": ({"click": "Alpha save"}, '"Alpha save" is disabled'),
    "disabled fieldset": ({"click": "Bravo save"}, '"Bravo save" is disabled'),
    "aria-disabled": ({"click": "Charlie save"}, '"Charlie save" is disabled'),
    "clicks go through": ({"click": "Delta save"}, "pointer-events: none"),
    "drag from it": ({"drag": {"from": "Delta save", "to": "Echo save"}}, "pointer-events: none"),
    "enabled": ({"click": "Echo save"}, None),
    "invisible": ({"click": "Foxtrot save"}, 'no text matching "Foxtrot save"'),
    "field already held it": (
        {"type": {"text": "hello", "into": "Blocked field"}},
        "not in the field's value",
    ),
    "field held a longer text": (
        {"type": {"text": "nan", "into": "Partial field"}},
        "not in the field's value",
    ),
    "retyped over a selection": ({"type": {"text": "7", "into": "Quantity"}}, None),
    "checkbox": ({"click": "Normal box"}, None),
    "checkbox undone": ({"click": "Stubborn box"}, "still unchecked"),
    "checkbox undone later": ({"click": "Later box"}, "still unchecked"),
    "aria checkbox ignored": ({"click": "Aria dead"}, "still unchecked"),
    "aria checkbox": ({"click": "Aria live"}, None),
    "radio": ({"click": "Radio one"}, None),
    "radio refused": ({"click": "Radio dead"}, "did not select it"),
    "toggle button ignored": ({"click": "Press dead"}, "still not pressed"),
}


def test_input_that_did_not_take_fails_the_step(
    async_runner: Any, playwright_browser: Any, tmp_path: Path
) -> None:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.grounding.local import LocalGrounder
    from guiagent.scenario.ui import UI

    page = tmp_path / "page.html"
    page.write_text(PAGE, encoding="utf-8")

    async def outcome(ui: Any, step: dict[str, Any]) -> str | None:
        try:
            await ui.do(step)
        except StepFailure as exc:
            return str(exc)
        return None

    async def go() -> tuple[dict[str, str | None], str]:
        async with BrowserEnv(
            start_url=page.as_uri(), browser=playwright_browser, viewport=(900, 300)
        ) as env:
            ui = UI(env, LocalGrounder(), base_dir=tmp_path, step_timeout=0.3)
            seen = {name: await outcome(ui, step) for name, (step, _) in CASES.items()}
            return seen, await env.page.text_content("#out") or ""

    seen, said = async_runner.run(go(), timeout=240)
    for name, (_, wanted) in CASES.items():
        if wanted is None:
            assert seen[name] is None, f"{name}: {seen[name]}"
        else:
            assert seen[name] is not None and wanted in seen[name], f"{name}: {seen[name]}"
    assert said == "clicked E"  # no handler of a disabled or click-through button ran
