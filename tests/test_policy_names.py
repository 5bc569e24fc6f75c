"""The policy sees every name of a target: visible text, accessible name, role, CSS-drawn
text; the default policy asks before irreversible verbs in several languages (a data list)."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.agent.policy import ActionContext, CallbackApprover, Policy
from guiagent.agent.words import WORDLISTS_DIR, _is_cjk, word_list
from guiagent.core.actions import Click, Move
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.testing.dom_oracle import DomOracle, OracleStep
from guiagent.testing.fake_server import FakeModelServer

PAGE = "tests/apps/named_buttons.html"
IRREVERSIBLE = yaml.safe_load((WORDLISTS_DIR / "irreversible.yaml").read_text(encoding="utf-8"))


def test_the_word_list_covers_several_languages_and_the_required_verbs():
    assert {"en", "fr", "de", "es", "zh"} <= set(IRREVERSIBLE)
    english = set(IRREVERSIBLE["en"])
    for verb in ("delete", "remove", "close account", "cancel subscription", "pay", "buy",
                 "send", "transfer", "publish"):  # fmt: skip
        assert verb in english, verb
    assert len(word_list("irreversible")) == sum(len(v) for v in IRREVERSIBLE.values())


@pytest.mark.parametrize(
    "word", [w for words in IRREVERSIBLE.values() for w in words], ids=lambda w: w
)
def test_every_listed_word_is_asked_in_text_name_and_css(word):
    policy = Policy.load(None)
    click = Click(x=5, y=5)
    # CJK words sit inside longer labels; others stand as words, in another case
    label = f"立即{word}" if _is_cjk(word) else f"  {word.title()} "
    for field, shown in (
        ("target_text", label),
        ("target_css_text", label),
        ("target_name", f" {word.title()} settings"),
    ):
        verdict = policy.judge(click, ActionContext(**{field: shown}))
        assert verdict.decision == "ask", (word, field)
        assert verdict.rule == "ask-before-irreversible-clicks"
    assert policy.judge(Move(x=5, y=5), ActionContext(target_text=word)).decision == "allow"


@pytest.mark.parametrize(
    "harmless",
    ["Open", "Close", "Cancel", "Sender address", "Undeleted items", "Paypal", "Account"],
)
def test_harmless_labels_are_not_asked(harmless):
    assert (
        Policy.load(None).judge(Click(x=1, y=1), ActionContext(target_text=harmless)).decision
        == "allow"
    )


def test_an_accessible_name_counts_by_the_verb_it_starts_with():
    policy = Policy.load(None)
    click = Click(x=1, y=1)
    assert policy.judge(click, ActionContext(target_name="Delete account")).decision == "ask"
    # the user's own content after another verb is not an irreversible action
    assert (
        policy.judge(
            click, ActionContext(target_text="Complete", target_name="Complete buy milk")
        ).decision
        == "allow"
    )
    assert policy.judge(click, ActionContext(target_name="Edit | Send invoice")).decision == "ask"


def test_role_matcher_and_regex_see_every_name():
    policy = Policy.from_yaml_text(
        "rules:\n"
        "  - {name: links, decision: deny, when: {action: click, target_role: link}}\n"
        "  - {name: rx, decision: ask, when: {action: click, target_regex: 'account$'}}\n"
    )
    assert policy.judge(Click(x=1, y=1), ActionContext(target_role="link")).rule == "links"
    assert policy.judge(Click(x=1, y=1), ActionContext(target_name="Delete account")).rule == "rx"
    assert policy.judge(Click(x=1, y=1), ActionContext(target_text="Open")).decision == "allow"


async def _click_all(browser, url, tmp_path, selectors):
    asked: list[tuple[str | None, str | None, str | None]] = []

    def deny(action, verdict, frame):
        asked.append((verdict.rule, action.name, verdict.reason))
        return False

    async with BrowserEnv(start_url=url, browser=browser) as env:
        plan = [OracleStep(kind="click", selector=s) for s in selectors]
        plan.append(OracleStep(kind="finish", text="ok"))
        with FakeModelServer(DomOracle(env.page, plan, asyncio.get_running_loop())) as server:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server.url, record_dir=tmp_path / "run", settle_timeout_s=1.0
                ),
                approver=CallbackApprover(deny),
            )
            try:
                result = await agent.run("Look at the settings")
            finally:
                await agent.close()
        clicks = await env.page.evaluate("() => window.clicks")
    return result, asked, clicks


def test_aria_label_css_text_and_close_account_buttons_are_asked(
    async_runner, playwright_browser, static_server, tmp_path
):
    selectors = ["#icon", "#css", "#close", "#open"]
    result, asked, clicks = async_runner.run(
        _click_all(playwright_browser, static_server.url_for(PAGE), tmp_path, selectors)
    )
    assert result.ok
    assert [a[0] for a in asked] == ["ask-before-irreversible-clicks"] * 3, asked
    assert clicks == ["open"]  # the three were denied by the approver; "Open settings" went through
    steps = load(tmp_path / "run").steps
    assert [s.outcome for s in steps[:4]] == ["denied", "denied", "denied", "ok"]
