"""Approvals: who answers when the policy says ``ask`` (a terminal, a callback, a fixed answer)."""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TextIO

from loguru import logger

from guiagent.agent.policy import ActionContext, Policy, Verdict
from guiagent.core.actions import BaseAction, Type
from guiagent.core.env import Frame


class Approver(Protocol):
    """Asked when a verdict is ``ask``; returns True to let the action happen."""

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool: ...


def describe_action(action: BaseAction, max_text: int = 60) -> str:
    args = action.arguments()
    if isinstance(action, Type):
        shown = action.text if len(action.text) <= max_text else action.text[:max_text] + "..."
        args = {"text": shown}
    inner = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in args.items()
    )
    return f"{action.name}({inner})"


class TerminalApprover:
    """Asks on the terminal (rich); with no terminal to ask on, it denies and logs it."""

    def __init__(self, stream: TextIO | None = None, console: Any = None) -> None:
        self.stream = stream
        self.console = console

    def _interactive(self) -> bool:
        stream = self.stream if self.stream is not None else sys.stdin
        try:
            return stream is not None and stream.isatty()
        except (ValueError, OSError):  # closed or detached stream
            return False

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool:
        if not self._interactive():
            logger.warning(
                "action {} needs approval ({}) but there is no terminal to ask on: denied",
                action.name,
                verdict.reason,
            )
            return False
        return await asyncio.to_thread(self._ask, action, verdict)

    def _ask(self, action: BaseAction, verdict: Verdict) -> bool:
        from rich.console import Console
        from rich.markup import escape
        from rich.prompt import Confirm

        console = self.console or Console(stderr=True, soft_wrap=True, emoji=False)
        console.print(
            f"[bold yellow]Approval needed[/]: {escape(describe_action(action))}", highlight=False
        )
        why = verdict.reason + (f" (rule {verdict.rule})" if verdict.rule else "")
        console.print(f"  why: {escape(why)}", highlight=False)
        try:
            answer = Confirm.ask(
                "Allow this action?", default=False, console=console, stream=self.stream
            )
        except EOFError:
            answer = False
        logger.info(
            "user {} action {} (rule {})",
            "approved" if answer else "denied",
            action.name,
            verdict.rule,
        )
        return bool(answer)


class CallbackApprover:
    """Wraps a sync or async callback ``fn(action, verdict, frame) -> bool``."""

    def __init__(
        self, fn: Callable[[BaseAction, Verdict, Frame | None], bool | Awaitable[bool]]
    ) -> None:
        self.fn = fn

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool:
        result = self.fn(action, verdict, frame)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)


class AutoApprover:
    """Always answers the same (tests, dry runs). Counts how often it was asked."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked = 0

    async def __call__(self, action: BaseAction, verdict: Verdict, frame: Frame | None) -> bool:
        self.asked += 1
        return self.answer


async def decide(
    policy: Policy,
    action: BaseAction,
    ctx: ActionContext,
    approver: Approver,
    frame: Frame | None = None,
) -> Verdict:
    """Judge ``action`` and settle an ``ask`` with the approver: the result is allow or deny."""
    verdict = policy.judge(action, ctx)
    if verdict.decision != "ask":
        return verdict
    approved = await approver(action, verdict, frame)
    return Verdict(
        decision="allow" if approved else "deny",
        rule=verdict.rule,
        reason=f"{'approved' if approved else 'denied'} on request: {verdict.reason}",
        asked=True,
    )
