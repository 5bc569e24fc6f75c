"""``guiagent narrate`` end to end: its own Chromium, JSON to a file, model mode against the
fake server with speech into WAV files, and usage errors (exit code 2)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

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


AX_PAGE = Path(__file__).resolve().parent / "apps" / "narrate_ax.html"


def test_compare_prints_pixels_beside_the_tree(tmp_path: Path) -> None:
    out = tmp_path / "compare.txt"
    code = command.run(_args("--start-url", PAGE.as_uri(), "--compare", "--out", str(out)))
    assert code == 0
    lines = out.read_text().splitlines()
    assert lines[0].startswith("tree (ax-tree)") and "| pixels (ocr)" in lines[0]
    rows = [tuple(part.strip() for part in line.split(" | ", 1)) for line in lines[2:-1]]
    assert ("Save, button", "Save, button") in rows
    assert ("Summary, heading level 2", "") not in rows  # the heading is read from both
    assert any(tree.startswith("Summary") and pixels.startswith("Summary") for tree, pixels in rows)
    assert lines[-1].endswith("tree items also read from the pixels")
    assert "hunter2secret" not in out.read_text() and "9911223344" not in out.read_text()
    data_out = tmp_path / "compare.json"
    assert command.run(_args("--start-url", PAGE.as_uri(), "--compare", "--format", "json",
                             "--out", str(data_out))) == 0  # fmt: skip
    data = json.loads(data_out.read_text())
    sources = {i["source"] for r in data["pixels"]["regions"] for i in r["items"]}
    assert sources == {"ocr"} and data["tree"]["sources"] == ["ax-tree"]


def test_fill_model_names_an_image_the_tree_leaves_unnamed(tmp_path: Path) -> None:
    asked: list[str] = []

    def answer(request: Any) -> FakeReply:
        asked.append(json.dumps(request.body)[:20000])
        return FakeReply(content="Shop logo")

    with FakeModelServer(answer) as server:
        out = tmp_path / "said.json"
        code = command.run(_args("--start-url", AX_PAGE.as_uri(), "--fill-model", server.url,
                                 "--format", "json", "--out", str(out)))  # fmt: skip
    assert code == 0 and len(asked) == 1 and "image_url" in asked[0]
    items = [i for r in json.loads(out.read_text())["regions"] for i in r["items"]]
    logo = next(i for i in items if i["role"] == "image")
    assert logo["label"] == "Shop logo" and logo["source"] == "model"
    assert {i["source"] for i in items} == {"ax-tree", "ocr", "model"}


def test_compare_with_watch_is_a_usage_error() -> None:
    assert command.run(_args("--start-url", "about:blank", "--compare", "--watch")) == 2


@pytest.mark.parametrize("source", ["environment", "file"])
def test_secrets_come_from_the_environment_or_a_file_not_only_argv(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "narration.txt"
    argv = ["--start-url", PAGE.as_uri(), "--out", str(out)]
    if source == "environment":
        monkeypatch.setenv("GUIAGENT_SECRET_REPORT_TITLE", "Quarterly report")
    else:
        secrets = tmp_path / "secrets.yaml"
        secrets.write_text("report_title: Quarterly report\n")
        argv += ["--secrets-file", str(secrets)]
    assert command.run(_args(*argv)) == 0
    said = out.read_text()
    assert "Quarterly report" not in said
    assert "Save" in said  # the rest is still narrated


def test_a_bad_secrets_file_is_a_usage_error(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("- not a mapping\n")
    code = command.run(_args("--start-url", PAGE.as_uri(), "--secrets-file", str(secrets)))
    assert code == 2
