"""Modifier clicks (ctrl/shift/alt/meta held around click, double click and right click):
the action field the model never sees, every input path (Playwright, pyautogui, xdotool)
checked by what the page or the X window received, keys never left stuck, scenarios in YAML
and Python, the policy, replay and both exports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from guiagent.agent.policy import ActionContext, Policy, describe_action
from guiagent.core.actions import (
    ActionSpace,
    Click,
    DoubleClick,
    InvalidToolCall,
    Move,
    RightClick,
    action_from_dict,
    normalise_modifiers,
)
from guiagent.core.geometry import CoordSpace, Size
from guiagent.core.killswitch import Killed, KillSwitch
from guiagent.models.hermes import parse_reply
from guiagent.scenario.ground import StepFailure
from guiagent.scenario.schema import ClickTarget, ScenarioError, TargetSpec, load_scenario

DATA = Path(__file__).parent / "data"
TK_APP = Path(__file__).parent / "apps" / "tk_modifiers.py"
PAD = (0, 64, 255)

# a multi-select list (ctrl-click toggles, shift-click selects the range from the anchor),
# a link that reports the modifiers of its click event, and a log of every key event
LIST_PAGE = """<!doctype html><html><head><title>rows</title>
<style>body{font:16px sans-serif;margin:20px} li{padding:5px 10px;width:160px;cursor:default}
li[aria-selected=true]{background:#9cf} #menu{margin:10px 0;padding:6px;width:160px;border:1px solid #888}
</style></head><body>
<ul id="rows" role="listbox" aria-multiselectable="true">
<li role="option">Row 1</li><li role="option">Row 2</li><li role="option">Row 3</li>
<li role="option">Row 4</li><li role="option">Row 5</li><li role="option">Row 6</li></ul>
<p><a href="#opened" id="open">Open report</a></p>
<div id="menu">Context here</div>
<p id="out">selected: none</p><p id="link">link: none</p><p id="events">events: none</p>
<script>
window.keys = []; window.seen = [];
addEventListener('keydown', e => keys.push('down ' + e.key), true);
addEventListener('keyup', e => keys.push('up ' + e.key), true);
const rows = [...document.querySelectorAll('#rows li')];
let anchor = 0;
const mods = e => ['ctrl', 'shift', 'alt', 'meta'].filter(m => e[m + 'Key']).join('+') || 'none';
const show = () => { const s = rows.filter(r => r.getAttribute('aria-selected') === 'true');
  document.getElementById('out').textContent =
    'selected: ' + (s.map(r => r.textContent).join(', ') || 'none'); };
rows.forEach((row, i) => row.addEventListener('click', e => {
  if (e.shiftKey) { const [a, b] = [Math.min(anchor, i), Math.max(anchor, i)];
    rows.forEach((r, j) => r.setAttribute('aria-selected', String(j >= a && j <= b))); }
  else if (e.ctrlKey || e.metaKey) {
    row.setAttribute('aria-selected', String(row.getAttribute('aria-selected') !== 'true'));
    anchor = i; }
  else { rows.forEach(r => r.setAttribute('aria-selected', String(r === row))); anchor = i; }
  seen.push('click ' + mods(e)); show(); }));
document.getElementById('open').addEventListener('click', e => {
  e.preventDefault(); document.getElementById('link').textContent = 'link: ' + mods(e); });
const menu = document.getElementById('menu');
menu.addEventListener('dblclick', e => { seen.push('dblclick ' + mods(e));
  document.getElementById('events').textContent = 'events: ' + seen.slice(-1); });
menu.addEventListener('contextmenu', e => { e.preventDefault(); seen.push('contextmenu ' + mods(e));
  document.getElementById('events').textContent = 'events: ' + seen.slice(-1); });
</script></body></html>"""

STATE_JS = """() => ({selected: document.getElementById('out').textContent,
  link: document.getElementById('link').textContent, seen: window.seen, keys: window.keys})"""

SCENARIO = """name: multi-select
target: {{url: "{url}"}}
steps:
  - click: Row 2
  - click: {{text: Row 4, modifiers: [ctrl]}}
  - expect: "selected: Row 2, Row 4"
  - click: {{target: Row 6, modifiers: [shift]}}
  - expect: "selected: Row 4, Row 5, Row 6"
  - click: {{target: Open report, modifiers: [control]}}
  - expect: "link: ctrl"
"""


class TripOnCheck(KillSwitch):
    """A kill switch that trips itself at its ``n``-th check: the one an input path makes
    once the modifier keys are down and before the button is pressed. ``seen`` runs then
    (to read the real key state at that moment)."""

    def __init__(self, n: int = 2, seen: Any = None) -> None:
        super().__init__()
        self.n, self.calls, self.seen, self.at_trip = n, 0, seen, None

    def check(self) -> None:
        self.calls += 1
        if self.calls == self.n and not self.triggered:
            self.at_trip = self.seen() if self.seen is not None else None
            self.trigger("tripped mid-click by the test")
        super().check()


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


# --- the action: hidden from the model, validated, normalised ---------------------------


def test_the_model_tools_json_is_byte_identical_and_refuses_modifiers() -> None:
    golden = json.loads((DATA / "tools_json_golden.json").read_text(encoding="utf-8"))
    for space in CoordSpace:
        tools = ActionSpace().tools_json(space, Size(1280, 720))
        assert json.dumps(tools) == json.dumps(golden[space.value])
        assert "modifiers" not in json.dumps(tools)
    # a model that writes modifiers anyway gets a corrective message, not a ctrl-click
    reply = parse_reply(
        '<tool_call>{"name": "click", "arguments": {"x": 5, "y": 6, "modifiers": ["ctrl"]}}'
        "</tool_call>"
    )
    call = reply.tool_calls[0]
    assert call.arguments["modifiers"] == ["ctrl"]  # parsed as written...
    with pytest.raises(InvalidToolCall, match="modifiers is not an argument of click"):
        ActionSpace().validate(call.name, call.arguments)  # ...and refused before acting
    assert ActionSpace().validate("click", {"x": 5, "y": 6}) == Click(x=5, y=6)


def test_modifiers_normalise_and_survive_dumps_copies_and_records() -> None:
    assert normalise_modifiers(["Shift", "control", "ctrl", "cmd"]) == ("ctrl", "shift", "meta")
    assert normalise_modifiers("alt+ctrl") == ("ctrl", "alt")
    with pytest.raises(ValueError, match="valid modifiers: ctrl, shift, alt, meta"):
        Click(x=1, y=2, modifiers=["hyper"])
    click = RightClick(x=1, y=2, modifiers=["shift", "ctrl"])
    assert click.modifiers == ("ctrl", "shift")
    assert click.arguments() == {"x": 1, "y": 2, "modifiers": ["ctrl", "shift"]}
    assert action_from_dict(click.model_dump()) == click  # a recording rebuilds it
    assert click.with_points([(9, 9)]).modifiers == ("ctrl", "shift")  # mapping keeps it
    assert Click(x=1, y=2).model_dump() == {"x": 1, "y": 2, "action": "click"}  # plain: as ever
    assert "modifiers" not in Move.model_fields  # hover holds no keys
    assert describe_action(DoubleClick(x=1, y=2, modifiers=["alt"])) == (
        "double_click(x=1, y=2, modifiers=['alt'])"
    )


def test_a_policy_rule_matches_on_modifiers() -> None:
    policy = Policy.from_yaml_text(
        "rules:\n"
        "  - {name: no-ctrl-click, decision: deny, when: {action: click, modifiers: [ctrl]}}\n"
    )
    ctx = ActionContext(surface="browser")
    assert policy.judge(Click(x=1, y=2, modifiers=["ctrl", "shift"]), ctx).decision == "deny"
    assert policy.judge(Click(x=1, y=2, modifiers=["shift"]), ctx).decision == "allow"
    assert policy.judge(Click(x=1, y=2), ctx).decision == "allow"
    with pytest.raises(ValueError, match="unknown modifier 'hyper'"):
        Policy.from_yaml_text("rules:\n  - {name: x, decision: deny, when: {modifiers: hyper}}\n")


def test_yaml_modifiers_load_and_an_unknown_one_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(url="http://localhost/rows.html"), encoding="utf-8")
    steps = load_scenario(path).steps
    assert steps[0].value == TargetSpec(text="Row 2")  # a plain click reads as it always did
    assert steps[1].value == ClickTarget(text="Row 4", modifiers=["ctrl"])
    assert steps[3].value.modifiers == ("shift",) and steps[3].value.text == "Row 6"
    assert steps[3].value.describe() == '"Row 6" with shift'
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'name: b\ntarget: {url: "http://x/"}\nsteps:\n'
        "  - right_click: {text: Row 1, modifiers: [ctrl, hyper]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError) as err:
        load_scenario(bad)
    assert str(err.value) == (
        f"{bad}:4: step 1 (right_click): unknown modifier 'hyper';"
        " valid modifiers: ctrl, shift, alt, meta"
    )
    hover = tmp_path / "hover.yaml"
    hover.write_text(
        'name: h\ntarget: {url: "http://x/"}\nsteps:\n  - hover: {text: A, modifiers: [ctrl]}\n',
        encoding="utf-8",
    )
    with pytest.raises(ScenarioError, match="unknown key 'modifiers'"):
        load_scenario(hover)


# --- the browser --------------------------------------------------------------------------


def _page(tmp_path: Path) -> Path:
    page = tmp_path / "rows.html"
    page.write_text(LIST_PAGE, encoding="utf-8")
    return page


@pytest.mark.browser
def test_python_ui_modifier_clicks_reach_the_page_events(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.scenario.ui import UI

    async def go() -> Any:
        url = _page(tmp_path).as_uri()
        async with BrowserEnv(
            start_url=url, browser=playwright_browser, viewport=(640, 480)
        ) as env:
            ui = UI(env, grounder, base_dir=tmp_path, step_timeout=2.0)
            await ui.click("Row 1")
            await ui.click("Row 3", modifiers=["ctrl"])
            await ui.click({"text": "Row 5"}, modifiers="ctrl")
            await ui.expect("selected: Row 1, Row 3, Row 5")
            await ui.double_click("Context here", modifiers=["alt"])
            await ui.right_click("Context here", modifiers=["shift", "ctrl"])
            await ui.click("Open report", modifiers=["meta"])
            # the step passes only when its effect shows: a plain click replaces the
            # selection, so this expectation fails
            await ui.click("Row 2")
            try:
                await ui.expect("selected: Row 1, Row 2")
            except StepFailure as exc:
                failure = str(exc)
            else:
                failure = ""
            return failure, await env.page.evaluate(STATE_JS)

    failure, state = async_runner.run(go(), timeout=240)
    assert state["selected"] == "selected: Row 2"
    assert "selected: Row 1, Row 2" in failure
    assert state["link"] == "link: meta"
    assert state["seen"] == [
        "click none",
        "click ctrl",
        "click ctrl",
        "dblclick alt",
        "contextmenu ctrl+shift",
        "click none",
    ]
    downs = [k for k in state["keys"] if k.startswith("down")]
    ups = [k for k in state["keys"] if k.startswith("up")]
    assert sorted(k.split()[1] for k in downs) == sorted(k.split()[1] for k in ups)  # none stuck


@pytest.mark.browser
def test_a_kill_mid_click_releases_the_modifiers_in_the_browser(
    async_runner: Any, playwright_browser: Any, tmp_path: Path
) -> None:
    from guiagent.envs.browser import BrowserEnv

    async def go() -> Any:
        url = _page(tmp_path).as_uri()
        async with BrowserEnv(
            start_url=url, browser=playwright_browser, viewport=(640, 480)
        ) as env:
            box = await env.page.evaluate(
                "() => { const r = document.querySelectorAll('#rows li')[2]"
                ".getBoundingClientRect(); return [r.x + 20, r.y + r.height / 2]; }"
            )
            env.killswitch = TripOnCheck(n=2)
            try:
                await env.act(Click(x=box[0], y=box[1], modifiers=["ctrl", "shift"]))
            except Killed as exc:
                killed = str(exc)
            else:
                killed = ""
            env.killswitch = None
            await env.act(Click(x=box[0], y=box[1]))  # a plain click afterwards
            return killed, await env.page.evaluate(STATE_JS)

    killed, state = async_runner.run(go(), timeout=240)
    assert "tripped mid-click" in killed
    # both keys went down (the kill came mid-click), both came up, the click never landed
    assert state["keys"] == ["down Control", "down Shift", "up Shift", "up Control"]
    assert state["seen"] == ["click none"]  # the next click carries no stuck modifier
    assert state["selected"] == "selected: Row 3"


def _record_scenario(
    async_runner: Any, browser: Any, grounder: Any, tmp_path: Path, url: str
) -> Any:
    from guiagent.scenario.session import ScenarioSession, SessionOptions

    source = tmp_path / "multi.yaml"
    source.write_text(SCENARIO.format(url=url), encoding="utf-8")
    scenario = load_scenario(source)

    async def record() -> Any:
        session = ScenarioSession(
            SessionOptions(record_dir=tmp_path / "runs"), browser=browser, grounder=grounder
        )
        async with session:
            return await session.run(scenario)

    return async_runner.run(record(), timeout=240)


def _run_script(script: Path, url: str) -> dict[str, Any]:
    """Run an exported script's ``run(page)`` in a fresh Chromium; the page's state after."""
    from guiagent.envs.browser import chromium_executable

    driver = textwrap.dedent(
        f"""
        import json, os, runpy
        from playwright.sync_api import sync_playwright
        ns = runpy.run_path({str(script)!r})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ["CHROMIUM"], args=["--no-sandbox"])
            page = browser.new_page(viewport=ns["VIEWPORT"])
            page.goto(os.environ["START_URL"])
            ns["run"](page)
            print("STATE=" + json.dumps(page.evaluate({STATE_JS!r})))
            browser.close()
        """
    )
    env = {**os.environ, "START_URL": url, "CHROMIUM": chromium_executable() or ""}
    done = subprocess.run(
        [sys.executable, "-c", driver], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1].removeprefix("STATE="))


@pytest.mark.browser
def test_a_recorded_ctrl_click_replays_and_exports_as_a_ctrl_click(
    async_runner: Any, playwright_browser: Any, grounder: Any, tmp_path: Path
) -> None:
    from guiagent.envs.browser import BrowserEnv
    from guiagent.record import load
    from guiagent.record.export import export_playwright, export_scenario
    from guiagent.record.replay import replay
    from guiagent.scenario.runner import run_scenario

    url = _page(tmp_path).as_uri()
    recorded = _record_scenario(async_runner, playwright_browser, grounder, tmp_path, url)
    assert recorded.ok, recorded.failure_message()
    run = load(recorded.run_dir)
    clicks = [s.screen_action for s in run.steps if (s.screen_action or {}).get("modifiers")]
    assert [(a["action"], a["modifiers"]) for a in clicks] == [
        ("click", ["ctrl"]),
        ("click", ["shift"]),
        ("click", ["ctrl"]),
    ]

    async def replayed() -> Any:
        async with BrowserEnv(start_url=url, browser=playwright_browser) as env:
            report = await replay(run, env, speed=0, mode="strict", out_dir=tmp_path / "replay")
            return report, await env.page.evaluate(STATE_JS)

    report, state = async_runner.run(replayed(), timeout=240)
    assert report.ok, report.summary()
    assert state["selected"] == "selected: Row 4, Row 5, Row 6"
    assert state["link"] == "link: ctrl"
    assert state["seen"] == ["click none", "click ctrl", "click shift"]

    exported_path = export_scenario(run, tmp_path / "exported.yaml")
    exported = yaml.safe_load(exported_path.read_text())
    assert exported["steps"][1] == {"click": {"text": "Row 4", "modifiers": ["ctrl"]}}
    assert exported["steps"][3] == {"click": {"text": "Row 6", "modifiers": ["shift"]}}
    assert exported["steps"][5] == {"click": {"text": "Open report", "modifiers": ["ctrl"]}}

    async def rerun() -> Any:
        async with BrowserEnv(start_url=url, browser=playwright_browser) as env:
            result = await run_scenario(load_scenario(exported_path), env, grounder)
            return result, await env.page.evaluate(STATE_JS)

    result, state = async_runner.run(rerun(), timeout=240)
    assert result.ok, result.failure_message()  # its expect steps hold on a fresh page
    assert state["seen"] == ["click none", "click ctrl", "click shift"]

    code = export_playwright(run, tmp_path / "exported.py").read_text()
    assert ".click(modifiers=['Control'])" in code and ".click(modifiers=['Shift'])" in code
    state = _run_script(tmp_path / "exported.py", url)
    assert state["selected"] == "selected: Row 4, Row 5, Row 6"
    assert state["link"] == "link: ctrl"


def test_an_agent_run_exports_its_modifier_clicks(tmp_path: Path) -> None:
    from guiagent.record.export_playwright import _pointed
    from guiagent.record.export_scenario import _agent_steps
    from guiagent.record.trajectory import Run, RunHeader, StepRecord

    step = StepRecord.model_validate(
        {
            "index": 0,
            "outcome": "ok",
            "action": {"action": "right_click", "x": 30, "y": 40, "modifiers": ["ctrl", "alt"]},
            "screen_action": {
                "action": "right_click",
                "x": 30,
                "y": 40,
                "modifiers": ["ctrl", "alt"],
            },
        }
    )
    assert _pointed(step, "right_click") == [
        "page.keyboard.down('Control')",
        "page.keyboard.down('Alt')",
        'page.mouse.click(30.0, 40.0, button="right")'
        "  # no role or text was recorded for this target",
        "page.keyboard.up('Alt')",
        "page.keyboard.up('Control')",
    ]
    run = Run(path=tmp_path, header=RunHeader(), steps=[step])
    assert _agent_steps(run, []) == [
        {"right_click": {"at": [30.0, 40.0], "modifiers": ["ctrl", "alt"]}}
    ]


# --- the desktop: a Tk window logs event.state -------------------------------------------


def _x_key_down(display: str, keysym: str) -> bool:
    """Whether the X server holds the key down now (its keymap, not any app's idea of it)."""
    from Xlib import XK
    from Xlib import display as xdisplay

    dpy = xdisplay.Display(display)
    try:
        code = dpy.keysym_to_keycode(XK.string_to_keysym(keysym))
        keymap = dpy.query_keymap()
        return bool(keymap[code // 8] & (1 << (code % 8)))
    finally:
        dpy.close()


def _tk_pad(async_runner: Any, env: Any, tk_app_factory: Any, tmp_path: Path, title: str) -> Any:
    from test_env_desktop import wait_for_colour, wait_state

    state = tmp_path / "mods.json"
    tk_app_factory(TK_APP, str(state), "--geometry", "300x200+300+300", title=title)
    wait_state(state, lambda s: s["events"] == [])
    frame, box = wait_for_colour(async_runner, env, PAD)
    return state, frame.transform.frame_to_screen(box.centre)


def _events(state: Path, count: int) -> list[dict[str, Any]]:
    from test_env_desktop import wait_state

    return wait_state(state, lambda s: len(s["events"]) >= count)["events"]


@pytest.mark.desktop
@pytest.mark.parametrize("backend", ["pyautogui", "xdotool"])
def test_desktop_modifier_clicks_show_in_the_window_event_state(
    backend: str,
    async_runner: Any,
    desktop_env: Any,
    x_display: Any,
    tk_app_factory: Any,
    tmp_path: Path,
) -> None:
    from guiagent.envs.desktop import DesktopEnv

    env = desktop_env
    if backend != desktop_env.input_backend:
        env = DesktopEnv(display=x_display.display, failsafe=False, input_backend=backend)
        async_runner.run(env.start())
    try:
        state, at = _tk_pad(async_runner, env, tk_app_factory, tmp_path, f"mods-{backend}")
        async_runner.run(env.act(Click(x=at.x, y=at.y, modifiers=["ctrl"])))
        _events(state, 1)
        async_runner.run(env.act(Click(x=at.x + 10, y=at.y, modifiers=["shift"])))
        _events(state, 2)
        async_runner.run(env.act(RightClick(x=at.x, y=at.y, modifiers=["ctrl", "alt"])))
        _events(state, 3)
        time.sleep(0.6)  # past the double-click time: the next press starts a new click
        result = async_runner.run(env.act(DoubleClick(x=at.x, y=at.y, modifiers=["shift"])))
        assert result.detail.startswith("shift+double_click at ")
        _events(state, 5)
        time.sleep(0.6)
        async_runner.run(env.act(Click(x=at.x + 20, y=at.y)))
        events = _events(state, 6)
    finally:
        if env is not desktop_env:
            async_runner.run(env.close())
    assert events[:3] == [
        {"kind": "click", "mods": ["ctrl"]},
        {"kind": "click", "mods": ["shift"]},
        {"kind": "right", "mods": ["ctrl", "alt"]},
    ]
    assert events[3:5] == [
        {"kind": "click", "mods": ["shift"]},
        {"kind": "double", "mods": ["shift"]},
    ]
    assert events[5:] == [{"kind": "click", "mods": []}]  # nothing held afterwards
    assert not any(_x_key_down(x_display.display, k) for k in ("Control_L", "Shift_L", "Alt_L"))


@pytest.mark.desktop
@pytest.mark.parametrize("backend", ["pyautogui", "xdotool"])
def test_a_kill_mid_click_releases_the_modifier_on_x(
    backend: str,
    async_runner: Any,
    desktop_env: Any,
    x_display: Any,
    tk_app_factory: Any,
    tmp_path: Path,
) -> None:
    from guiagent.envs.desktop import DesktopEnv

    env = desktop_env
    if backend != desktop_env.input_backend:
        env = DesktopEnv(display=x_display.display, failsafe=False, input_backend=backend)
        async_runner.run(env.start())
    try:
        state, at = _tk_pad(async_runner, env, tk_app_factory, tmp_path, f"kill-{backend}")
        trip = TripOnCheck(n=2, seen=lambda: _x_key_down(x_display.display, "Control_L"))
        env.killswitch = trip
        with pytest.raises(Killed, match="tripped mid-click"):
            async_runner.run(env.act(Click(x=at.x, y=at.y, modifiers=["ctrl"])))
        env.killswitch = None
        assert trip.at_trip is True  # ctrl really was down when the kill came
        assert not _x_key_down(x_display.display, "Control_L")  # and is up again
        async_runner.run(env.act(Click(x=at.x, y=at.y)))
        events = _events(state, 1)
    finally:
        env.killswitch = None
        if env is not desktop_env:
            async_runner.run(env.close())
    assert events == [{"kind": "click", "mods": []}]  # the killed click never pressed
