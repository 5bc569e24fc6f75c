"""Policy rules, file loading errors and approvers."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from guiagent.agent.policy import (
    ActionContext,
    AutoApprover,
    CallbackApprover,
    Policy,
    PolicyError,
    PolicyRule,
    TerminalApprover,
    Verdict,
    decide,
)
from guiagent.core.actions import Click, DoubleClick, Drag, Key, Move, Scroll, SkillCall, Type

REPO = Path(__file__).resolve().parents[1]


def rules(text: str) -> Policy:
    return Policy.from_yaml_text(textwrap.dedent(text), source="test.yaml")


def ctx(**kw: object) -> ActionContext:
    return ActionContext(**kw)  # type: ignore[arg-type]


def test_action_kind_and_target_words_word_match_case_insensitive() -> None:
    p = rules(
        """
        rules:
          - name: ask-delete
            decision: ask
            when: {action: [click, double_click], target_words: [Delete, Submit payment]}
        """
    )
    click = Click(x=10, y=10)
    assert p.judge(click, ctx(target_text="DELETE account")).decision == "ask"
    assert p.judge(DoubleClick(x=1, y=1), ctx(target_text="delete")).rule == "ask-delete"
    assert p.judge(click, ctx(target_text="Submit   payment now")).decision == "ask"
    # whole words only, and the kind must match, and no target text means no match
    assert p.judge(click, ctx(target_text="Undeleted items")).decision == "allow"
    assert p.judge(Move(x=10, y=10), ctx(target_text="Delete")).decision == "allow"
    assert p.judge(click, ctx(target_text=None)).decision == "allow"
    verdict = p.judge(click, ctx(target_text="Cancel"))
    assert verdict == Verdict(
        decision="allow", rule=None, reason="no rule matched; default is allow"
    )


def test_target_regex() -> None:
    p = rules(
        """
        rules:
          - {name: r, decision: deny, when: {target_regex: "^rm\\\\b"}}
        """
    )
    assert p.judge(Click(x=0, y=0), ctx(target_text="RM -rf")).decision == "deny"
    assert p.judge(Click(x=0, y=0), ctx(target_text="form")).decision == "allow"


def test_region_in_screen_points_uses_context_point_or_action_points() -> None:
    p = rules(
        """
        rules:
          - name: panel
            decision: deny
            when: {region: [0, 0, 1920, 32]}
          - name: corner
            decision: ask
            when: {region: [[1800, 1000, 120, 80], [0, 1000, 50, 80]]}
        """
    )
    assert p.judge(Click(x=500, y=10), ctx()).rule == "panel"
    assert p.judge(Click(x=500, y=40), ctx()).decision == "allow"
    # the context's screen point wins over the action's own numbers
    assert p.judge(Click(x=500, y=40), ctx(screen_point=(500, 5))).rule == "panel"
    assert p.judge(Click(x=10, y=1010), ctx()).rule == "corner"
    # a drag whose end lands in the panel is caught too
    assert p.judge(Drag(x1=500, y1=500, x2=600, y2=20), ctx()).rule == "panel"
    # actions without points never match a region rule
    assert p.judge(Type(text="hello"), ctx()).decision == "allow"


def test_window_title_glob_regex_substring() -> None:
    p = rules(
        """
        rules:
          - {name: glob, decision: deny, when: {window_title: "*Terminal*"}}
          - {name: regex, decision: ask, when: {window_title: "re:^root@\\\\w+"}}
          - {name: substring, decision: ask, when: {window_title: [keepass]}}
        """
    )
    t = Type(text="ls")
    assert p.judge(t, ctx(window_title="GNOME terminal - bash")).rule == "glob"
    assert p.judge(t, ctx(window_title="root@host: ~")).rule == "regex"
    assert p.judge(t, ctx(window_title="Passwords.kdbx - KeePassXC")).rule == "substring"
    assert p.judge(t, ctx(window_title="Calculator")).decision == "allow"
    assert p.judge(t, ctx(window_title=None)).decision == "allow"


def test_url_and_domain_allow_and_deny_lists() -> None:
    p = rules(
        """
        rules:
          - name: no-typing-elsewhere
            decision: deny
            when: {action: type, domain_not: ["*.example.com", localhost]}
          - name: no-file-urls
            decision: deny
            when: {url: "file://*"}
          - name: ask-on-bank
            decision: ask
            when: {domain: "*.bank.test"}
        """
    )
    typing = Type(text="hello")
    assert (
        p.judge(typing, ctx(surface="browser", url="https://evil.test/form")).rule
        == "no-typing-elsewhere"
    )
    assert p.judge(typing, ctx(surface="browser", url="https://example.com/a")).decision == "allow"
    assert (
        p.judge(typing, ctx(surface="browser", url="https://shop.EXAMPLE.com/")).decision == "allow"
    )
    assert (
        p.judge(typing, ctx(surface="browser", url="http://localhost:8000/x")).decision == "allow"
    )
    assert p.judge(typing, ctx(surface="browser", url="about:blank")).rule == "no-typing-elsewhere"
    # no URL (desktop): URL matchers do not apply
    assert p.judge(typing, ctx(surface="desktop")).decision == "allow"
    assert p.judge(Click(x=1, y=1), ctx(url="file:///etc/passwd")).rule == "no-file-urls"
    assert p.judge(Click(x=1, y=1), ctx(url="https://www.bank.test/pay")).rule == "ask-on-bank"
    assert p.judge(Click(x=1, y=1), ctx(url="https://bank.test/")).rule == "ask-on-bank"
    assert p.judge(Click(x=1, y=1), ctx(url="https://notbank.test/")).decision == "allow"


def test_key_chords_order_insensitive_with_aliases() -> None:
    p = rules(
        """
        rules:
          - name: no-cad
            decision: deny
            when: {keys: [ctrl+alt+delete, [super, l]]}
        """
    )
    assert p.judge(Key(keys=["alt", "control", "del"]), ctx()).rule == "no-cad"
    assert p.judge(Key(keys="Ctrl+Alt+Delete"), ctx()).rule == "no-cad"  # type: ignore[arg-type]
    assert p.judge(Key(keys=["win", "l"]), ctx()).rule == "no-cad"
    assert p.judge(Key(keys=["ctrl", "delete"]), ctx()).decision == "allow"
    assert p.judge(Type(text="ctrl+alt+delete"), ctx()).decision == "allow"


def test_typed_content_regex_and_secrets() -> None:
    p = rules(
        r"""
        secret_patterns: ['\bPIN-\d{4}\b']
        rules:
          - name: no-shell
            decision: deny
            when: {action: type, text_regex: 'rm\s+-rf'}
          - name: no-secrets
            decision: deny
            when: {text_secret: true}
        """
    )
    assert p.judge(Type(text="sudo rm   -rf /"), ctx()).rule == "no-shell"
    assert (
        p.judge(Type(text="my key sk-proj-abcdefghijklmnopqrstuvwxyz"), ctx()).rule == "no-secrets"
    )
    assert p.judge(Type(text="AKIAABCDEFGHIJKLMNOP"), ctx()).rule == "no-secrets"
    assert p.judge(Type(text="PIN-1234"), ctx()).rule == "no-secrets"
    assert p.judge(Type(text="hunter2"), ctx()).decision == "allow"
    p.add_secret("hunter2")
    assert p.judge(Type(text="pw: hunter2\n"), ctx()).rule == "no-secrets"
    assert p.judge(Click(x=1, y=1), ctx()).decision == "allow"


def test_surface_and_skill_kinds() -> None:
    p = rules(
        """
        rules:
          - {name: s, decision: deny, when: {action: "skill:shell"}}
          - {name: b, decision: ask, when: {surface: browser, action: scroll}}
        """
    )
    assert p.judge(SkillCall(skill="shell"), ctx()).rule == "s"
    assert p.judge(SkillCall(skill="open_file"), ctx()).decision == "allow"
    assert p.judge(Scroll(), ctx(surface="browser")).rule == "b"
    assert p.judge(Scroll(), ctx(surface="desktop")).decision == "allow"


def test_first_match_in_file_order_wins_and_priority_lifts() -> None:
    text = """
        default: deny
        rules:
          - {name: allow-calc, decision: allow, when: {window_title: Calculator}}
          - {name: deny-keys, decision: deny, PRIORITY when: {action: key}}
          - {name: ask-keys, decision: ask, when: {action: key}}
        """
    in_order = rules(text.replace("PRIORITY ", ""))
    assert in_order.judge(Key(keys=["a"]), ctx(window_title="Calculator")).rule == "allow-calc"
    assert in_order.judge(Key(keys=["a"]), ctx(window_title="Editor")).rule == "deny-keys"
    assert in_order.judge(Click(x=1, y=1), ctx(window_title="Editor")).decision == "deny"  # default
    lifted = rules(text.replace("PRIORITY ", "priority: 5, "))
    assert lifted.judge(Key(keys=["a"]), ctx(window_title="Calculator")).rule == "deny-keys"
    assert lifted.judge(Click(x=1, y=1), ctx(window_title="Calculator")).rule == "allow-calc"


def test_builtin_default_policy_matches_shipped_file_and_behaves() -> None:
    builtin = Policy.load(None)
    shipped = Policy.from_yaml(REPO / "policies" / "default.yaml")
    assert builtin.rules == shipped.rules and builtin.default == shipped.default == "allow"
    for word in ("Delete", "Send", "Pay", "Purchase", "Submit payment"):
        assert (
            builtin.judge(Click(x=5, y=5), ctx(target_text=f"  {word.upper()} ")).decision == "ask"
        )
    assert builtin.judge(Key(keys=["ctrl", "alt", "delete"]), ctx()).decision == "deny"
    assert builtin.judge(Type(text="ghp_" + "a" * 36), ctx()).decision == "deny"
    assert builtin.judge(Type(text="hello world"), ctx()).decision == "allow"
    assert builtin.judge(Click(x=5, y=5), ctx(target_text="Open")).decision == "allow"


@pytest.mark.parametrize("path", sorted((REPO / "policies").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_policy_files_load(path: Path) -> None:
    policy = Policy.from_yaml(path)
    assert policy.rules and policy.source == str(path)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("rules:\n  - name: a\n    decision: maybe\n", 3, "decision"),
        ("rules:\n  - name: a\n    decision: deny\n    when:\n      actoin: click\n", 5, "actoin"),
        (
            "rules:\n  - name: a\n    decision: deny\n    when:\n      action: klick\n",
            5,
            "unknown action kind 'klick'",
        ),
        (
            "rules:\n  - name: a\n    decision: deny\n    when:\n      text_regex: '(['\n",
            5,
            "regular expression",
        ),
        (
            "rules:\n  - name: a\n    decision: deny\n    when:\n      region: [0, 0, -5, 10]\n",
            5,
            "positive",
        ),
        (
            "rules:\n  - name: a\n    decision: deny\n  - name: a\n    decision: allow\n",
            4,
            "duplicate rule name",
        ),
        (
            "rules:\n  - name: a\n    decision: deny\n    when: {action: [click}\n",
            4,
            "invalid YAML",
        ),
        ("default: perhaps\nrules: []\n", 1, "default must be"),
        ("\n\nrulez: []\n", 3, "unknown top-level key 'rulez'"),
        ("", 1, "empty"),
    ],
)
def test_bad_policy_file_names_file_line_and_problem(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        Policy.from_yaml(path)
    err = info.value
    assert err.path == str(path) and err.line == line, str(err)
    assert fragment in str(err) and str(err).startswith(f"{path}:{line}: ")


def test_missing_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy file"):
        Policy.load(tmp_path / "nope.yaml")


def test_decide_settles_ask_with_approvers() -> None:
    policy = Policy([PolicyRule(name="ask-all", decision="ask")])
    yes, no = AutoApprover(True), AutoApprover(False)
    allowed = asyncio.run(decide(policy, Click(x=1, y=1), ctx(), yes))
    denied = asyncio.run(decide(policy, Click(x=1, y=1), ctx(), no))
    assert (allowed.decision, allowed.asked, allowed.rule) == ("allow", True, "ask-all")
    assert (denied.decision, denied.asked) == ("deny", True)
    assert yes.asked == no.asked == 1
    # allow and deny verdicts never consult the approver
    quiet = AutoApprover(False)
    assert asyncio.run(decide(Policy(), Click(x=1, y=1), ctx(), quiet)).decision == "allow"
    assert quiet.asked == 0


def test_callback_approver_sync_and_async() -> None:
    seen: list[tuple[str, str | None]] = []

    def sync_cb(action, verdict, frame):  # type: ignore[no-untyped-def]
        seen.append((action.name, verdict.rule))
        return action.name == "click"

    async def async_cb(action, verdict, frame):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0)
        return False

    verdict = Verdict(decision="ask", rule="r", reason="why")
    assert asyncio.run(CallbackApprover(sync_cb)(Click(x=1, y=1), verdict, None)) is True
    assert asyncio.run(CallbackApprover(sync_cb)(Type(text="x"), verdict, None)) is False
    assert asyncio.run(CallbackApprover(async_cb)(Click(x=1, y=1), verdict, None)) is False
    assert seen == [("click", "r"), ("type", "r")]


def test_terminal_approver_denies_without_a_tty() -> None:
    verdict = Verdict(decision="ask", rule="ask-delete", reason="may delete")
    approver = TerminalApprover(stream=io.StringIO("y\n"))  # not a TTY, even with a "y" waiting
    assert asyncio.run(approver(Click(x=1, y=1), verdict, None)) is False


def test_terminal_approver_denies_in_a_process_without_terminal() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from loguru import logger
        logger.remove(); logger.add(sys.stderr, level="WARNING")
        from guiagent.core.actions import Click
        from guiagent.agent.policy import Policy, TerminalApprover, decide, ActionContext
        logger.enable("guiagent")  # a library leaves its log off until the application asks
        v = asyncio.run(decide(Policy.load(None), Click(x=1, y=1), ActionContext(target_text="Delete"),
                               TerminalApprover()))
        print(v.decision, v.asked)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["deny", "True"]
    assert "no terminal to ask on: denied" in proc.stderr


def test_terminal_approver_asks_on_a_real_tty() -> None:
    import os
    import pty
    import select

    script = textwrap.dedent(
        """
        import asyncio, sys
        from loguru import logger
        logger.remove()
        from guiagent.core.actions import Click
        from guiagent.agent.policy import ActionContext, Policy, TerminalApprover, decide
        v = asyncio.run(decide(Policy.load(None), Click(x=1, y=1), ActionContext(target_text="Pay"),
                               TerminalApprover()))
        print("RESULT", v.decision, flush=True)
        """
    )
    results = []
    for answer in ("y", "n"):
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [sys.executable, "-c", script], stdin=slave, stdout=slave, stderr=slave
        )
        os.close(slave)
        output = b""
        try:
            while b"Allow this action?" not in output:
                ready, _, _ = select.select([master], [], [], 30)
                assert ready, output
                output += os.read(master, 4096)
            os.write(master, answer.encode() + b"\n")
            while b"RESULT" not in output or not output.rstrip().endswith((b"allow", b"deny")):
                ready, _, _ = select.select([master], [], [], 30)
                assert ready, output
                output += os.read(master, 4096)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        assert b"Approval needed" in output and b"click(x=1, y=1)" in output
        results.append(output.split(b"RESULT")[-1].split()[0].decode())
    assert results == ["allow", "deny"]
