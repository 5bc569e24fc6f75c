"""The Agent's helpers of its phases, its questions about a screen, and its use as a library
(``async with``, ``run_sync``): a mixin of Agent.

They read the agent's own attributes (env, skills, executor, redactor, client, ...), which
:class:`guiagent.agent.loop.Agent` sets up.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from guiagent.agent.config import RunResult
from guiagent.agent.sensing import dom_snapshot
from guiagent.agent.state import RunState, Turn
from guiagent.agent.step import StepContext, frame_title
from guiagent.core.actions import ActionSpace, InvalidToolCall, SkillCall
from guiagent.core.env import Frame
from guiagent.core.redact import redact_messages
from guiagent.models.budget import encode_image, plan_image
from guiagent.models.step3vl import Conversation, image_part
from guiagent.record.trajectory import StepRecord

if TYPE_CHECKING:
    from guiagent.agent.loop import Agent


class AgentSupport:
    # --- helpers of the phases -----------------------------------------------------------

    def _step_context(self: Agent, state: RunState, turn: Turn) -> StepContext:
        assert turn.frame is not None and turn.plan is not None
        return StepContext(
            frame=turn.frame,
            trail=turn.step.trail,
            dom=turn.dom,
            shown=turn.frame,  # already redacted in observe()
            redactions=turn.redactions,
            model_action=turn.step.action,
            sent_size=[turn.plan.sent.width, turn.plan.sent.height],
            index=state.index,
        )

    async def _run_skill(self: Agent, action: SkillCall, step: StepRecord) -> tuple[bool, str]:
        """A skill through the registry; its input events go through this run's executor."""
        if self.skills is None:
            raise InvalidToolCall(action.skill, f"no skill named {action.skill!r} is available")
        ran = await self.skills.run(
            action.skill,
            self.env,
            action.params,
            secrets=self.secrets,
            on_secret=self.redactor.add_secret,
            executor=self.executor,
        )
        step.sub_steps = ran.sub_steps
        return ran.ok, ran.detail

    def _action_space(self: Agent, frame: Frame) -> ActionSpace:
        """The built-in actions plus the skills that apply to this screen."""
        if self.skills is None:
            return self.action_space
        tools = self.skills.tools(frame.surface, frame.meta.get("url"), frame_title(frame))
        return ActionSpace(
            list(self.action_space.actions.values()),
            [*self.action_space.extra_tools.values(), *tools],
        )

    async def _typing_into_password(self: Agent) -> bool:
        if self.config.dry_run:
            return self._pointed_at_password
        return await self.executor.typing_into_password()

    def _redacted_args(self: Agent, action: Any) -> dict[str, Any]:
        return {
            k: self.redactor.redact_text(v) if isinstance(v, str) else v
            for k, v in action.arguments().items()
        }

    # --- questions about a screen ------------------------------------------------------

    async def ask(self: Agent, question: str, frame: Frame | None = None) -> str:
        """Ask the model a question about the current screen (no tools); returns its answer text."""
        frame = frame or await self.env.observe()
        frame, _ = await self.redactor.redact(frame, await dom_snapshot(self.env), None)
        plan = plan_image(frame.size, self.max_image_tokens, self.profile.image_rule)
        data = encode_image(frame.image, plan, fmt="JPEG", quality=self.config.jpeg_quality)
        conversation = Conversation(frame.surface, question, self.space, plan.sent)
        content = [image_part(data, "image/jpeg"), {"type": "text", "text": question}]
        messages = [conversation.head()[0], {"role": "user", "content": content}]
        completion = await self.client.complete(redact_messages(self.redactor, messages), None)
        return self.redactor.redact_text(completion.reply.content.strip())

    async def ask_yes_no(
        self: Agent, question: str, frame: Frame | None = None
    ) -> tuple[bool, str]:
        answer = await self.ask(
            f"{question}\nAnswer with yes or no first, then one sentence of why.", frame
        )
        first = answer.strip().lower().lstrip("*\"' ")
        return first.startswith("yes"), answer

    # --- use as a library: `async with Agent(...)` and a synchronous call ---------------

    async def __aenter__(self: Agent) -> Agent:
        return self

    async def __aexit__(self: Agent, *exc: object) -> None:
        """Closes what the agent owns (its model client); the environment stays the caller's."""
        await self.close()

    def run_sync(self: Agent, task: str) -> RunResult:
        """For scripts without an event loop: run ``task`` in a new one. Pass an environment
        not started yet: it is opened and closed around the run, as the model client is."""

        async def main() -> RunResult:
            async with contextlib.AsyncExitStack() as stack:
                if hasattr(self.env, "__aenter__"):
                    await stack.enter_async_context(self.env)  # type: ignore[arg-type]
                try:
                    return await self.run(task)
                finally:
                    await self.close()
                    if self._owns_client:
                        self._client = None  # bound to this loop: the next call makes its own

        return asyncio.run(main())
