"""The main job's natural-language part: the full loop on the demo app with the stand-in model."""

from __future__ import annotations

import asyncio
from pathlib import Path

from guiagent.demo.nl_demo import DEMO_PLAN, run_nl_demo
from guiagent.record import load
from guiagent.record.report import write_report

REPO = Path(__file__).resolve().parents[1]


def test_nl_demo_signs_in_through_the_login_skill_without_leaking_the_password(tmp_path):
    result = asyncio.run(run_nl_demo(tmp_path / "task", REPO))
    assert result.ok, result
    run = load(tmp_path / "task")
    assert len(run.steps) == len(DEMO_PLAN)
    login = run.steps[0]
    assert (
        login.action["skill"] == "login" and login.action["params"]["password"] == "demo_password"
    )
    assert [s["status"] for s in login.sub_steps] == ["passed"] * 3
    assert run.steps[-1].action["action"] == "finish"
    report = write_report(run)
    assert report.is_file() and report.stat().st_size < 2_000_000
    for path in (tmp_path / "task").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b'"secret"' not in data and b'text \\"secret' not in data, path
