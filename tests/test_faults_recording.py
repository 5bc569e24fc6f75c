"""Damaged and interrupted recordings: every reader names the file and step, no traceback (#18)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from guiagent.cli import main
from guiagent.record import load
from guiagent.record.trajectory import Recorder, RunHeader, StepRecord, read_header
from guiagent.record.verify import verify_run
from guiagent.testing.processes import child_pids, is_alive


@pytest.fixture(autouse=True)
def _log_to_this_tests_stderr() -> None:
    """`main()` points loguru at the stderr of the test that called it; reset it per test."""
    from guiagent.cli import configure_logging

    configure_logging(0)


def _make_run(run_dir: Path, steps: int = 3) -> Path:
    rng = np.random.default_rng(1)
    with Recorder(run_dir, RunHeader(task="damage me", surface="browser")) as rec:
        for index in range(1, steps + 1):
            image = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
            step = StepRecord(
                index=index,
                frame=rec.save_frame(image),
                frame_size=[160, 120],
                sent_size=[160, 120],
                meta={"transform": {"origin": [0, 0], "scale": 1.0}},
                action={"action": "click", "x": 10.0 * index, "y": 20.0},
                screen_action={"action": "click", "x": 10.0 * index, "y": 20.0},
                trail=[
                    {
                        "space": "image",
                        "model": [10.0 * index, 20.0],
                        "sent": [10.0 * index, 20.0],
                        "frame": [10.0 * index, 20.0],
                        "screen": [10.0 * index, 20.0],
                    }
                ],
            )
            rec.append(step)
        rec.finish("finished", stop_reason="done")
    return run_dir


def _cli(capfd: Any, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out + err


def _frame_of(run_dir: Path, index: int) -> Path:
    return run_dir / load(run_dir).steps[index - 1].frame


@pytest.mark.parametrize("damage", ["truncated", "garbage", "missing"])
def test_a_damaged_frame_is_a_placeholder_in_the_report(
    damage: str, tmp_path: Path, capfd: Any
) -> None:
    run_dir = _make_run(tmp_path / "run")
    frame = _frame_of(run_dir, 2)
    if damage == "truncated":
        frame.write_bytes(frame.read_bytes()[: frame.stat().st_size // 3])
    elif damage == "garbage":
        frame.write_bytes(b"\x00\xff not an image" * 20)
    else:
        frame.unlink()
    code, out = _cli(capfd, "report", str(run_dir))
    assert code == 0, out
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert html.count('class="frame-placeholder"') == 1
    assert ("is missing" if damage == "missing" else "cannot be read") in html
    assert f"step 2: frame {frame.parent.name}/{frame.name}" in html
    code, out = _cli(capfd, "replay", str(run_dir), "--mode", "verify")
    assert code == 1 and "step 2" in out and frame.name in out


@pytest.mark.parametrize(
    "trail",
    [[{"frame": [1, 2, 3]}], [{"frame": "12,3"}], [{"screen": [1]}], [{"sent": [True, 2]}]],
    ids=["three-numbers", "string", "one-number", "bool"],
)
def test_a_trail_of_the_wrong_shape_is_named(
    trail: list[dict[str, Any]], tmp_path: Path, capfd: Any
) -> None:
    run_dir = _make_run(tmp_path / "run")
    lines = (run_dir / "steps.jsonl").read_text(encoding="utf-8").splitlines()
    step = json.loads(lines[1])
    step["trail"] = trail
    lines[1] = json.dumps(step)
    (run_dir / "steps.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run = load(run_dir)
    assert len(run.steps) == 3 and run.steps[1].trail == []
    assert any("steps.jsonl:2: step 2: trail point 0" in e for e in run.load_errors)
    code, out = _cli(capfd, "report", str(run_dir))
    assert code == 0
    assert "steps.jsonl:2: step 2" in (run_dir / "report.html").read_text(encoding="utf-8")
    code, out = _cli(capfd, "replay", str(run_dir), "--mode", "verify")
    assert code == 1 and "steps.jsonl:2: step 2: trail point 0" in out


@pytest.mark.parametrize(
    "line",
    [b'{"index": 2, "trail": 5}', b"\xff\xfe garbage", b"[1, 2]", b'{"index": "two"}'],
    ids=["trail-number", "bytes", "list", "bad-index"],
)
def test_bad_steps_lines_are_named(line: bytes, tmp_path: Path, capfd: Any) -> None:
    run_dir = _make_run(tmp_path / "run")
    lines = (run_dir / "steps.jsonl").read_bytes().split(b"\n")
    lines[1] = line
    (run_dir / "steps.jsonl").write_bytes(b"\n".join(lines))
    assert any("steps.jsonl:2:" in e for e in load(run_dir).load_errors)
    code, out = _cli(capfd, "report", str(run_dir))
    assert code == 0
    code, out = _cli(capfd, "replay", str(run_dir), "--mode", "verify")
    assert code == 1 and "steps.jsonl:2" in out


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"format_version": 1, "status": 5}', b'{"format_version": "x"}'],
    ids=["not-json", "list", "bad-status", "bad-version"],
)
def test_a_bad_run_json_is_one_line(content: bytes, tmp_path: Path, capfd: Any) -> None:
    run_dir = _make_run(tmp_path / "run")
    (run_dir / "run.json").write_bytes(content)
    code, out = _cli(capfd, "report", str(run_dir))
    assert code in (0, 2)
    if code == 2:
        assert "run.json" in out
    else:
        assert "run.json" in (run_dir / "report.html").read_text(encoding="utf-8")
    code, out = _cli(capfd, "replay", str(run_dir), "--mode", "verify")
    assert code in (1, 2) and "run.json" in out


DESKTOP_RUNNER = """
import sys
from guiagent.cli import main
from guiagent.testing.fake_server import FakeModelServer, FakeReply

with FakeModelServer(lambda request: FakeReply(tool_calls=[("wait", {"seconds": 0.2})])) as server:
    sys.exit(main(["run", "wait forever", "--env", "desktop", "--model-url", server.url,
                   "--record", sys.argv[1], "--max-steps", "10000", "--no-settle", "--no-skills"]))
"""


@pytest.mark.desktop
def test_sigkill_of_a_desktop_run_leaves_no_x_server_and_reads_as_interrupted(
    tmp_path: Path, capfd: Any
) -> None:
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.Popen(
        [sys.executable, "-c", DESKTOP_RUNNER, str(run_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        guard = time.monotonic() + 120
        while (
            not (run_dir / "steps.jsonl").exists()
            or (run_dir / "steps.jsonl").read_bytes().count(b"\n") < 2
        ):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < guard, "the run never recorded two steps"
            time.sleep(0.1)
        servers = [
            pid
            for pid in child_pids(proc.pid)
            if "Xvfb" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        ]
        assert servers, "the run did not start its own Xvfb"
        assert read_header(run_dir).status == "running"  # live: not judged interrupted
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    guard = time.monotonic() + 30
    while any(is_alive(pid) for pid in servers) and time.monotonic() < guard:
        time.sleep(0.1)
    assert not any(is_alive(pid) for pid in servers), "the Xvfb outlived its run"
    run = load(run_dir)
    assert run.header.status == "interrupted"
    last = run.steps[-1].index
    assert run.header.stop_reason.endswith(f"last complete step {last}")
    assert read_header(run_dir).status == "interrupted"
    assert verify_run(run) == []
    code, _ = _cli(capfd, "report", str(run_dir))
    assert code == 0 and "interrupted" in (run_dir / "report.html").read_text(encoding="utf-8")
