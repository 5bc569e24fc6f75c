"""Everything around a scenario run: environments from targets, shared browser, recordings.

A :class:`ScenarioSession` holds what several scenarios of one process share: one
Playwright and one Chromium (each browser scenario gets its own context), static servers
for relative URLs, one local grounder (one OCR engine), and optionally Xvfb displays.

Parallel desktop scenarios: pyautogui binds to one X display per process, but
:class:`~guiagent.envs.desktop.DesktopEnv` falls back to xdotool input on any other
display, so with ``own_displays=True`` every desktop scenario gets a fresh Xvfb in this
same process and they run concurrently without seeing each other's windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from guiagent.envs.display import parent_death_signal, stop_process_group
from guiagent.scenario.results import ScenarioResult
from guiagent.scenario.schema import BrowserTarget, DesktopTarget, Scenario
from guiagent.scenario.static import StaticServer, find_served_root, is_absolute_url

if TYPE_CHECKING:  # numpy and PIL come with it: they load beside the browser launch (prepare)
    from guiagent.core.env import Environment


class SetupError(RuntimeError):
    """The scenario's target could not be started (page did not load, program did not open a window)."""


class SessionOptions(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    record_dir: Path | None = None  # None: runs/ under the current directory
    record: bool = True
    base_url: str | None = None
    headless: bool = True
    own_displays: bool = False  # a fresh Xvfb per desktop scenario (parallel runs)
    display: str | None = (
        None  # run desktop scenarios on this display (None: $DISPLAY or a fresh Xvfb)
    )
    # runner.AgentFactory (the step engine loads later, see ScenarioSession.prepare)
    agent_factory: Any = Field(default=None, exclude=True)
    skill_paths: list[Path] = Field(default_factory=list)  # --skills: more skill files/folders
    # --browser-cdp / --browser-ws: every browser scenario runs in this browser instead
    browser_cdp: str | None = None
    browser_ws: str | None = None


def run_dir_for(root: Path, name: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^\w.-]+", "-", name).strip("-") or "scenario"
    path = root / f"{stamp}-{safe}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{safe}-{n}"
    return path


def _project_dir(args: list[str], start: Path) -> Path:
    """The directory a relative program path in ``args`` exists under (nearest ancestor of ``start``)."""
    start = start.resolve()
    for arg in args:
        if "/" in arg and not arg.startswith(("/", "-")):
            for folder in (start, *start.parents):
                if (folder / arg).exists():
                    return folder
    return start


class ScenarioSession:
    """Shared resources for running scenarios in one event loop; ``async with`` it."""

    def __init__(
        self, options: SessionOptions | None = None, browser: Any = None, grounder: Any = None
    ) -> None:
        """``browser``: a Playwright Browser to use (and leave open) instead of launching one."""
        self.options = options or SessionOptions()
        self._pw: Any = None
        self._browser: Any = browser
        self._owns_browser = browser is None
        self._browser_lock = asyncio.Lock()
        self._servers: dict[Path, StaticServer] = {}
        self._grounder: Any = grounder

    async def __aenter__(self) -> ScenarioSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        browser, pw = self._browser, self._pw
        self._browser = self._pw = None
        servers = list(self._servers.values())
        self._servers.clear()

        async def close_browser() -> None:
            if browser is not None and self._owns_browser:
                with contextlib.suppress(Exception):
                    await browser.close()
            if pw is not None:
                with contextlib.suppress(Exception):
                    await pw.stop()

        # the servers stop while the browser closes (nothing is loading any more)
        await asyncio.gather(close_browser(), *(asyncio.to_thread(s.stop) for s in servers))

    # --- shared things ------------------------------------------------------------------

    @property
    def grounder(self) -> Any:
        if self._grounder is None:
            from guiagent.grounding.local import LocalGrounder

            self._grounder = LocalGrounder()
        return self._grounder

    async def browser(self) -> Any:
        async with self._browser_lock:
            if self._browser is None:
                from playwright.async_api import async_playwright

                from guiagent.envs.browser_launch import CHROMIUM_ARGS, chromium_executable

                self._pw = await async_playwright().start()
                self._browser = await self._pw.chromium.launch(
                    headless=self.options.headless,
                    executable_path=chromium_executable(),
                    args=list(CHROMIUM_ARGS),
                )
            return self._browser

    async def prepare(self, scenarios: list[Scenario]) -> None:
        """Load the step engine while Chromium starts: the browser is launched in the
        background (when a browser scenario will launch one), and the modules that run
        steps are imported in a worker thread meanwhile (a whole ``guiagent scenario run``
        then pays the longer of the two, not their sum). A launch that fails here is tried
        again, and reported, by the scenario that needs it."""
        launch = None
        attach = self.options.browser_cdp or self.options.browser_ws
        if self._browser is None and not attach and any(_launches_browser(s) for s in scenarios):
            import playwright.async_api  # noqa: F401  (here, not beside the worker's imports)

            import guiagent.envs.browser_launch  # noqa: F401

            launch = asyncio.ensure_future(self.browser())
        try:
            await asyncio.to_thread(_load_step_engine)
        finally:
            if launch is not None:
                try:
                    await launch
                except Exception as exc:  # the scenario's own launch reports it
                    logger.debug("browser launch ahead of the scenarios failed: {}", exc)

    def url_for(self, scenario: Scenario, url: str) -> str:
        if is_absolute_url(url):
            return url
        if self.options.base_url:
            from urllib.parse import urljoin

            return urljoin(self.options.base_url.rstrip("/") + "/", url.lstrip("/"))
        root = find_served_root(url, scenario.base_dir)
        server = self._servers.get(root)
        if server is None:
            server = StaticServer(root).start()
            self._servers[root] = server
        return server.url_for(url)

    # --- environments -------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def environment(self, scenario: Scenario) -> AsyncIterator[Environment]:
        if isinstance(scenario.target, BrowserTarget):
            async with self._browser_env(scenario, scenario.target) as env:
                yield env
        else:
            async with self._desktop_env(scenario, scenario.target) as env:
                yield env

    @contextlib.asynccontextmanager
    async def _browser_env(
        self, scenario: Scenario, target: BrowserTarget
    ) -> AsyncIterator[Environment]:
        from guiagent.envs.browser import BrowserEnv

        url = self.url_for(scenario, target.url) if target.url is not None else None
        cdp, ws = target.cdp, target.ws
        if self.options.browser_cdp or self.options.browser_ws:
            cdp, ws = self.options.browser_cdp, self.options.browser_ws
        if cdp is not None or ws is not None:
            env = BrowserEnv(start_url=url, viewport=scenario.viewport, cdp_url=cdp, ws_endpoint=ws)
            where = f"the browser at {cdp or ws}"
        else:
            env = BrowserEnv(
                start_url=url, viewport=scenario.viewport, browser=await self.browser()
            )
            where = str(url)
        try:
            await env.start()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SetupError(f"cannot open {where}: {first}") from exc
        try:
            yield env
        finally:
            await env.close()

    @contextlib.asynccontextmanager
    async def _desktop_env(
        self, scenario: Scenario, target: DesktopTarget
    ) -> AsyncIterator[Environment]:
        from guiagent.envs.desktop import DesktopEnv
        from guiagent.envs.display import XvfbDisplay

        server = None
        display = self.options.display
        if self.options.own_displays:
            server = await asyncio.to_thread(XvfbDisplay((1280, 800)).start)
            display = server.display
        env = DesktopEnv(display=display)
        proc: _Launched | None = None
        try:
            await env.start()
            x_env = {"DISPLAY": env.display or "", "XAUTHORITY": env.xauthority or ""}
            if target.command is not None:
                proc = await asyncio.to_thread(self._launch, scenario, target, x_env)
            if target.window is not None:
                await asyncio.to_thread(self._wait_window, target, x_env, proc)
            yield env
        finally:
            if proc is not None:
                await asyncio.to_thread(_stop_process, proc)
            await env.close()
            if server is not None:
                await asyncio.to_thread(server.stop)

    def _launch(
        self, scenario: Scenario, target: DesktopTarget, x_env: dict[str, str]
    ) -> _Launched:
        assert target.command is not None
        args = (
            shlex.split(target.command) if isinstance(target.command, str) else list(target.command)
        )
        cwd = (
            (scenario.base_dir / target.cwd).resolve()
            if target.cwd
            else _project_dir(args, scenario.base_dir)
        )
        logger.debug("launching {} in {} on {}", args, cwd, x_env["DISPLAY"])
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - a pipe nobody reads could block the app
        try:
            proc = subprocess.Popen(
                args,
                cwd=cwd,
                env={**os.environ, **x_env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
                # the scenario owns its app: a killed run must not leave it on the user's screen
                preexec_fn=parent_death_signal(),
            )
        except OSError as exc:
            errors.close()
            raise SetupError(f"cannot launch {args[0]!r}: {exc.strerror or exc}") from exc
        return _Launched(proc, errors)

    def _wait_window(
        self, target: DesktopTarget, x_env: dict[str, str], launched: _Launched | None
    ) -> None:
        proc = launched.proc if launched is not None else None
        assert target.window is not None
        pattern = "^" + re.escape(target.window) + "$"
        deadline = time.monotonic() + target.startup_timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                err = launched.stderr_tail() if launched is not None else ""
                raise SetupError(
                    f"{target.command!r} exited with code {proc.returncode} before its window appeared: {err.strip()}"
                )
            found = subprocess.run(
                ["xdotool", "search", "--onlyvisible", "--name", pattern],
                env={**os.environ, **x_env},
                capture_output=True,
                text=True,
            )
            if found.returncode == 0 and found.stdout.strip():
                return
            time.sleep(0.1)
        raise SetupError(f"no window titled {target.window!r} within {target.startup_timeout:g} s")

    # --- running ------------------------------------------------------------------------

    async def run(self, scenario: Scenario) -> ScenarioResult:
        """Set up the target, run the steps with a recorder, tear down; never raises for a failing scenario."""
        from guiagent.agent.step import finish_recording
        from guiagent.scenario.runner import StepResult, run_scenario, scenario_redactor

        recorder = None
        started = time.perf_counter()
        # one redactor for the run: what the runner learns (passwords typed) also hides
        # them in what is written here
        redactor = scenario_redactor(scenario)
        if self.options.record:
            from guiagent.record.trajectory import Recorder, RunHeader

            root = self.options.record_dir or Path("runs")
            recorder = Recorder(
                run_dir_for(root, scenario.name),
                RunHeader(
                    task=f"scenario {scenario.name}",
                    surface=scenario.env or "",
                    settings={
                        "scenario": scenario.path,
                        "variables": redactor.redact_data(scenario.variables),
                        "kind": "scenario",
                        # what an export of the run starts from (guiagent.record.export_scenario)
                        "target": redactor.redact_data(
                            scenario.target.model_dump(mode="json", exclude_none=True)
                        ),
                        "viewport": list(scenario.viewport),
                    },
                ),
            )
        scenario.use_skill_paths([str(p) for p in self.options.skill_paths])
        try:
            async with self.environment(scenario) as env:
                result = await run_scenario(
                    scenario,
                    env,
                    self.grounder,
                    recorder=recorder,
                    agent_factory=self.options.agent_factory,
                    redactor=redactor,
                )
        except Exception as exc:
            detail = redactor.redact_text(str(exc))
            logger.debug(
                "scenario {} could not run: {}: {}", scenario.name, type(exc).__name__, detail
            )
            message = f"{scenario.path or scenario.name}: setup failed: {detail}"
            result = ScenarioResult(
                name=scenario.name,
                path=scenario.path,
                status="error",
                error=message,
                steps=[
                    StepResult(
                        index=i, kind=s.kind, label=f"step {i + 1} ({s.kind})", status="skipped"
                    )
                    for i, s in enumerate(scenario.steps)
                ],
                ms=(time.perf_counter() - started) * 1000,
                run_dir=str(recorder.run_dir) if recorder is not None else None,
            )
        if recorder is not None:
            # the header is written again on finish: hide what the run learned since
            failed = result.failed_step
            finish_recording(
                recorder,
                redactor,
                "finished" if result.ok else "failed",
                None if result.ok else (failed.error if failed else result.error) or None,
            )
        return result

    async def run_many(
        self,
        scenarios: list[Scenario],
        workers: int = 1,
        on_result: Callable[[ScenarioResult], None] | None = None,
    ) -> list[ScenarioResult]:
        """Run scenarios, ``workers`` at a time (asyncio tasks); results in input order."""
        semaphore = asyncio.Semaphore(max(1, workers))

        async def one(scenario: Scenario) -> ScenarioResult:
            async with semaphore:
                result = await self.run(scenario)
            if on_result is not None:
                on_result(result)
            return result

        return list(await asyncio.gather(*(one(s) for s in scenarios)))


def _launches_browser(scenario: Scenario) -> bool:
    target = scenario.target
    return isinstance(target, BrowserTarget) and target.cdp is None and target.ws is None


def _load_step_engine() -> None:
    """Import what runs a scenario's steps (grounding, the UI, the recorder, the browser env)."""
    import guiagent.envs.browser
    import guiagent.grounding.local
    import guiagent.record.trajectory
    import guiagent.scenario.runner  # noqa: F401


class _Launched:
    """A program launched for a desktop scenario, with its stderr kept in a temporary file."""

    def __init__(self, proc: subprocess.Popen[bytes], stderr: Any) -> None:
        self.proc = proc
        self.stderr = stderr

    def stderr_tail(self, limit: int = 800) -> str:
        try:
            self.stderr.seek(0)
            return str(self.stderr.read().decode(errors="replace")[-limit:])
        except (OSError, ValueError):
            return ""


def _stop_process(launched: _Launched) -> None:
    stop_process_group(launched.proc)
    launched.stderr.close()
