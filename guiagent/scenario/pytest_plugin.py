"""pytest plugin (entry point ``pytest11``): YAML scenarios as test items, plus fixtures.

Collects YAML files whose top level has a ``steps`` key, one item per scenario, when they
match a glob of the ``guiagent_scenarios`` ini option (default ``scenarios/**/*.yaml`` and
``.yml``: a ``scenarios`` folder anywhere) or are named on the command line
(``pytest path/to/file.yaml``). Options: ``--guiagent-model local|URL`` (``ai``/``ai_assert``
steps need a URL), ``--guiagent-record DIR`` (recordings; default: failure frames only, in a
temporary directory) and ``--guiagent-skills PATH`` (more skills for ``use:`` steps, besides
``skills/`` beside the scenario and in its project root).

Each pytest process (each xdist worker) runs its scenarios on its own event loop thread,
its own Chromium and its own Xvfb, created on first use and closed at the end: nothing is
shared across workers. This module imports nothing heavy until a scenario runs, since
pytest loads it in every run.

Fixtures for Python tests: ``browser_env`` (a started BrowserEnv on ``about:blank``, or the
URL of a ``@pytest.mark.guiagent_url(...)`` marker) and ``agent`` (an Agent on that env
for ``--guiagent-model URL``) build on ``guiagent.testing.fixtures`` (``async_runner``,
``browser_env_factory``, ``desktop_env``, ...), which a project loads with
``pytest_plugins = ["guiagent.testing.fixtures"]`` in its conftest.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from guiagent.scenario.runner import ScenarioResult
    from guiagent.scenario.schema import Scenario

_STEPS_KEY = re.compile(r"^steps\s*:", re.MULTILINE)
_STATE_KEY = "_guiagent_scenario_state"
_UNCOLLECTED = pytest.StashKey[list]()
DEFAULT_GLOBS = ["scenarios/**/*.yaml", "scenarios/**/*.yml"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("guiagent", "guiagent scenarios")
    group.addoption(
        "--guiagent-model",
        default="local",
        help="'local' (OCR/DOM grounding only; ai steps fail) or an OpenAI-compatible model URL",
    )
    group.addoption(
        "--guiagent-record", default=None, metavar="DIR", help="write scenario recordings under DIR"
    )
    group.addoption(
        "--guiagent-skills",
        action="append",
        default=[],
        metavar="PATH",
        help="more skill files or folders for use: steps (repeatable)",
    )
    parser.addini(
        "guiagent_scenarios",
        type="linelist",
        default=DEFAULT_GLOBS,
        help="globs of scenario files to collect (default: scenarios/**/*.yaml and .yml; "
        "a YAML file named on the command line is collected too)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "guiagent_url(url): start URL for the browser_env fixture")
    config.addinivalue_line("markers", "guiagent_scenario: a YAML scenario collected by guiagent")


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A path glob (``**`` any folders, ``*`` within one name) as a regex on a path's tail."""
    out = []
    for part in re.split(r"(\*\*/|\*\*|\*|\?)", pattern.strip().lstrip("/")):
        out.append(
            {"**/": "(?:[^/]+/)*", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
        )
    return re.compile("(?:^|.*/)" + "".join(out) + "$")


def _looks_like_scenario(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    try:
        head = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return _STEPS_KEY.search(head) is not None


def _named_on_command_line(config: pytest.Config, path: Path) -> bool:
    """The file itself was named in pytest's arguments (``pytest path/to/file.yaml``)."""
    named = getattr(config, "_guiagent_named", None)
    if named is None:
        base = Path(config.invocation_params.dir)
        named = {
            (base / str(arg).split("::")[0]).resolve()
            for arg in config.invocation_params.args
            if not str(arg).startswith("-")
        }
        config._guiagent_named = named  # type: ignore[attr-defined]
    return path.resolve() in named


def _matches_glob(config: pytest.Config, path: Path) -> bool:
    patterns = [_glob_regex(p) for p in config.getini("guiagent_scenarios")]
    text = path.resolve().as_posix()
    return any(p.match(text) for p in patterns)


def _is_scenario_path(path: Path, config: pytest.Config) -> bool:
    if not _looks_like_scenario(path):
        return False
    if _named_on_command_line(config, path):
        return True
    # skills are written in the same language; their skills/ folders hold no scenarios
    try:
        folders = path.resolve().relative_to(config.rootpath.resolve()).parts[:-1]
    except ValueError:
        folders = path.parts[-2:-1]
    return _matches_glob(config, path) and "skills" not in folders


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_scenario_path(file_path, parent.config):
        return ScenarioFile.from_parent(parent, path=file_path)
    if _looks_like_scenario(file_path):
        parent.config.stash.setdefault(_UNCOLLECTED, []).append(file_path)
    return None


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Say why scenario-shaped YAML files under the named folders were not collected."""
    uncollected = config.stash.get(_UNCOLLECTED, [])
    if uncollected and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        patterns = ", ".join(config.getini("guiagent_scenarios"))
        terminalreporter.write_line(
            f"guiagent: {len(uncollected)} scenario-like YAML file(s) not collected (e.g. "
            f"{uncollected[0]}): they match no guiagent_scenarios glob ({patterns}); name the "
            "files on the command line or set guiagent_scenarios in your pytest configuration"
        )


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        yield ScenarioItem.from_parent(self, name=self.path.stem)


class ScenarioFailed(Exception):
    """A scenario step failed; the message is the runner's report."""


class ScenarioItem(pytest.Item):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_marker("guiagent_scenario")
        self.result: ScenarioResult | None = None

    def runtest(self) -> None:
        from guiagent.scenario.schema import load_scenario

        scenario = load_scenario(self.path)  # ScenarioError: shown as is by repr_failure
        state = _state(self.config)
        self.result = state.run(scenario)
        if not self.result.ok:
            raise ScenarioFailed(self.result.failure_message())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        from guiagent.scenario.schema import ScenarioError

        if isinstance(excinfo.value, (ScenarioFailed, ScenarioError)):
            lines = [str(excinfo.value)]
            if self.result is not None:
                lines.append("")
                lines.extend(_step_lines(self.result))
                if self.result.run_dir:
                    lines.append(f"recording: {self.result.run_dir}")
            return "\n".join(lines)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, 0, f"scenario: {self.name}"


def _step_lines(result: ScenarioResult) -> list[str]:
    marks = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}
    return [f"  {marks[s.status]} {s.label} ({s.ms:.0f} ms)" for s in result.steps]


class _State:
    """Per-process scenario resources: a loop thread, a ScenarioSession, an Xvfb (all lazy)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._runner: Any = None
        self._session: Any = None
        self._display: Any = None
        self._tmp: Path | None = None

    def _ensure(self) -> None:
        if self._runner is not None:
            return
        from guiagent.scenario.session import ScenarioSession, SessionOptions
        from guiagent.testing.fixtures import AsyncRunner

        record_dir = self.config.getoption("--guiagent-record")
        if record_dir is None:
            import tempfile

            self._tmp = Path(tempfile.mkdtemp(prefix="guiagent-scenarios-"))
            record_dir = self._tmp
        model = self.config.getoption("--guiagent-model")
        self._runner = AsyncRunner()
        self._session = ScenarioSession(
            SessionOptions(
                record_dir=Path(record_dir),
                agent_factory=_agent_factory(model),
                skill_paths=[Path(p) for p in self.config.getoption("--guiagent-skills")],
            )
        )

    def _ensure_display(self) -> None:
        if self._display is None:
            from guiagent.envs.display import XvfbDisplay

            self._display = XvfbDisplay((1024, 768)).start()
            self._session.options.display = self._display.display

    def run(self, scenario: Scenario) -> ScenarioResult:
        self._ensure()
        if scenario.env == "desktop":
            self._ensure_display()
        return self._runner.run(self._session.run(scenario), timeout=600)

    def close(self) -> None:
        if self._runner is not None:
            try:
                self._runner.run(self._session.close(), timeout=60)
            finally:
                self._runner.close()
        if self._display is not None:
            self._display.stop()


def _state(config: pytest.Config) -> _State:
    state = getattr(config, _STATE_KEY, None)
    if state is None:
        state = _State(config)
        setattr(config, _STATE_KEY, state)
    return state


def pytest_unconfigure(config: pytest.Config) -> None:
    state = getattr(config, _STATE_KEY, None)
    if state is not None:
        state.close()
        delattr(config, _STATE_KEY)


# --- fixtures for Python tests ---------------------------------------------------------


def _need(request: pytest.FixtureRequest, name: str) -> Any:
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError:
        pytest.fail(
            f"the {request.fixturename} fixture needs {name!r} from guiagent.testing.fixtures: add "
            'pytest_plugins = ["guiagent.testing.fixtures"] to your conftest.py (or run pytest -p guiagent.testing.fixtures)',
            pytrace=False,
        )


@pytest.fixture
def browser_env(request: pytest.FixtureRequest) -> Any:
    """A started BrowserEnv in a fresh context of the session's Chromium."""
    factory = _need(request, "browser_env_factory")
    marker = request.node.get_closest_marker("guiagent_url")
    url = marker.args[0] if marker is not None and marker.args else "about:blank"
    return factory(start_url=url)


@pytest.fixture
def agent(request: pytest.FixtureRequest) -> Iterator[Any]:
    """An Agent on ``browser_env`` talking to ``--guiagent-model URL`` (fails clearly without one)."""
    model = request.config.getoption("--guiagent-model")
    if not model or model == "local":
        pytest.fail(
            "the agent fixture needs a model server: run pytest with --guiagent-model URL",
            pytrace=False,
        )
    runner = _need(request, "async_runner")
    env = request.getfixturevalue("browser_env")
    make = _agent_factory(model)
    made = make(env)
    yield made
    runner.run(made.close())


def _agent_factory(model: str) -> Any:
    from guiagent.app import model_agent_factory  # late: the plugin loads in every pytest run

    return model_agent_factory(model)
