"""Model profiles are data: built-ins ship as YAML, user files load and validate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from guiagent.core.geometry import CoordSpace, Size
from guiagent.models.budget import ImageRule, plan_image
from guiagent.models.profiles import (
    DEFAULT_PROFILE,
    PROFILE_DIR,
    ModelProfile,
    ProfileError,
    get_profile,
    list_profiles,
    load_profile,
)


def test_builtins_listed() -> None:
    assert list_profiles() == ["qwen2.5-vl", "step3-vl", "ui-tars-1.5"]
    assert DEFAULT_PROFILE == "step3-vl"
    assert sorted(p.name for p in PROFILE_DIR.glob("*.yaml")) == [
        "qwen2.5-vl.yaml",
        "step3-vl.yaml",
        "ui-tars-1.5.yaml",
    ]


def test_step3_vl_profile() -> None:
    p = get_profile()
    assert p.name == "step3-vl"
    assert p.served_model_name == "stepfun-ai/Step3-VL-10B"
    assert p.sampling == {"temperature": 1.0, "top_p": 1.0, "top_k": -1}
    assert p.coord_space is CoordSpace.IMAGE
    assert p.image_rule == ImageRule(kind="step3vl")
    assert p.max_image_tokens == 670
    assert p.think_in_template is True
    assert p.tool_call_format == "hermes"
    assert p.reasoning_fields == ["reasoning_content", "reasoning"]
    assert plan_image(Size(1280, 720), p.max_image_tokens, p.image_rule).tokens == 670


def test_qwen_and_ui_tars_profiles() -> None:
    qwen = get_profile("qwen2.5-vl")
    assert qwen.image_rule.kind == "qwen25vl"
    assert qwen.coord_space is CoordSpace.IMAGE
    tars = get_profile("ui-tars-1.5")
    assert tars.coord_space is CoordSpace.NORM1000
    assert tars.image_rule.kind == "qwen25vl"
    assert tars.image_rule.params["factor"] == 28


def test_unknown_profile_is_named_error() -> None:
    with pytest.raises(ProfileError, match=r"unknown model profile 'gpt-vision'.*step3-vl"):
        get_profile("gpt-vision")


def test_load_user_profile_and_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "my-model",
                "served_model_name": "me/my-model",
                "coord_space": "norm1",
                "image_rule": {"kind": "fixed", "params": {"tokens": 256}},
                "max_image_tokens": 300,
            }
        )
    )
    p = load_profile(path)
    assert p.coord_space is CoordSpace.NORM1
    assert p.image_rule.tokens(Size(10, 10)) == 256
    assert get_profile(str(path)) == p


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("name: x\nserved_model_name: y\ncoord_space: pixels\n", "coord_space"),
        ("name: x\nserved_model_name: y\nmax_image_tokens: 0\n", "max_image_tokens"),
        ("name: x\nserved_model_name: y\nunknown_field: 1\n", "unknown_field"),
        ("- just\n- a list\n", "must be a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_profile_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ProfileError, match=match):
        load_profile(path)


def test_missing_file() -> None:
    with pytest.raises(ProfileError, match="cannot read profile"):
        load_profile("/nonexistent/profile.yaml")


def test_overrides_validate() -> None:
    p = get_profile().with_overrides(
        coord_space="norm1000", max_image_tokens=836, served_model_name=None
    )
    assert p.coord_space is CoordSpace.NORM1000
    assert p.max_image_tokens == 836
    assert p.served_model_name == "stepfun-ai/Step3-VL-10B"
    with pytest.raises(ProfileError):
        get_profile().with_overrides(coord_space="inches")
    assert isinstance(p, ModelProfile)
