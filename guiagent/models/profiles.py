"""Model profiles as data: what differs between the VLMs guiagent can drive.

A profile names the served model, its sampling defaults, the coordinate space its answers
use, how it prices images, and the parser quirks of its output. Built-ins ship as YAML in
``guiagent/models/profiles/``; users can write their own and load them by path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guiagent.core import yamlio
from guiagent.core.geometry import CoordSpace
from guiagent.models.budget import DEFAULT_MAX_IMAGE_TOKENS, ImageRule

PROFILE_DIR = Path(__file__).with_name("profiles")
DEFAULT_PROFILE = "step3-vl"


class ProfileError(ValueError):
    """A profile that does not exist or does not validate."""


class ModelProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    served_model_name: str
    sampling: dict[str, Any] = Field(default_factory=dict)
    coord_space: CoordSpace = CoordSpace.IMAGE
    image_rule: ImageRule = Field(default_factory=ImageRule)
    max_image_tokens: int = Field(default=DEFAULT_MAX_IMAGE_TOKENS, gt=0)
    # where servers put the reasoning text (SGLang: reasoning_content; newer vLLM: reasoning)
    reasoning_fields: list[str] = Field(default_factory=lambda: ["reasoning_content", "reasoning"])
    # the chat template opens the assistant turn inside <think>, so output may lack the opening tag
    think_in_template: bool = False
    tool_call_format: Literal["hermes"] = "hermes"
    images_per_request: int = Field(default=1, ge=1)

    def with_overrides(self, **changes: Any) -> ModelProfile:
        """A copy with some fields replaced (validated), e.g. from command-line flags."""
        data = self.model_dump()
        data.update({k: v for k, v in changes.items() if v is not None})
        return _validate(data, f"profile {self.name!r} with overrides")


def _validate(data: Any, where: str) -> ModelProfile:
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: a profile must be a mapping, got {type(data).__name__}")
    try:
        return ModelProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"{where}: invalid profile: {exc}") from exc


def load_profile(path: str | Path) -> ModelProfile:
    """Read a profile from a YAML file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from exc
    try:
        data = yamlio.parse_yaml(raw, str(path), line_map=False).data
    except yamlio.YamlError as exc:
        raise ProfileError(str(exc)) from exc
    return _validate(data, str(path))


def list_profiles() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(load_profile(p).name for p in PROFILE_DIR.glob("*.yaml"))


def get_profile(name: str = DEFAULT_PROFILE) -> ModelProfile:
    """A built-in profile by name, or a profile file when ``name`` is a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in {".yaml", ".yml"} and candidate.exists():
        return load_profile(candidate)
    for path in PROFILE_DIR.glob("*.yaml"):
        profile = load_profile(path)
        if profile.name == name:
            return profile
    raise ProfileError(
        f"unknown model profile {name!r}; built-in profiles: {', '.join(list_profiles())}"
    )
