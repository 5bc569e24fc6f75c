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
    load_registry,
    run_skill,
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
    "load_registry",
    "run_skill",
    "skill",
]
