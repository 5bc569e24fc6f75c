"""Scenarios against real third-party applications, installed by scripts/setup.sh from a
package registry and never copied into the repository:

- Swagger UI (npm ``swagger-ui-dist``, built), served locally with an API description and
  a small API of our own;
- galculator (Debian), a GTK calculator, under the session's X server.

Every scenario here passes; one with a deliberately wrong expectation fails at that step.
"""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guiagent.scenario.schema import scenario_from_data
from guiagent.scenario.session import ScenarioSession, SessionOptions

REPO = Path(__file__).resolve().parents[1]
SWAGGER_DIST = REPO / ".thirdparty" / "npm" / "node_modules" / "swagger-ui-dist"

API_DESCRIPTION = {
    "openapi": "3.0.0",
    "info": {"title": "Kennel API", "version": "1.0.0", "description": "The pets of a kennel."},
    "servers": [{"url": "/api"}],
    "paths": {
        "/pets": {
            "get": {
                "summary": "List all pets",
                "operationId": "listPets",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "How many pets to list",
                        "schema": {"type": "integer"},
                    }
                ],
                "responses": {"200": {"description": "The pets"}},
            }
        }
    },
}
PETS = [{"id": 1, "name": "Rex"}, {"id": 2, "name": "Tibbles"}, {"id": 3, "name": "Nemo"}]

INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>Kennel API docs</title>
<link rel="stylesheet" href="dist/swagger-ui.css"></head><body><div id="swagger-ui"></div>
<script src="dist/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


class _KennelHandler(http.server.SimpleHTTPRequestHandler):
    """The built Swagger UI and its page from a folder; ``/api/pets`` answers JSON."""

    def do_GET(self) -> None:
        if self.path.startswith("/api/pets"):
            limit = 3
            if "limit=" in self.path:
                limit = int(self.path.split("limit=", 1)[1].split("&", 1)[0] or 3)
            body = json.dumps(PETS[:limit]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return


@pytest.fixture(scope="module")
def kennel_docs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not (SWAGGER_DIST / "swagger-ui-bundle.js").is_file():
        pytest.fail("swagger-ui-dist is not installed: run scripts/setup.sh")
    root = tmp_path_factory.mktemp("kennel")
    shutil.copytree(SWAGGER_DIST, root / "dist")
    (root / "index.html").write_text(INDEX, encoding="utf-8")
    (root / "openapi.json").write_text(json.dumps(API_DESCRIPTION), encoding="utf-8")
    handler = functools.partial(_KennelHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def grounder() -> Any:
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


def _run(
    async_runner: Any, scenario: Any, tmp_path: Path, display: str | None = None, **kwargs: Any
) -> Any:
    async def go() -> Any:
        options = SessionOptions(record_dir=tmp_path / "runs", display=display)
        session = ScenarioSession(options, **kwargs)
        async with session:
            return await session.run(scenario)

    return async_runner.run(go(), timeout=300)


def _try_the_api(url: str, final: list[dict[str, Any]]) -> Any:
    return scenario_from_data(
        {
            "name": "try the kennel API in Swagger UI",
            "target": {"url": url},
            "viewport": {"width": 1280, "height": 900},
            "steps": [
                {"wait_for": {"text": "Kennel API", "timeout": 20}},
                {"expect": "The pets of a kennel."},
                {"click": "List all pets"},
                {"click": {"text": "Try it out", "role": "button"}},
                {"type": {"text": "2", "into": {"text": "limit", "role": "textbox"}}},
                {"click": {"text": "Execute", "role": "button"}},
                {"scroll": {"direction": "down", "amount": 6}},  # the response is below
                {"wait_for": {"text": "Server response", "timeout": 10}},
                *final,
            ],
        }
    )


@pytest.mark.browser
def test_swagger_ui_lists_and_calls_an_operation(
    async_runner: Any, playwright_browser: Any, grounder: Any, kennel_docs: str, tmp_path: Path
) -> None:
    scenario = _try_the_api(
        kennel_docs,
        [
            {"expect": {"text": '"Tibbles"'}},
            {"expect": {"text": '"Nemo"', "not": True}},  # limit=2 reached the API
        ],
    )
    result = _run(async_runner, scenario, tmp_path, browser=playwright_browser, grounder=grounder)
    assert result.ok, result.failure_message()
    assert [s.status for s in result.steps] == ["passed"] * len(scenario.steps)


@pytest.mark.browser
def test_swagger_ui_wrong_expectation_fails_at_that_step(
    async_runner: Any, playwright_browser: Any, grounder: Any, kennel_docs: str, tmp_path: Path
) -> None:
    scenario = _try_the_api(kennel_docs, [{"expect": {"text": '"Nemo"'}}, {"expect": "Tibbles"}])
    result = _run(async_runner, scenario, tmp_path, browser=playwright_browser, grounder=grounder)
    assert not result.ok
    statuses = [s.status for s in result.steps]
    assert statuses == ["passed"] * 8 + ["failed", "skipped"], result.failure_message()
    assert "Nemo" in (result.steps[8].error or "")


def _galculator_sum(final: list[dict[str, Any]]) -> Any:
    # galculator keeps its settings in ~/.config: a fresh HOME gives the default basic mode
    return scenario_from_data(
        {
            "name": "galculator adds by clicking its buttons",
            "target": {
                "command": ["sh", "-c", 'HOME="$(mktemp -d)" exec galculator'],
                "window": "galculator",
            },
            "steps": [
                {"click": {"text": "7", "exact": True}},
                {"click": {"text": "+", "exact": True}},
                {"click": {"text": "5", "exact": True}},
                {"click": {"text": "=", "exact": True}},
                *final,
            ],
        }
    )


@pytest.mark.desktop
def test_galculator_adds_by_clicking_its_buttons(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    if shutil.which("galculator") is None:
        pytest.fail("galculator is not installed: run scripts/setup.sh")
    scenario = _galculator_sum([{"expect": {"text": "12", "exact": True}}])
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder=grounder)
    assert result.ok, result.failure_message()


@pytest.mark.desktop
def test_galculator_wrong_expectation_fails_at_that_step(
    async_runner: Any, x_display: Any, grounder: Any, tmp_path: Path
) -> None:
    if shutil.which("galculator") is None:
        pytest.fail("galculator is not installed: run scripts/setup.sh")
    scenario = _galculator_sum(
        [{"expect": {"text": "12", "exact": True}}, {"expect": {"text": "13", "exact": True}}]
    )
    result = _run(async_runner, scenario, tmp_path, x_display.display, grounder=grounder)
    assert [s.status for s in result.steps] == ["passed"] * 5 + ["failed"], result.failure_message()
    assert 'no text matching "13"' in (result.steps[5].error or "")
