"""The console: a token on every call, no file: start URLs, recordings served only as images
or JSON with CSP and nosniff, paths confined to the recordings root, plain 4xx errors."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from PIL import Image

from guiagent.console.app import ConsoleServer
from guiagent.console.runs import RunManager
from guiagent.record.trajectory import Recorder, RunHeader, StepRecord

PLANTED = b"<html><script>fetch('/api/runs',{method:'POST'})</script>planted</html>"


def _recording(root: Path, name: str = "rec") -> Path:
    run_dir = root / name
    with Recorder(run_dir, RunHeader(task="look", surface="browser")) as recorder:
        frame = recorder.save_frame(Image.new("RGB", (64, 48), "white"))
        recorder.append(StepRecord(index=1, frame=frame, outcome="ok"))
        recorder.finish("finished", answer="done")
    (run_dir / "frames" / "evil.html").write_bytes(PLANTED)
    (run_dir / "frames" / "evil.svg").write_bytes(b"<svg xmlns='http://www.w3.org/2000/svg'/>")
    (run_dir / "report.html").write_bytes(PLANTED)  # planted before the console ever wrote one
    os.symlink("/etc/passwd", run_dir / "frames" / "passwd.json")
    os.symlink("/etc/passwd", run_dir / "frames" / "passwd.jpg")
    return run_dir


@pytest.fixture
def console(tmp_path):
    root = tmp_path / "recordings"
    _recording(root)
    manager = RunManager(root, default_model_url="http://127.0.0.1:9")
    server = ConsoleServer(manager, "127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.stop()


def test_every_call_needs_the_token(console):
    base, token = console.base_url(), console.token
    assert token and len(token) >= 24 and console.url().endswith(f"?token={token}")
    paths = ["/", "/api/runs", "/api/info", "/api/recordings", "/api/runs/x/events",
             "/recordings/rec/report.html", "/recordings/rec/run.json"]  # fmt: skip
    for path in paths:
        r = httpx.get(base + path)
        assert r.status_code == 401, path
        assert "token" in r.json()["error"]
    assert httpx.post(base + "/api/runs", json={"task": "x"}).status_code == 401
    assert (
        httpx.get(base + "/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    ok = httpx.get(base + "/api/runs", headers=console.auth_headers)
    assert ok.status_code == 200 and ok.json() == []
    # the URL printed at start sets a cookie that the page's own calls then carry
    r = httpx.get(console.url())
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    r = httpx.get(base + "/api/recordings", headers={"Cookie": cookie.split(";")[0]})
    assert r.status_code == 200 and [x["name"] for x in r.json()] == ["rec"]


def test_a_non_ascii_token_or_a_nul_byte_is_a_plain_4xx(console):
    base = console.base_url()
    r = httpx.get(
        base + "/api/runs", headers={"Authorization": "Bearer \xe9t\xe9".encode("latin-1")}
    )
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/json")
    r = httpx.get(base + "/api/runs?token=%C3%A9t%C3%A9")
    assert r.status_code == 401
    r = httpx.get(
        base + "/api/runs",
        headers={"Cookie": 'guiagent_console_token="\\x00\xe9"'.encode("latin-1")},
    )
    assert r.status_code == 401
    auth = console.auth_headers
    for path in (
        "/recordings/rec/frames/x%00.jpg",
        "/recordings/re%00c/run.json",
        "/api/runs/%00/events",
    ):
        r = httpx.get(base + path, headers=auth)
        assert 400 <= r.status_code < 500, (path, r.status_code)
        assert "Traceback" not in r.text


def test_file_and_browser_internal_start_urls_are_refused(console, tmp_path):
    base, auth = console.base_url(), console.auth_headers
    for url in ("file:///etc/passwd", "FILE:///etc/passwd", "chrome://settings",
                "view-source:http://example.org/", "/etc/passwd"):  # fmt: skip
        r = httpx.post(base + "/api/runs", json={"task": "show it", "start_url": url}, headers=auth)
        assert r.status_code == 403, url
        assert "--allow-file-urls" in r.json()["error"]
    assert console.manager.runs == {}  # nothing was started
    # with the flag the URL passes this check (and the run fails later for want of a model)
    permissive = RunManager(tmp_path / "r2", allow_file_urls=True)
    import asyncio

    from guiagent.console.runs import ConsoleError

    with pytest.raises(ConsoleError, match="no model server"):
        asyncio.run(permissive.start(_spec("file:///etc/passwd")))


def _spec(url: str):
    from guiagent.console.runs import RunSpec

    return RunSpec(task="show it", start_url=url)


def test_recording_files_are_only_images_or_json_with_csp_and_nosniff(console):
    base, auth = console.base_url(), console.auth_headers
    frames = sorted(
        p.name
        for p in (console.manager.recordings_root / "rec" / "frames").glob("*.jpg")
        if not p.is_symlink()
    )
    r = httpx.get(f"{base}/recordings/rec/frames/{frames[0]}", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    r = httpx.get(f"{base}/recordings/rec/run.json", headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    for planted in ("frames/evil.html", "frames/evil.svg", "steps.jsonl.html"):
        r = httpx.get(f"{base}/recordings/rec/{planted}", headers=auth)
        assert r.status_code in (403, 404), planted
        assert b"planted" not in r.content
    # the report the console serves is one it wrote itself, never the planted file
    r = httpx.get(f"{base}/recordings/rec/report.html", headers=auth)
    assert r.status_code == 200 and b"planted" not in r.content and b"<script" not in r.content
    assert "script-src" not in r.headers["content-security-policy"]
    assert "default-src 'none'" in r.headers["content-security-policy"]


def test_paths_and_symlinks_stay_inside_the_recordings_root(console, tmp_path):
    base, auth = console.base_url(), console.auth_headers
    for path in (
        "frames/passwd.json",
        "frames/passwd.jpg",
        "../rec/../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
    ):
        r = httpx.get(f"{base}/recordings/rec/{path}", headers=auth)
        assert r.status_code in (403, 404), path
        assert b"root:" not in r.content
    # a recording folder that is itself a symlink out of the root is not served either
    outside = _recording(tmp_path / "elsewhere", "out")
    os.symlink(outside, console.manager.recordings_root / "linked")
    r = httpx.get(f"{base}/recordings/linked/run.json", headers=auth)
    assert r.status_code == 404
