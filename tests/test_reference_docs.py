"""docs/SCENARIOS.md and docs/POLICY.md are generated from the schemas and committed as generated."""

from __future__ import annotations

import shutil
from pathlib import Path

from guiagent import reference_docs
from guiagent.agent.policy import When
from guiagent.cli import main
from guiagent.scenario.schema import STEP_KINDS, TargetSpec

REPO = Path(__file__).resolve().parents[1]


def test_the_committed_reference_docs_are_what_the_generator_writes(capsys):
    code = main(["docs", "--check"])
    assert code == 0, capsys.readouterr().out


def test_a_changed_document_is_reported_stale(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    for name in reference_docs.DOCS:
        shutil.copy(REPO / name, tmp_path / name)
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 0
    policy = tmp_path / "docs" / "POLICY.md"
    policy.write_text(policy.read_text().replace("### `domain_not`", "### `domain-not`"))
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 1
    assert "docs/POLICY.md is out of date" in capsys.readouterr().out
    assert main(["docs", "--root", str(tmp_path)]) == 0
    assert main(["docs", "--check", "--root", str(tmp_path)]) == 0


def test_every_step_kind_target_key_and_matcher_is_documented_with_an_example():
    scenarios = reference_docs.scenarios_md()
    for kind in STEP_KINDS:
        assert f"### `{kind}`\n" in scenarios
        assert f"\n- {kind}: " in scenarios  # an example of it
    for name, info in TargetSpec.model_fields.items():
        key = info.alias or name
        assert f"| `{key}` |" in scenarios and f"- `{key}`: `click: " in scenarios
    policy = reference_docs.policy_md()
    for matcher in When.model_fields:
        assert f"### `{matcher}`\n" in policy and f"\n  {matcher}: " in policy


def test_policies_point_to_the_docs_not_the_source():
    for path in (REPO / "policies").rglob("*.yaml"):
        assert "guiagent/agent/policy.py" not in path.read_text(), path
