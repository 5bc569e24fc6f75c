"""How a YAML skill runs its steps: through a :class:`~guiagent.scenario.ui.UI` sharing the
caller's step executor (injected into the skills registry by :mod:`guiagent.scenario.ui`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


async def ui_steps_runner(
    ctx: Any, steps: list[Any], variables: Mapping[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    """How a YAML skill runs its steps (injected into the skills registry): a UI sharing
    the caller's executor (its policy, kill switch and recorder); records are collected as
    the skill's sub-steps instead of being appended to the recording."""
    from guiagent.scenario.schema import ScenarioError, scenario_from_data

    target = {"url": "about:blank"} if ctx.env.surface == "browser" else {"window": "*"}
    data = {"name": "skill", "target": target, "steps": steps}
    try:
        scenario = scenario_from_data(data, variables=dict(variables), environ={})
    except ScenarioError as exc:
        return [], str(exc)
    records: dict[int, dict[str, Any]] = {}

    async def keep(record: dict[str, Any]) -> None:
        records[int(record["index"])] = record

    from guiagent.scenario.ui import UI

    ui = UI(ctx.env, ctx.grounder, executor=ctx.executor, sink=keep, settle=scenario.settle)
    out: list[dict[str, Any]] = []
    failure: str | None = None
    for index, step in enumerate(scenario.steps):
        result = await ui.run_step(step, index)
        out.append(
            {
                **records.get(index, {}),
                "label": result.label,
                "status": result.status,
                "ms": round(result.ms, 1),
                "error": result.error,
            }
        )
        if result.status == "failed":
            failure = result.error or result.label
            break
    await ui.close()
    return out, failure
