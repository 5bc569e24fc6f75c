"""Shared fixtures: one X server, one browser and one event loop per test session.

Tests are sorted into two tiers. A test that uses a heavy fixture (a browser, an X server,
Xorg, a GUI application; directly or through another fixture) is marked ``e2e``
automatically, as are the shipped YAML scenarios and the modules in ``E2E_MODULES`` that
start such things in a subprocess. ``pytest -m "not e2e"`` runs the fast tier.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["guiagent.testing.fixtures"]

# fixtures that start a browser, an X server or an application (their users are e2e)
HEAVY_FIXTURES = frozenset(
    {
        "x_display",
        "desktop_env",
        "playwright_browser",
        "browser_env_factory",
        "browser_env",
        "tk_app_factory",
        "tk_app",
        "tk_target",
        "two_monitors",
        "cdp_chromium",
        "run_servers",
        "page",
        "page_env",
        "webapp_page",
        "page_capture",
        "harness",
        "browser",
    }
)
# modules whose tests start a browser, an X server or a GUI app in a child process
E2E_MODULES = frozenset(
    {
        "test_cli_run.py",
        "test_demo.py",
        "test_pytest_plugin.py",
        "test_readme_example.py",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            fixtures & HEAVY_FIXTURES
            or item.path.name in E2E_MODULES
            or item.path.suffix in (".yaml", ".yml")
        ):
            item.add_marker(pytest.mark.e2e)
