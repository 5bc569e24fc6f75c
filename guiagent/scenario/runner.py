"""Run a YAML scenario: a thin layer over the Python action API (:class:`guiagent.scenario.ui.UI`).

Each step of the file goes to :meth:`UI.run_step`, the same method ``ui.click(...)``,
``ui.type(...)`` and the others call, so a step behaves the same written either way. The
first failing step stops the scenario (the rest are ``skipped``); its frame is saved beside
the recording and its message names the step, what was expected and what was seen.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from guiagent.agent.step import StepExecutor
from guiagent.core.env import Environment
from guiagent.core.redact import Redactor
from guiagent.scenario.ground import (
    StepFailure,
    WeakMatch,
    ambiguous_message,
    match_pattern,
    not_found_message,
    step_label,
)
from guiagent.scenario.results import ScenarioResult, StepResult, StepStatus
from guiagent.scenario.schema import Scenario, SettleOptions
from guiagent.scenario.skill_lookup import LazySkills
from guiagent.scenario.ui import UI, AgentFactory

__all__ = [
    "AgentFactory",
    "ScenarioResult",
    "ScenarioRunner",
    "StepFailure",
    "StepResult",
    "StepStatus",
    "WeakMatch",
    "ambiguous_message",
    "match_pattern",
    "not_found_message",
    "run_scenario",
    "scenario_redactor",
]


def scenario_redactor(scenario: Scenario) -> Redactor:
    """The run's redactor: knows the scenario's secret values (more join as they are typed)."""
    return Redactor(secrets=list(scenario.secrets.values()))


class ScenarioRunner:
    """Runs one scenario on one environment; create one per run.

    ``executor``: the run's step executor (its policy, kill switch, recorder); without one
    a plain one is made from ``recorder`` and ``redactor`` (no policy).
    """

    def __init__(
        self,
        scenario: Scenario,
        env: Environment,
        grounder: Any,
        *,
        recorder: Any = None,
        agent_factory: AgentFactory | None = None,
        settle_opts: SettleOptions | None = None,
        out_dir: str | Path | None = None,
        redactor: Redactor | None = None,
        executor: StepExecutor | None = None,
    ) -> None:
        self.scenario = scenario
        executor = executor or StepExecutor(
            env, redactor=redactor or scenario_redactor(scenario), recorder=recorder
        )
        self.ui = UI(
            env,
            grounder,
            executor=executor,
            secrets=scenario.secrets,
            agent_factory=agent_factory,
            settle=settle_opts or scenario.settle,
            base_dir=scenario.base_dir,
            out_dir=out_dir,
            step_timeout=scenario.step_timeout,
            skills=LazySkills(scenario),  # beside the file, in its project, --skills
        )
        self.redactor = executor.redactor
        self.recorder = executor.recorder

    async def run(self) -> ScenarioResult:
        started = time.perf_counter()
        results: list[StepResult] = []
        failed = False
        for index, step in enumerate(self.scenario.steps):
            if failed:
                label = self.redactor.redact_text(step_label(index, step.kind, step.value))
                results.append(
                    StepResult(index=index, kind=step.kind, label=label, status="skipped")
                )
                continue
            results.append(await self.ui.run_step(step, index))
            failed = results[-1].status == "failed"
        status: Literal["passed", "failed"] = "failed" if failed else "passed"
        await self.ui.close()
        # a secret learned at a later step (typed into a password field) may be in earlier text
        redact = self.ui.executor.redact
        results = [StepResult.model_validate(redact(r.model_dump())) for r in results]
        return ScenarioResult(
            name=self.scenario.name,
            path=self.scenario.path,
            status=status,
            steps=results,
            ms=(time.perf_counter() - started) * 1000,
            run_dir=str(self.recorder.run_dir) if self.recorder is not None else None,
        )


async def run_scenario(
    scenario: Scenario,
    env: Environment,
    grounder: Any,
    *,
    recorder: Any = None,
    agent_factory: AgentFactory | None = None,
    settle_opts: SettleOptions | None = None,
    out_dir: str | Path | None = None,
    redactor: Redactor | None = None,
    executor: StepExecutor | None = None,
) -> ScenarioResult:
    """Run every step of ``scenario`` on ``env``; stops at the first failing step.

    ``grounder`` is a :class:`guiagent.grounding.local.LocalGrounder`; ``recorder`` a
    :class:`guiagent.record.trajectory.Recorder` (its run directory also receives failure
    frames and screenshots, unless ``out_dir`` is given); ``agent_factory(env)`` builds the
    agent used by ``ai``/``ai_assert`` steps (None: those steps fail asking for a model);
    ``redactor`` the run's :func:`scenario_redactor` when the caller also writes about the run;
    ``executor`` a step executor carrying a policy and kill switch (see :mod:`guiagent.agent.step`).
    """
    runner = ScenarioRunner(
        scenario,
        env,
        grounder,
        recorder=recorder,
        agent_factory=agent_factory,
        settle_opts=settle_opts,
        out_dir=out_dir,
        redactor=redactor,
        executor=executor,
    )
    return await runner.run()
