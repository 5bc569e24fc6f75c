"""Local narration of real pages in headless Chromium: reading order, regions, roles and
states, privacy, scopes, and watch mode announcing a dialog (and nothing when nothing
changes)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guiagent.core.geometry import Rect
from guiagent.narrate.narrator import NarrateError, Narrator, Scope
from guiagent.narrate.render import to_json, to_ssml, to_text
from guiagent.narrate.watch import Watcher

PAGE = "tests/apps/narrate_layout.html"
SECRETS = ("hunter2secret", "9911223344", "Account number")

EXPECTED = [
    "title bar: Narration test page.",
    "Quarterly report, heading level 1",
    "menu: Main menu.",
    "Home, link",
    "Reports, link",
    "Help, link",
    "Summary, heading level 2",
    "Sales grew in every region this quarter, led by the north, where two new shops opened in March.",
    "Costs stayed flat.",
    "Staff numbers rose by four.",
    "Next quarter brings the spring catalogue.",
    "Username, textbox, alice",
    "Remember me, checkbox, checked",
    "buttons.",
    "Save, button",
    "Cancel, button",
    "Help, button",
    "Delete, button",
]


@pytest.fixture
def page_env(browser_env_factory: Any, static_server: Any) -> Any:
    return browser_env_factory(start_url=static_server.url_for(PAGE))


def test_local_narration_reads_the_page_in_order(page_env: Any, async_runner: Any) -> None:
    narration = async_runner.run(Narrator(page_env).narrate())
    assert narration.text.splitlines() == EXPECTED
    assert [r.kind for r in narration.regions] == ["title_bar", "menu", "body", "buttons", "body"]
    assert narration.redacted == 2  # the password field and the private block
    for rendered in (narration.text, to_json(narration), to_ssml(narration)):
        for secret in SECRETS:
            assert secret not in rendered
    items = {i.label: i for i in narration.items()}
    assert items["Username"].role == "textbox" and items["Username"].value == "alice"
    assert items["Remember me"].state == ["checked"]
    # boxes in frame pixels (dpr 1: CSS px), where the page put them
    save = items["Save"].rect
    assert 40 <= save.left <= 44 and 518 <= save.top <= 524


def test_dialog_region_and_focus(page_env: Any, async_runner: Any) -> None:
    async_runner.run(page_env.page.click("#delete"))
    narration = async_runner.run(Narrator(page_env).narrate())
    kinds = [r.kind for r in narration.regions]
    assert kinds[:3] == ["title_bar", "dialog", "menu"]
    dialog = narration.regions[1]
    assert dialog.title == "Confirm delete"
    assert [i.spoken() for i in dialog.items] == [
        "Delete the report?",
        "Yes, button, focused",
        "No, button",
    ]
    assert narration.focused is not None and narration.focused.label == "Yes"
    focused = async_runner.run(Narrator(page_env).narrate(Scope(kind="focused")))
    assert [r.kind for r in focused.regions] == ["title_bar", "dialog"]
    assert focused.labels() == ["Delete the report?", "Yes", "No"]


def test_region_scope_and_private_regions(page_env: Any, async_runner: Any) -> None:
    from guiagent.core.redact import Redactor

    scope = Scope(kind="region", rect=Rect(680, 140, 560, 60))  # the right column
    narration = async_runner.run(Narrator(page_env).narrate(scope))
    assert narration.labels() == ["Next quarter brings the spring catalogue."]
    hidden = Narrator(page_env, redactor=Redactor(regions=[Rect(0, 320, 660, 120)]))
    labels = async_runner.run(hidden.narrate()).labels()
    assert "Username" not in labels and "Remember me" not in labels and "Summary" in labels
    with pytest.raises(NarrateError, match="needs the desktop"):
        async_runner.run(Narrator(page_env).narrate(Scope(kind="pointer")))


def test_watch_announces_a_dialog_then_nothing(page_env: Any, async_runner: Any) -> None:
    watcher = Watcher(Narrator(page_env), min_interval_s=0, quiet_ms=100)
    baseline = async_runner.run(watcher.start())
    assert "Summary" in baseline.labels()
    assert async_runner.run(watcher.check()) == []  # nothing changed: nothing said
    narrations = watcher.narrations
    async_runner.run(page_env.page.click("#delete"))
    said = async_runner.run(watcher.check())
    assert [a.kind for a in said] == ["dialog_opened", "focus_moved"]
    assert (
        said[0].text
        == "Dialog: Confirm delete. Delete the report?. Yes, button, focused. No, button"
    )
    assert watcher.narrations == narrations + 1
    assert async_runner.run(watcher.check()) == []  # the dialog is not announced again
    async_runner.run(page_env.page.evaluate("window.setStatus('Catalogue delayed to May.')"))
    said = async_runner.run(watcher.check())
    assert [a.text for a in said] == [
        "'Next quarter brings the spring catalogue.' changed to 'Catalogue delayed to May.'"
    ]


def test_watch_run_loop_emits_once_per_change(page_env: Any, async_runner: Any) -> None:
    import asyncio

    heard: list[str] = []

    async def scenario() -> None:
        watcher = Watcher(Narrator(page_env), min_interval_s=0.2, quiet_ms=100)
        await watcher.start()
        stop = asyncio.Event()
        task = asyncio.create_task(
            watcher.run(lambda anns: heard.extend(a.text for a in anns), stop, poll_s=0.05)
        )
        await asyncio.sleep(0.3)
        await page_env.page.click("#delete")
        for _ in range(100):
            if heard:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.4)  # more polls on an unchanged screen
        stop.set()
        await task

    async_runner.run(scenario())
    assert len(heard) == 2 and heard[0].startswith("Dialog: Confirm delete.")


def test_demo_webapp_login_never_reads_the_password(
    browser_env_factory: Any, static_server: Any, async_runner: Any
) -> None:
    env = browser_env_factory(start_url=static_server.url_for("guiagent/demo/webapp/index.html"))
    async_runner.run(env.page.fill("#username", "alice"))
    async_runner.run(env.page.fill("#password", "s3cret-pass"))
    narration = async_runner.run(Narrator(env).narrate())
    spoken = narration.text.splitlines()
    assert spoken[:2] == ["title bar: guiagent demo.", "guiagent demo, heading level 1"]
    assert spoken.index("Sign in, heading level 2") < spoken.index("Username, textbox, alice")
    assert spoken.index("Username, textbox, alice") < spoken.index("Sign in, button")
    assert "s3cret-pass" not in json.dumps(narration.model_dump()) and narration.redacted == 1
    assert all(i.role != "password" for i in narration.items())
    assert "Password" not in to_text(narration)
