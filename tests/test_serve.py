"""guiagent serve: the launch command for every flag, the health wait, the errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from guiagent.cli import main as cli_main
from guiagent.serve import (
    ServeError,
    ServeOptions,
    build_command,
    check_engine,
    check_gpus,
    probe_health,
    start,
    stop,
    wait_healthy,
)
from guiagent.testing.fake_server import FakeModelServer


def test_sglang_command_has_step3vl_flags_and_every_option():
    cmd = build_command(
        ServeOptions(
            model_path="/models/step3",
            port=31000,
            host="0.0.0.0",
            tp=2,
            dp=4,
            context_length=32768,
            served_model_name="step3",
            extra_args=["--mem-fraction-static", "0.8"],
        ),
        python="python3",
    )
    assert cmd == [
        "python3", "-m", "sglang.launch_server", "--model-path", "/models/step3", "--trust-remote-code",
        "--reasoning-parser", "deepseek-r1", "--tool-call-parser", "hermes", "--host", "0.0.0.0", "--port", "31000",
        "--tp", "2", "--dp", "4", "--context-length", "32768", "--served-model-name", "step3",
        "--mem-fraction-static", "0.8",
    ]  # fmt: skip


def test_sglang_defaults():
    cmd = build_command(ServeOptions(), python="py")
    assert cmd == [
        "py", "-m", "sglang.launch_server", "--model-path", "stepfun-ai/Step3-VL-10B", "--trust-remote-code",
        "--reasoning-parser", "deepseek-r1", "--tool-call-parser", "hermes", "--host", "127.0.0.1", "--port", "30000",
    ]  # fmt: skip


def test_vllm_command():
    cmd = build_command(ServeOptions(engine="vllm", tp=2, dp=2, context_length=16384, port=8000))
    assert cmd == [
        "vllm", "serve", "stepfun-ai/Step3-VL-10B", "--trust-remote-code", "--reasoning-parser", "deepseek_r1",
        "--enable-auto-tool-choice", "--tool-call-parser", "hermes", "--host", "127.0.0.1", "--port", "8000",
        "--tensor-parallel-size", "2", "--data-parallel-size", "2", "--max-model-len", "16384",
    ]  # fmt: skip


def test_dry_run_prints_the_command(capsys):
    assert cli_main(["serve", "--dry-run", "--tp", "2"]) == 0
    out = capsys.readouterr().out
    assert "sglang.launch_server" in out and "--tool-call-parser hermes" in out and "--tp 2" in out


def test_missing_engine_is_a_clear_error():
    if subprocess.run([sys.executable, "-c", "import sglang"], capture_output=True).returncode == 0:
        pytest.fail("this test expects sglang to be absent (it is an optional extra)")
    with pytest.raises(ServeError, match=r"pip install 'guiagent\[serve\]'"):
        check_engine("sglang")


def test_no_gpu_is_a_clear_error():
    with pytest.raises(ServeError, match="no GPU is visible"):
        check_gpus(ServeOptions(), env={"CUDA_VISIBLE_DEVICES": ""})


def test_serve_without_engine_exits_2(capsys):
    assert cli_main(["serve"]) == 2
    assert "error" in capsys.readouterr().out


def test_health_wait_sees_warmup_then_ready():
    states = []
    with FakeModelServer(warmup_s=1.5) as server:
        assert probe_health(server.url) == "warming"
        waited = wait_healthy(
            server.url, timeout_s=10, poll_s=0.1, on_state=lambda s, w: states.append(s)
        )
        assert probe_health(server.url) == "ready"
    # the probes prove it was warming, then ready; the time is not asserted (on a loaded machine
    # the warm-up may end before wait_healthy's first probe)
    assert states[-1] == "ready" and set(states) <= {"warming", "ready"}
    assert waited >= 0


def test_health_of_a_closed_port_is_loading():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert probe_health(f"http://127.0.0.1:{port}") == "loading"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_start_wait_and_stop_a_real_server_process():
    port = _free_port()
    process = start(
        [sys.executable, "-m", "guiagent.testing", "--port", str(port), "--warmup", "0.5"]
    )
    try:
        waited = wait_healthy(f"http://127.0.0.1:{port}", timeout_s=30, poll_s=0.1, process=process)
        assert waited > 0
    finally:
        code = stop(process, grace_s=10)
    assert process.poll() is not None
    assert code is not None
    time.sleep(0.1)
    assert probe_health(f"http://127.0.0.1:{port}") == "loading"


def test_a_server_that_exits_early_is_reported():
    process = start([sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(ServeError, match="exited with code 3"):
        wait_healthy(f"http://127.0.0.1:{_free_port()}", timeout_s=10, poll_s=0.05, process=process)
