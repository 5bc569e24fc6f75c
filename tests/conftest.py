"""Shared fixtures: one X server, one browser and one event loop per test session.

Tests are sorted into two tiers. ``e2e`` is the full tier, marked here automatically:

- a test that uses a heavy fixture (a browser, an X server, Xorg, a GUI application, the OCR
  model; directly or through another fixture: pytest's fixture closure);
- the shipped YAML scenarios;
- tests that start such things in a child process (``E2E_MODULES``, ``E2E_TESTS``), and the
  exhaustive fuzz and property sweeps (thousands of generated cases each).

``pytest -m "not e2e"`` is the fast tier: the pure modules, parsers, policy, loaders, the
fake model server and the loop's branches on in-memory environments.
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
        "atspi_bus",
        "engine",  # RapidOCR: about 1.5 s a frame
        "grounder",
    }
)
# modules whose tests start a browser, an X server or a GUI app in a child process
E2E_MODULES = frozenset(
    {
        "test_cli_run.py",
        "test_demo.py",
        "test_pytest_plugin.py",
        "test_readme_example.py",
        "test_multimonitor.py",  # Xorg with the dummy driver
        "test_fuzz.py",  # 10,500 generated cases
        "test_hermes_property.py",  # 10,500 generated cases
        "test_router.py",  # the real sglang-router binary in front of stand-in workers
    }
)
E2E_TESTS = frozenset(
    {
        "test_scenario_runner.py::test_cli_runs_desktop_and_browser_scenarios_with_two_workers",
        "test_loop_safety.py::test_sigkill_mid_run_keeps_every_completed_step",
        "test_loop_safety.py::test_browser_killed_mid_run_is_a_named_error",
        "test_console.py::test_cli_prints_the_token_and_serves_until_interrupted",
        "test_shipped_recordings.py::test_cli_replays_the_browser_recording_with_a_base_url",
        "test_redact.py::test_ocr_redaction_of_secrets_known_values_and_masked_text",
        "test_narrate_cli.py::test_model_mode_spoken_to_wav",
        "test_narrate_cli.py::test_local_json_to_file",
        "test_calibrate.py::test_calibrate_command",
        "test_env_browser.py::test_killed_browser_raises_surface_gone",
        "test_eval.py::test_cli_make_dataset",
        "test_app.py::test_run_sync_opens_the_environment_runs_and_closes_it",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if (
            fixtures & HEAVY_FIXTURES
            or item.path.name in E2E_MODULES
            or f"{item.path.name}::{getattr(item, 'originalname', item.name)}" in E2E_TESTS
            or item.path.suffix in (".yaml", ".yml")
        ):
            item.add_marker(pytest.mark.e2e)


# --- hypothesis profiles (faults, #18) ---------------------------------------------------
# CI runs property tests derandomized (one run equals the next); HYPOTHESIS_PROFILE=explore
# runs many more random examples on demand. A test's own @settings values take precedence.
import os as _os  # noqa: E402

from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile(
    "explore", derandomize=False, max_examples=2000, print_blob=True
)
_hypothesis_settings.load_profile(_os.environ.get("HYPOTHESIS_PROFILE", "ci"))
