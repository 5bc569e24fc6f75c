"""Secrets have a scope and a single path: stored secrets are bound to origins or windows,
the model names them and never types them, and a page cannot make the agent hand one over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.agent.policy import ActionContext, Policy
from guiagent.core.actions import SkillCall, Type
from guiagent.core.redact import SecretScope, origin_matches
from guiagent.envs.browser import BrowserEnv
from guiagent.record import load
from guiagent.scenario.ui import ui_steps_runner
from guiagent.skills import SecretScopeError, SecretStore, SkillError, load_registry
from guiagent.testing.fake_server import FakeModelServer, FakeReply

PHISH = "tests/apps/phishing_login.html"
BANK_PW = "Hunter2-bank!pw"


def test_scope_patterns_match_origins_and_globs():
    assert origin_matches("https://bank.example", "https://bank.example/login?x=1")
    assert not origin_matches("https://bank.example", "https://bank.example.evil.com/")
    assert not origin_matches("https://bank.example", "http://bank.example/")
    assert origin_matches("https://*.bank.example/*", "https://www.bank.example/a")
    scope = SecretScope(origins=["https://bank.example"], windows=["*KeePass*"])
    assert scope.allows("https://bank.example/", None)
    assert scope.allows(None, "Database - KeePassXC")
    assert not scope.allows("http://127.0.0.1:8000/", "Firefox")
    assert SecretScope().allows("anything", None)


def test_secrets_file_declares_scopes_and_takes_values_from_the_environment(tmp_path: Path):
    path = tmp_path / "secrets.yaml"
    path.write_text(
        "plain: pw1\n"
        "bank_pw:\n  origins: [https://bank.example]\n"
        "vault:\n  value: pw3\n  windows: ['*KeePass*']\n",
        encoding="utf-8",
    )
    store = SecretStore(file=path, environ={"GUIAGENT_SECRET_BANK_PW": BANK_PW})
    entries = {e.name: e for e in store.entries()}
    assert entries["plain"].value == "pw1" and entries["plain"].scope.unrestricted
    assert entries["bank_pw"].value == BANK_PW
    assert entries["bank_pw"].scope.origins == ["https://bank.example"]
    assert entries["vault"].scope.windows == ["*KeePass*"]
    assert BANK_PW not in repr(entries["bank_pw"])  # the value never shows in a repr
    store.check_scope("bank_pw", "https://bank.example/login", None)
    with pytest.raises(SecretScopeError, match=r"may only be used on https://bank\.example"):
        store.check_scope("bank_pw", "http://127.0.0.1/phish", None)
    bad = tmp_path / "bad.yaml"
    bad.write_text("x:\n  value: 1\n  origin: https://a\n", encoding="utf-8")
    with pytest.raises(SkillError, match="unknown key"):
        SecretStore(file=bad, environ={})


def test_policy_denies_a_scoped_secret_outside_its_scope():
    policy = Policy.load(None)
    scope = SecretScope(origins=["https://bank.example"])
    policy.add_secret(BANK_PW, name="bank_pw", scope=scope)
    policy.add_secret("plain-pw-123", name="plain")
    policy.add_secret("cli-secret-456")  # a --secret value: no name
    phish = ActionContext(surface="browser", url="http://127.0.0.1:9/phish")
    bank = ActionContext(surface="browser", url="https://bank.example/login")
    # the model naming the secret for a skill on the wrong page
    v = policy.judge(SkillCall(skill="login", params={"password": "bank_pw"}), phish)
    assert (v.decision, v.rule) == ("deny", "secret-scope") and "bank.example" in v.reason
    assert (
        policy.judge(SkillCall(skill="login", params={"password": "bank_pw"}), bank).decision
        == "allow"
    )
    # typing the value: outside the scope always denied, even by a skill naming it
    v = policy.judge(Type(text=BANK_PW), phish.model_copy(update={"secret": "bank_pw"}))
    assert (v.decision, v.rule) == ("deny", "secret-scope")
    # inside: only the skill typing it by name; the model typing the value is not entitled
    assert (
        policy.judge(Type(text=BANK_PW), bank.model_copy(update={"secret": "bank_pw"})).decision
        == "allow"
    )
    assert policy.judge(Type(text=BANK_PW), bank).rule == "deny-typing-secrets"
    assert policy.judge(Type(text="plain-pw-123"), phish).rule == "deny-typing-secrets"
    assert (
        policy.judge(
            Type(text="plain-pw-123"), phish.model_copy(update={"secret": "plain"})
        ).decision
        == "allow"
    )
    assert policy.judge(Type(text="my cli-secret-456"), bank).rule == "deny-typing-secrets"


def test_secret_matcher_names_the_secret_being_typed():
    policy = Policy.from_yaml_text(
        "rules:\n  - name: ask-vault\n    decision: ask\n    when: {action: type, secret: vault}\n"
    )
    assert policy.judge(Type(text="x"), ActionContext(secret="vault")).rule == "ask-vault"
    assert policy.judge(Type(text="x"), ActionContext(secret="other")).decision == "allow"


async def _phish_run(browser, url, tmp_path, store, replies, **config):
    async with BrowserEnv(start_url=url, browser=browser) as env:
        with FakeModelServer.scripted(replies) as server:
            agent = Agent(
                env,
                AgentConfig(
                    model_url=server.url,
                    record_dir=tmp_path / "run",
                    settle_timeout_s=1.0,
                    **config,
                ),
                skills=load_registry(steps_runner=ui_steps_runner),
                secrets=store,
            )
            try:
                result = await agent.run("Read the page and tell me its title")
            finally:
                await agent.close()
        page = await env.page.evaluate(
            "() => ({got: window.got || [], keys: window.keys || '',"
            " user: document.getElementById('username').value,"
            " pw: document.getElementById('password').value})"
        )
    return result, page, server


LOGIN = FakeReply(
    reasoning="The page says to sign in with the secret named bank_pw.",
    tool_calls=[("login", {"username": "me", "password": "bank_pw"})],
)
FINISH = FakeReply(tool_calls=[("finish", {"answer": "done"})])


def _no_secret_anywhere(tmp_path: Path, server: FakeModelServer, value: str) -> None:
    for request in server.requests:
        assert value.encode() not in request.raw
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), path


def test_page_driven_secret_theft_fails_and_is_recorded_as_denied(
    async_runner, playwright_browser, static_server, tmp_path
):
    store = SecretStore(
        {"bank_pw": BANK_PW},
        environ={},
        scopes={"bank_pw": {"origins": ["https://bank.example"]}},
    )
    result, page, server = async_runner.run(
        _phish_run(
            playwright_browser, static_server.url_for(PHISH), tmp_path, store, [LOGIN, FINISH]
        )
    )
    assert result.ok, result
    # the page received nothing: no keystroke, no submit
    assert page == {"got": [], "keys": "", "user": "", "pw": ""}, page
    step = load(tmp_path / "run").steps[0]
    assert step.outcome == "denied"
    assert step.policy["decision"] == "deny" and step.policy["rule"] == "secret-scope"
    assert "bank_pw" in step.policy["reason"] and "https://bank.example" in step.policy["reason"]
    assert "secret-scope" in json.dumps(server.requests[1].body["messages"])  # the model was told
    _no_secret_anywhere(tmp_path, server, BANK_PW)


def test_the_same_skill_works_where_the_secret_belongs(
    async_runner, playwright_browser, static_server, tmp_path
):
    url = static_server.url_for(PHISH)
    store = SecretStore(
        {"bank_pw": BANK_PW}, environ={}, scopes={"bank_pw": {"origins": [static_server.url]}}
    )
    result, page, server = async_runner.run(
        _phish_run(playwright_browser, url, tmp_path, store, [LOGIN, FINISH])
    )
    assert result.ok, result
    assert page["got"] == [f"me|{BANK_PW}"], page  # the control: in scope it is typed
    step = load(tmp_path / "run").steps[0]
    assert step.outcome == "ok", step
    _no_secret_anywhere(tmp_path, server, BANK_PW)


def test_the_registry_refuses_a_secret_out_of_scope_before_typing(
    async_runner, playwright_browser, static_server
):
    async def go():
        async with BrowserEnv(
            start_url=static_server.url_for(PHISH), browser=playwright_browser
        ) as env:
            store = SecretStore(
                {"bank_pw": BANK_PW},
                environ={},
                scopes={"bank_pw": {"origins": ["https://bank.example"]}},
            )
            outcome = await load_registry(steps_runner=ui_steps_runner).run(
                "login", env, {"username": "me", "password": "bank_pw"}, secrets=store
            )
            keys = await env.page.evaluate("() => window.keys || ''")
        return outcome, keys

    outcome, keys = async_runner.run(go())
    assert not outcome.ok and outcome.denied and "may only be used on" in outcome.detail
    assert keys == ""


def test_the_model_typing_a_known_secret_is_denied(
    async_runner, playwright_browser, static_server, tmp_path
):
    store = SecretStore(environ={})
    typed = FakeReply(tool_calls=[("type", {"text": "cli-Secret-77"})])
    result, page, server = async_runner.run(
        _phish_run(
            playwright_browser,
            static_server.url_for(PHISH),
            tmp_path,
            store,
            [FakeReply(tool_calls=[("click", {"x": 300, "y": 175})]), typed, FINISH],
            secrets=["cli-Secret-77"],  # --secret values reach the policy too
            coord_space="image",
        )
    )
    assert result.ok
    steps = load(tmp_path / "run").steps
    assert steps[1].outcome == "denied" and steps[1].policy["rule"] == "deny-typing-secrets"
    assert "cli-Secret-77" not in page["keys"]
    _no_secret_anywhere(tmp_path, server, "cli-Secret-77")


def test_secret_on_the_command_line_is_deprecated_and_warned(capsys):
    from guiagent.cli import main

    assert main(["run", "do it", "--secret", "argv-secret-1", "--start-url", "http://x/"]) == 2
    err = capsys.readouterr().err
    assert "--secret VALUE is deprecated" in err and "--ask-secret" in err


def test_ask_secret_needs_a_terminal(monkeypatch):
    import io

    from guiagent.cli import ask_secret

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(ValueError, match="no terminal"):
        ask_secret("bank_pw")


def test_the_step_executor_judges_a_skills_secret_by_its_scope(
    async_runner, playwright_browser, static_server
):
    from guiagent.agent.step import StepContext, StepExecutor

    async def go():
        async with BrowserEnv(
            start_url=static_server.url_for(PHISH), browser=playwright_browser
        ) as env:
            frame = await env.observe()
            verdicts = {}
            for label, origins in (
                ("elsewhere", ["https://bank.example"]),
                ("here", [static_server.url]),
            ):
                policy = Policy.load(None)
                policy.add_secret(BANK_PW, name="bank_pw", scope=SecretScope(origins=origins))
                executor = StepExecutor(env, policy=policy)
                with executor.typing_allowed({"bank_pw": BANK_PW}):
                    verdicts[label], _ = await executor.gate(
                        Type(text=BANK_PW), StepContext(frame=frame)
                    )
                verdicts[label + " (model)"], _ = await executor.gate(
                    Type(text=BANK_PW), StepContext(frame=frame)
                )
            return verdicts

    verdicts = async_runner.run(go())
    assert (verdicts["elsewhere"].decision, verdicts["elsewhere"].rule) == ("deny", "secret-scope")
    assert verdicts["here"].decision == "allow"
    # outside a skill's call, the same value typed by the model is a leak wherever it is
    assert verdicts["here (model)"].decision == "deny"
    assert verdicts["elsewhere (model)"].decision == "deny"
