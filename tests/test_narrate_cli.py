"""``guiagent narrate`` end to end: its own Chromium, JSON to a file, model mode against the
fake server with speech into WAV files, and usage errors (exit code 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from guiagent.commands import narrate as command
from guiagent.narrate.model import TOOL_NAME
from guiagent.testing.fake_server import FakeModelServer, FakeReply

PAGE = Path(__file__).resolve().parent / "apps" / "narrate_layout.html"


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["--start-url", "about:blank", "--region", "1,2,3"],
        ["--env", "browser"],
        ["--start-url", "about:blank", "--under-pointer"],
        ["--start-url", "about:blank", "--speak-wav", "x"],
        ["--start-url", "about:blank", "--private", "0,0,-1,5"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    assert command.run(_args(*argv)) == 2


def test_local_json_to_file(tmp_path: Path) -> None:
    out = tmp_path / "narration.json"
    code = command.run(_args("--start-url", PAGE.as_uri(), "--format", "json", "--out", str(out)))
    assert code == 0
    data = json.loads(out.read_text())
    labels = [i["label"] for r in data["regions"] for i in r["items"]]
    assert labels[:2] == ["Quarterly report", "Home"]
    assert labels[-4:] == ["Save", "Cancel", "Help", "Delete"]
    assert "hunter2secret" not in out.read_text() and data["redacted"] == 2


def test_model_mode_spoken_to_wav(tmp_path: Path) -> None:
    reply = FakeReply(tool_calls=[(TOOL_NAME, {"description": "A report page.", "elements": []})])
    with FakeModelServer(lambda request: reply) as server:
        out = tmp_path / "said.txt"
        wavs = tmp_path / "wav"
        code = command.run(
            _args(
                "--start-url", PAGE.as_uri(), "--model", server.url, "--out", str(out),
                "--speak", "--speak-wav", str(wavs),
            )
        )  # fmt: skip
    assert code == 0
    assert out.read_text().strip() == "A report page."
    assert [p.name for p in wavs.iterdir()] == ["utterance-0001.wav"]
    assert (wavs / "utterance-0001.wav").stat().st_size > 10_000


def test_unreachable_model_is_a_config_error() -> None:
    code = command.run(_args("--start-url", PAGE.as_uri(), "--model", "http://127.0.0.1:9"))
    assert code == 2
