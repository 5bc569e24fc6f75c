"""Finding skills (built-ins, the project's ``skills/``, entry points, paths) and running them."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from loguru import logger
from pydantic import BaseModel, Field

from guiagent.agent.step import StepContext, StepExecutor, StepOutcome
from guiagent.core.actions import BaseAction, ExtraTool, SkillCall
from guiagent.core.env import Environment
from guiagent.core.geometry import Point
from guiagent.skills.model import (
    SecretScopeError,
    SecretStore,
    Skill,
    SkillError,
    skill_from_yaml,
)

ENTRY_POINT_GROUP = "guiagent.skills"
BUILTIN_DIR = Path(__file__).parent / "builtin"


class StepsRunner(Protocol):
    """Runs scenario-language steps for a YAML skill (the scenario layer provides it: skills
    never import the scenario runner). Returns the sub-step records and the failure, if any."""

    async def __call__(
        self, ctx: SkillContext, steps: list[Any], variables: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], str | None]: ...


_default_steps_runner: StepsRunner | None = None


def use_steps_runner(runner: StepsRunner) -> None:
    """Set the steps runner a registry uses when it was given none (the scenario layer's)."""
    global _default_steps_runner
    _default_steps_runner = runner


class SkillContext:
    """What a skill gets: the environment, a grounder, secrets, the run's step executor.

    Every input event a skill makes goes through ``executor`` (``await ctx.act(action)`` in
    Python skills; YAML steps via the injected steps runner), so the run's policy, kill
    switch and recorder see it. ``sub_steps`` collects what the skill did, as step records.
    """

    def __init__(
        self,
        env: Environment,
        secrets: SecretStore,
        grounder: Any = None,
        executor: StepExecutor | None = None,
        steps_runner: StepsRunner | None = None,
    ) -> None:
        self.env = env
        self.secrets = secrets
        self._grounder = grounder
        self.executor = executor or StepExecutor(env)
        self.steps_runner = steps_runner
        self.sub_steps: list[dict[str, Any]] = []

    @property
    def grounder(self) -> Any:
        if self._grounder is None:
            from guiagent.grounding.local import LocalGrounder

            self._grounder = LocalGrounder()
        return self._grounder

    async def act(self, action: BaseAction) -> StepOutcome:
        """One input event (screen coordinates) through the run's executor; SkillError when the
        policy denies it or the environment refuses it."""
        frame = await self.env.observe()
        screen = [[float(x), float(y)] for x, y in action.points()]
        trail = []
        for sx, sy in screen:
            point = frame.transform.screen_to_frame(Point(sx, sy))
            trail.append({"space": "image", "frame": [point.x, point.y], "screen": [sx, sy]})
        outcome = await self.executor.execute(
            action, StepContext(frame=frame, trail=trail, index=len(self.sub_steps))
        )
        label = f"{action.name}"
        self.sub_steps.append(
            {
                **outcome.record,
                "label": label,
                "status": "passed" if outcome.ok else "failed",
                "ms": round(outcome.ms, 1),
                "error": None if outcome.ok else outcome.detail,
            }
        )
        if not outcome.ok:
            raise SkillError(f"{label}: {outcome.status}: {outcome.detail}")
        return outcome

    async def run_steps(
        self,
        steps: list[Any],
        variables: Mapping[str, Any] | None = None,
        hidden: Iterable[str] = (),
    ) -> None:
        """Run scenario-language steps on this environment; raise SkillError at the first failure."""
        runner = self.steps_runner or _default_steps_runner
        if runner is None:
            raise SkillError(
                "this skill runs scenario steps, but no steps runner was given "
                "(import guiagent.scenario.runner, or pass steps_runner=)"
            )
        values = {k: str(v) for k, v in (variables or {}).items()}
        records, failure = await runner(self, steps, values)
        for record in records:
            self.sub_steps.append(
                {
                    **record,
                    "label": _hide(str(record.get("label", "")), hidden),
                    "error": _hide(str(record.get("error") or ""), hidden) or None,
                }
            )
        if failure is not None:
            raise SkillError(_hide(failure, hidden))


def _hide(text: str, values: Iterable[str]) -> str:
    for value in values:
        if value:
            text = text.replace(value, "[REDACTED]")
    return text


class SkillOutcome(BaseModel):
    ok: bool
    detail: str = ""
    sub_steps: list[dict[str, Any]] = Field(default_factory=list)
    ms: float = 0.0
    denied: bool = False  # refused before anything was typed (a secret out of its scope)


class SkillRegistry:
    def __init__(
        self, skills: Iterable[Skill] = (), steps_runner: StepsRunner | None = None
    ) -> None:
        self.skills: dict[str, Skill] = {}
        self.steps_runner = steps_runner  # None: the one the scenario layer registered
        for item in skills:
            self.add(item)

    def add(self, item: Skill) -> None:
        if item.name in self.skills:
            logger.info(
                "skill {} from {} replaces the one from {}",
                item.name,
                item.source,
                self.skills[item.name].source,
            )
        self.skills[item.name] = item

    def get(self, name: str) -> Skill:
        try:
            return self.skills[name]
        except KeyError:
            raise KeyError(
                f"unknown skill {name!r}; known skills: {', '.join(sorted(self.skills)) or 'none'}"
            ) from None

    def applicable(self, surface: str | None, url: str | None, title: str | None) -> list[Skill]:
        return [s for s in self.skills.values() if s.applies_to.matches(surface, url, title)]

    def tools(self, surface: str | None, url: str | None, title: str | None) -> list[ExtraTool]:
        """The skills that apply to this screen, as tools for the model."""
        return [
            ExtraTool(
                name=s.name,
                description=s.description,
                parameters=s.parameters_schema(),
                build=self._builder(s),
            )
            for s in self.applicable(surface, url, title)
        ]

    @staticmethod
    def _builder(item: Skill):  # -> Callable[[dict], BaseAction]
        def build(arguments: dict[str, Any]) -> BaseAction:
            return SkillCall(skill=item.name, params=item.validate_params(arguments))

        return build

    async def run(
        self,
        name: str,
        env: Environment,
        params: Mapping[str, Any],
        secrets: SecretStore | None = None,
        grounder: Any = None,
        on_secret: Callable[[str], None] | None = None,
        executor: StepExecutor | None = None,
        steps_runner: StepsRunner | None = None,
        where: tuple[str | None, str | None] | None = None,
    ) -> SkillOutcome:
        """Run a skill with validated parameters; secrets are resolved here and hidden from the outcome.

        ``executor``: the run's step executor, through which every input event of the skill
        goes (its policy, kill switch and recorder); ``steps_runner``: how YAML steps run;
        ``where``: the page URL and window title (default: asked from ``env``) that a
        secret's scope is checked against.
        """
        item = self.get(name)
        values = item.validate_params(params)
        secrets = secrets or SecretStore()
        hidden: list[str] = []
        named: dict[str, str] = {}  # secret name -> value, for the executor's policy checks
        ctx = SkillContext(env, secrets, grounder, executor, steps_runner or self.steps_runner)
        started = time.perf_counter()
        url, title = where if where is not None else _where(env)
        try:
            for key in item.secret_params:
                if values.get(key) is not None:
                    # the secret is bound to origins or windows: refuse it anywhere else,
                    # before its value is even looked up
                    secrets.check_scope(values[key], url, title)
                    secret_name = values[key]
                    values[key] = secrets.get(secret_name)
                    hidden.append(values[key])
                    named[secret_name] = values[key]
                    if on_secret is not None:  # e.g. the loop's redactor, before anything is typed
                        on_secret(values[key])
            with ctx.executor.typing_allowed(named):
                if item.function is not None:
                    detail = await item.function(ctx, **values)
                else:
                    await ctx.run_steps(item.steps or [], values, hidden)
                    detail = f"skill {name} done ({len(ctx.sub_steps)} steps)"
        except SecretScopeError as exc:
            logger.warning("skill {}: {}", name, exc)
            return SkillOutcome(
                ok=False,
                detail=str(exc),
                sub_steps=ctx.sub_steps,
                ms=_ms(started),
                denied=True,
            )
        except SkillError as exc:
            return SkillOutcome(
                ok=False, detail=_hide(str(exc), hidden), sub_steps=ctx.sub_steps, ms=_ms(started)
            )
        except Exception as exc:  # a bug in a skill's own code: reported, not a crash of the run
            # no traceback here: loguru's variable dump would print the secret values in locals
            detail = _hide(f"skill {name} raised {type(exc).__name__}: {exc}", hidden)
            logger.error("{} (at {})", detail, _where_raised(exc))
            return SkillOutcome(ok=False, detail=detail, sub_steps=ctx.sub_steps, ms=_ms(started))
        return SkillOutcome(
            ok=True,
            detail=_hide(str(detail or f"skill {name} done"), hidden),
            sub_steps=ctx.sub_steps,
            ms=_ms(started),
        )


def _where(env: Environment) -> tuple[str | None, str | None]:
    """The page URL and the window title the environment is on now (for secret scopes)."""
    page = getattr(env, "page", None)
    url = getattr(page, "url", None) if page is not None else None
    title_of = getattr(env, "_window_title", None)  # the desktop's active window
    title = None
    if callable(title_of):
        try:
            title = title_of()
        except Exception as exc:  # no window manager answer: no window-bound secret then
            logger.debug("no active window title: {}", exc)
    return (url if isinstance(url, str) else None, title if isinstance(title, str) else None)


def _where_raised(exc: BaseException) -> str:
    """file:line of the innermost frame of ``exc`` (no locals, no values)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# --- loading ----------------------------------------------------------------------------


def skills_in_module(module: ModuleType) -> list[Skill]:
    return [
        obj.__guiagent_skill__
        for obj in vars(module).values()
        if hasattr(obj, "__guiagent_skill__")
    ]


def _load_python_file(path: Path) -> list[Skill]:
    module_name = f"guiagent_skill_{path.stem}_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise SkillError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise SkillError(f"{path}: importing it failed: {exc!r}") from exc
    return skills_in_module(module)


def load_path(path: Path) -> list[Skill]:
    """Skills from a YAML file, a Python file, or every such file in a directory."""
    if path.is_dir():
        found: list[Skill] = []
        for child in sorted(path.iterdir()):
            if child.suffix in (".yaml", ".yml", ".py") and not child.name.startswith(("_", ".")):
                found.extend(load_path(child))
        return found
    if path.suffix in (".yaml", ".yml"):
        return [skill_from_yaml(path)]
    if path.suffix == ".py":
        return _load_python_file(path)
    raise SkillError(f"{path}: not a skill file (.yaml, .yml or .py) or directory")


def _from_entry_points() -> list[Skill]:
    found: list[Skill] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            target = ep.load()
        except Exception as exc:
            logger.warning("skill entry point {} failed to load: {!r}", ep.name, exc)
            continue
        if isinstance(target, ModuleType):
            found.extend(skills_in_module(target))
        elif hasattr(target, "__guiagent_skill__"):
            found.append(target.__guiagent_skill__)
        elif isinstance(target, (str, Path)):
            found.extend(load_path(Path(target)))
    return found


def load_registry(
    paths: Iterable[Path | str] = (),
    *,
    builtin: bool = True,
    project_dir: Path | None = None,
    use_entry_points: bool = True,
    steps_runner: StepsRunner | None = None,
) -> SkillRegistry:
    """Built-ins, then installed packages' entry points, then ``./skills``, then the given paths (later wins)."""
    registry = SkillRegistry(steps_runner=steps_runner)
    if builtin:
        from guiagent.skills import builtin_python as builtin_module

        for item in [*load_path(BUILTIN_DIR), *skills_in_module(builtin_module)]:
            registry.add(item)
    if use_entry_points:
        for item in _from_entry_points():
            registry.add(item)
    project = project_dir if project_dir is not None else Path.cwd() / "skills"
    if project.is_dir():
        for item in load_path(project):
            registry.add(item)
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise SkillError(f"skill path {path} does not exist")
        for item in load_path(path):
            registry.add(item)
    return registry


async def run_skill(
    name: str,
    env: Environment,
    params: Mapping[str, Any],
    registry: SkillRegistry | None = None,
    secrets: SecretStore | None = None,
    *,
    executor: StepExecutor | None = None,
    steps_runner: StepsRunner | None = None,
    grounder: Any = None,
) -> SkillOutcome:
    """Run one skill by name (the scenario runner's ``use:`` step); raises SkillError when it fails."""
    registry = registry or load_registry()
    outcome = await registry.run(
        name,
        env,
        params,
        secrets=secrets,
        grounder=grounder,
        executor=executor,
        steps_runner=steps_runner,
    )
    if not outcome.ok:
        raise SkillError(f"skill {name!r} failed: {outcome.detail}")
    return outcome
