"""Reusable procedures for the model (as tools) and for scenarios (as ``use:`` steps)."""

from guiagent.skills.model import (
    AppliesTo,
    Secret,
    SecretEntry,
    SecretScopeError,
    SecretStore,
    Skill,
    SkillError,
    SkillParam,
    skill,
)
from guiagent.skills.registry import (
    SkillContext,
    SkillOutcome,
    SkillRegistry,
    StepsRunner,
    load_registry,
    run_skill,
    use_steps_runner,
)

__all__ = [
    "AppliesTo",
    "Secret",
    "SecretEntry",
    "SecretScopeError",
    "SecretStore",
    "Skill",
    "SkillContext",
    "SkillError",
    "SkillOutcome",
    "SkillParam",
    "SkillRegistry",
    "StepsRunner",
    "load_registry",
    "run_skill",
    "skill",
    "use_steps_runner",
]
