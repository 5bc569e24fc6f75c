"""Replay's actions through the one step executor (kill switch, policy, act, outcome).

guiagent.record.replay sits below the agent layer and takes the action performer as a
callable (``replay(act=...)``); the faces (the ``replay`` command, the console) give it this
one, so a replay goes through the same safeguards as a run.
"""

from __future__ import annotations

from PIL import Image

from guiagent.agent.policy import Policy
from guiagent.agent.step import StepContext, StepExecutor
from guiagent.core.env import ActResult, Environment, Frame
from guiagent.core.geometry import FrameTransform, Point, Size
from guiagent.core.killswitch import KillSwitch
from guiagent.record.replay import ActFn, ActRequest


def executor_act(env: Environment, policy: Policy | None, killswitch: KillSwitch | None) -> ActFn:
    """Replay's actions through the agent's step executor: kill switch, policy, act, outcome.

    Replay keeps its own record (replay.json) and checks its own outcomes, so the executor
    records nothing here. Without a policy no frame is needed to judge an action: a frame
    standing for the live page (its URL and title) is given; with one, the screen is observed.
    """
    executor = StepExecutor(env, policy=policy, killswitch=killswitch)

    async def act(request: ActRequest) -> ActResult:
        if policy is not None:
            frame = await env.observe()
        else:
            frame = Frame(
                image=Image.new("RGB", (1, 1)),
                transform=FrameTransform(Size(1, 1), Point(0, 0), 1.0),
                surface=getattr(env, "surface", "browser"),
                meta=dict(request.page or {}),
            )
        trail = []
        for x, y in request.action.points():
            at = frame.transform.screen_to_frame(Point(x, y)) if policy else Point(x, y)
            trail.append({"screen": [x, y], "frame": [at.x, at.y]})
        outcome = await executor.execute(
            request.action,
            StepContext(frame=frame, trail=trail, target_text=request.target_text, record=False),
        )
        if outcome.status == "denied":
            return ActResult(ok=False, detail=f"denied by the policy: {outcome.detail}")
        return ActResult(ok=outcome.ok, detail=outcome.detail)

    return act
