"""``guiagent.run_scenario``: run one scenario (a file or a loaded one) from Python."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from guiagent.app import RunSettings, agent_factory
from guiagent.scenario.runner import ScenarioResult
from guiagent.scenario.schema import Scenario, load_scenario
from guiagent.scenario.session import ScenarioSession, SessionOptions


async def run_scenario(
    scenario: Scenario | str | Path,
    *,
    model: str | None = None,
    record_dir: str | Path | None = None,
    record: bool = True,
    headless: bool = True,
    variables: Mapping[str, str] | None = None,
    settings: RunSettings | None = None,
) -> ScenarioResult:
    """Set up the scenario's browser page or desktop program, run its steps, tear down.

    ``model``: a model server URL for ``ai:`` steps (their agent is assembled by
    :mod:`guiagent.app`, with ``settings``); None or ``"local"`` runs without a model (then
    ``ai:`` steps fail with a clear message). A failing scenario is a result, not an
    exception; a file that does not load raises :class:`~guiagent.scenario.schema.ScenarioError`.
    """
    if not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario, variables=variables)
    factory = agent_factory(model, settings) if model and model != "local" else None
    options = SessionOptions(
        record_dir=Path(record_dir) if record_dir is not None else None,
        record=record,
        headless=headless,
        agent_factory=factory,
    )
    async with ScenarioSession(options) as session:
        return await session.run(scenario)
