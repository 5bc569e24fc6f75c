"""Where a scenario's ``use:`` steps find skills: beside the scenario, in the project, by option.

Looked up, later winning over earlier: the built-ins and installed packages, the project's
``skills/`` (the project root is the nearest folder above the scenario holding
``pyproject.toml`` or ``.git``; else the working directory), every ``skills/`` folder between
that root and the scenario's own folder (the nearest wins), then ``--skills`` paths.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROJECT_MARKERS = ("pyproject.toml", ".git")


def project_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` holding pyproject.toml or .git."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return None


def skill_dirs(scenario_path: str | Path | None) -> tuple[Path | None, list[Path]]:
    """(the project's skills folder, the ``skills/`` folders from the root down to the scenario's)."""
    if scenario_path is None:
        return None, []
    folder = Path(scenario_path).resolve().parent
    root = project_root(folder)
    project = (root or Path.cwd()) / "skills"
    chain = [folder, *folder.parents]
    # strictly below the root; with no project, only the scenario's own folder
    chain = chain[: chain.index(root)] if root is not None and root in chain else chain[:1]
    nearer = [d / "skills" for d in reversed(chain) if (d / "skills").is_dir()]
    return project, [d for d in nearer if d.resolve() != project.resolve()]


@functools.lru_cache(maxsize=32)
def _registry(project: Path | None, paths: tuple[Path, ...]) -> Any:
    from guiagent.skills import load_registry

    return load_registry(paths, project_dir=project)


def scenario_skills(scenario: Any, extra: Sequence[str | Path] = ()) -> Any:
    """The SkillRegistry for ``scenario`` (its file's folders, its project, then ``extra``)."""
    project, nearer = skill_dirs(scenario.path)
    extra = [*getattr(scenario, "skill_paths", ()), *extra]
    return _registry(project, tuple(nearer) + tuple(Path(p).resolve() for p in extra))


class LazySkills:
    """The scenario's registry, loaded on the first ``use:`` step (a scenario without one never
    reads a skill file, so a broken one cannot fail it)."""

    def __init__(self, scenario: Any) -> None:
        self.scenario = scenario

    async def run(self, *args: Any, **kwargs: Any) -> Any:
        return await scenario_skills(self.scenario).run(*args, **kwargs)
