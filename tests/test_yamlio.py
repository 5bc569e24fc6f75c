"""The one YAML loader: line numbers in errors, and bounded against hostile files (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guiagent.agent.policy import Policy, PolicyError
from guiagent.core.yamlio import YamlError, YamlLimits, load_yaml_file, parse_yaml
from guiagent.models.profiles import ProfileError, load_profile
from guiagent.scenario.schema import ScenarioError, load_scenario
from guiagent.skills.model import SkillError, skill_from_yaml

# 427 bytes that expand to 9**9 strings when walked
BILLION_LAUGHS = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)
NESTED_FLOW = "[" * 20_000 + "]" * 20_000
NESTED_BLOCK = "".join(" " * i + "-\n" for i in range(3000))


def test_lines_are_recorded_for_every_path() -> None:
    doc = parse_yaml("name: x\nsteps:\n  - click: Go\n  - on: y\n", "s.yaml")
    assert doc.data == {"name": "x", "steps": [{"click": "Go"}, {"on": "y"}]}  # `on` stays a key
    assert doc.lines[("steps", 0, "click")] == 3 and doc.lines[("steps", 1)] == 4
    assert doc.line_of("steps", 1, "on", "missing") == 4


def test_billion_laughs_is_refused() -> None:
    with pytest.raises(YamlError, match="expands to more than") as info:
        parse_yaml(BILLION_LAUGHS, "laughs.yaml")
    assert info.value.source == "laughs.yaml" and info.value.line is not None


def test_self_referencing_alias_is_refused() -> None:
    with pytest.raises(YamlError, match="refers to the collection that contains it"):
        parse_yaml("a: &a [1, *a]\n", "loop.yaml")


@pytest.mark.parametrize("text", [NESTED_FLOW, "- " * 3000 + "x\n"])
def test_deep_nesting_is_a_clear_error_not_recursion(text: str) -> None:
    with pytest.raises(YamlError, match="nested deeper than 100 levels") as info:
        parse_yaml(text, "deep.yaml")
    assert str(info.value).startswith("deep.yaml:1: ")


def test_deep_block_lists_are_a_clear_error() -> None:
    with pytest.raises(YamlError, match="nested deeper than") as info:
        parse_yaml(NESTED_BLOCK, "block.yaml", YamlLimits(max_bytes=len(NESTED_BLOCK)))
    assert info.value.line == 101


def test_nesting_through_aliases_is_capped() -> None:
    chain = "a0: &a0 [x]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 150))
    with pytest.raises(YamlError, match="through aliases"):
        parse_yaml(chain, "chain.yaml")


def test_file_size_is_capped_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("x: " + "a" * 2000 + "\n")
    with pytest.raises(YamlError, match="larger than 1000 bytes") as info:
        load_yaml_file(path, YamlLimits(max_bytes=1000))
    assert info.value.source == str(path)


def test_duplicate_keys_are_rejected_with_both_lines() -> None:
    with pytest.raises(YamlError) as info:
        parse_yaml("steps:\n  - click: Go\n    click: Stop\n", "dup.yaml")
    assert str(info.value) == "dup.yaml:3: duplicate key 'click' (first on line 2)"


def test_non_utf8_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(b"name: ok\n" + bytes(range(128, 256)))
    with pytest.raises(YamlError, match="not UTF-8") as info:
        load_yaml_file(path)
    assert str(info.value).startswith(f"{path}:2: ")


def test_syntax_errors_carry_the_line() -> None:
    with pytest.raises(YamlError, match="not valid YAML") as info:
        parse_yaml("a: 1\nb: [unclosed\n", "bad.yaml")
    assert info.value.line is not None and info.value.line >= 2


@pytest.mark.parametrize(
    "text",
    [BILLION_LAUGHS, "[" * 300, "click: Go\nclick: Stop\n", b"\xff\xfe\x00garbage"],
    ids=["laughs", "nested", "duplicate", "binary"],
)
def test_every_kind_of_file_gets_its_own_clear_error(tmp_path: Path, text: str | bytes) -> None:
    """Scenarios, policies, skills and profiles all read through the same bounded loader."""
    path = tmp_path / "bomb.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    loaders = [
        (load_scenario, ScenarioError),
        (Policy.from_yaml, PolicyError),
        (skill_from_yaml, SkillError),
        (load_profile, ProfileError),
    ]
    for load, error in loaders:
        with pytest.raises(error) as info:
            load(path)
        assert str(path) in str(info.value), (load, str(info.value))
