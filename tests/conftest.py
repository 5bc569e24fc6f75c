"""Shared fixtures: one X server, one browser and one event loop per test session."""

pytest_plugins = ["guiagent.testing.fixtures"]
