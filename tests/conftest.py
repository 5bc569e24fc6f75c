"""Shared fixtures: one X server, one browser and one event loop per test session."""

pytest_plugins = ["guiagent.testing.fixtures"]

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
