"""Every CLI error a user can cause is one line and exit code 2: one case per option that takes
a URL, a path, a display or a size, against real unreachable servers, files and displays."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from guiagent.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "guiagent" / "demo" / "webapp" / "index.html"
MODEL = ["--model-url", "http://127.0.0.1:9"]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the with block ends


def _one_line_error(capsys, argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2, argv
    captured = capsys.readouterr()
    lines = [line for line in (captured.out + captured.err).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--start-url", str(PAGE)], "not a file path: use file:///"),
        (["--start-url", "guiagent/demo/webapp/index.html"], "not a file path"),
        (["--start-url", "localhost"], "--start-url wants a URL"),
        (["--start-url", "ftp://example.org/"], "--start-url takes"),
        (["--browser-cdp", "127.0.0.1:9222"], "--browser-cdp wants a URL"),
        (["--browser-ws", "http://127.0.0.1:9/"], "--browser-ws takes ws://"),
        (["--start-url", "about:blank", "--viewport", "12x"], "--viewport wants WIDTHxHEIGHT"),
        (["--start-url", "about:blank", "--viewport", "0x600"], "--viewport wants WIDTHxHEIGHT"),
        (["--start-url", "about:blank", "--device-scale-factor", "0"], "must be positive"),
        (["--start-url", "about:blank", "--redact-region", "1,2,3"], "--redact-region wants"),
        (["--start-url", "about:blank", "--max-reply-bytes", "10"], "--max-reply-bytes must be"),
        (["--start-url", "about:blank", "--max-tool-calls", "0"], "--max-tool-calls must be"),
        (["--start-url", "about:blank", "--policy", "/nonexistent.yaml"], "--policy"),
        (["--start-url", "about:blank", "--secrets-file", "/nonexistent.yaml"], "--secrets-file"),
        (["--start-url", "about:blank", "--skills", "/nonexistent"], "/nonexistent"),
        (["--start-url", "about:blank", "--monitor", "left"], "--monitor wants"),
        (["--env", "desktop", "--display", "not-a-display"], "--display wants an X display"),
        (["--env", "desktop", "--displays", "2", "--display-size", "12x"], "--display-size"),
        (["--env", "desktop", "--displays", "0"], "--displays wants 1 to 16"),
        (["--env", "browser"], "needs --start-url"),
        (["--env", "bogus"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(capsys, options, expected):
    assert expected in _one_line_error(capsys, ["run", "x", *MODEL, *options])


def test_a_model_url_that_is_not_a_url(capsys):
    line = _one_line_error(capsys, ["run", "x", "--start-url", "about:blank", "--model-url", "x:1"])
    assert "--model-url" in line


def test_a_display_without_a_server(capsys):
    free = next(n for n in range(180, 400) if not os.path.exists(f"/tmp/.X11-unix/X{n}"))
    line = _one_line_error(
        capsys, ["run", "x", *MODEL, "--env", "desktop", "--display", f":{free}"]
    )
    assert f":{free}" in line and "no X server answers" in line


@pytest.mark.browser
def test_an_unreachable_start_url(capsys):
    url = f"http://127.0.0.1:{_closed_port()}/"
    line = _one_line_error(capsys, ["run", "x", *MODEL, "--start-url", url])
    assert line.startswith("error: --start-url " + url) and "ERR_CONNECTION_REFUSED" in line


@pytest.mark.browser
def test_an_unreachable_browser_cdp(capsys):
    url = f"http://127.0.0.1:{_closed_port()}"
    line = _one_line_error(capsys, ["run", "x", *MODEL, "--browser-cdp", url])
    assert line.startswith(f"error: --browser-cdp {url}: cannot attach") and "ECONNREFUSED" in line


@pytest.mark.browser
def test_an_unreachable_browser_ws(capsys):
    url = f"ws://127.0.0.1:{_closed_port()}/"
    line = _one_line_error(capsys, ["run", "x", *MODEL, "--browser-ws", url])
    assert line.startswith(f"error: --browser-ws {url}") and "--browser-executable" in line


@pytest.mark.browser
def test_browser_ws_without_an_executable_the_server_can_launch(capsys, tmp_path):
    """A run-server with no browser of its own: the error says to name one."""
    port = _closed_port()
    env = {**os.environ, "PLAYWRIGHT_BROWSERS_PATH": str(tmp_path / "no-browsers")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "playwright", "run-server", "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    try:
        assert "Listening on ws://" in proc.stdout.readline()
        url = f"ws://127.0.0.1:{port}/"
        line = _one_line_error(capsys, ["run", "x", *MODEL, "--browser-ws", url])
        assert line.startswith(f"error: --browser-ws {url}") and "--browser-executable" in line
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.browser
def test_a_file_url_is_a_valid_start_url(capsys, tmp_path):
    """The file path's suggested replacement really works (then the model is unreachable)."""
    argv = ["run", "x", *MODEL, "--start-url", PAGE.as_uri(), "--record", str(tmp_path / "r")]
    line = _one_line_error(capsys, argv)
    assert "127.0.0.1:9" in line  # it got past the browser to the model server


def test_parse_errors_of_every_command_are_one_line(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as raised:
            main([name, "--no-such-option"])
        assert raised.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "error:" in err[0], (name, err)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--env", "browser", "--start-url", str(PAGE)], "not a file path: use file:///"),
        (["--env", "browser", "--browser-cdp", "localhost:9222"], "--browser-cdp takes"),
        (["--env", "desktop", "--display", "nothing"], "--display wants an X display"),
    ],
)
def test_narrate_rejects_bad_urls_and_displays(capsys, options, expected):
    assert main(["narrate", *options]) == 2
    captured = capsys.readouterr()
    text = " ".join((captured.out + captured.err).split())
    assert expected in text and "Traceback" not in text, text


@pytest.mark.parametrize(
    "argv",
    [
        ["report", "{p}"],
        ["replay", "{p}", "--mode", "verify"],
        ["export", "{p}", "--gif", "{p}.gif"],
        ["scenario", "check", "{p}"],
        ["skills", "list", "--skills", "{p}"],
        ["run", "x", "--start-url", "about:blank", "--policy", "{p}", *MODEL],
    ],
    ids=["report", "replay", "export", "scenario", "skills", "run"],
)
def test_a_long_path_prints_as_one_line_as_written(capsys, tmp_path, argv):
    """Off a terminal rich would wrap at 80 columns, read `:id:` as an emoji and `[serve]` as
    markup: every command prints through one console that does none of that."""
    path = str(tmp_path / ("deep-" * 30) / "a :id: [serve] thing")
    line = _one_line_error(capsys, [arg.replace("{p}", path) for arg in argv])
    assert path in line, line


def test_the_cli_console_never_wraps_a_long_line(capsys):
    from rich.markup import escape

    from guiagent.cliparse import cli_console

    text = "word " * 100 + ":id: [bold] 42 /tmp/x"
    cli_console().print(f"[red]error:[/red] {escape(text)}")
    cli_console(stderr=True).print(text, markup=False)
    captured = capsys.readouterr()
    assert captured.out == f"error: {text}\n"
    assert captured.err == f"{text}\n"


def test_calibrate_against_no_server_is_one_line_and_exit_code_2(capsys):
    """The run never started: configuration (docs/FAULTS.md), not one failure per target."""
    url = f"http://127.0.0.1:{_closed_port()}"
    line = _one_line_error(capsys, ["calibrate", "--model-url", url])
    assert "cannot reach the model server" in line and url in line
    line = _one_line_error(capsys, ["calibrate", "--model-url", "127.0.0.1:30000"])
    assert "--model-url wants a URL" in line
