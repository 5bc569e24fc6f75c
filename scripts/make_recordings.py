"""Regenerate the small real recordings shipped in recordings/ (see recordings/README.md).

    python3 scripts/make_recordings.py [--out recordings]

Makes, against the demo apps, with the real agent loop / scenario runner and stand-in
models (no model server is needed):

- ``browser_login``: the agent loop signs in to guiagent/demo/webapp/index.html in headless
  Chromium (1280x800), the DOM-oracle stand-in answering;
- ``tk_greet``: the agent loop types a name into the Tk demo app on a private Xvfb and
  presses Greet, the stand-in reading the screenshot with OCR;
- ``scenario_login``: the scenario runner plays scenarios/web/login_success.yaml.

Each folder is replaced. Frames are JPEG (the recorder's default), so the folder stays small.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the Tk stand-in model lives with the tests that use it

from apps.replay_support import OcrGreetModel, launch_tk_demo  # noqa: E402

from guiagent.agent.config import AgentConfig  # noqa: E402
from guiagent.agent.loop import Agent  # noqa: E402
from guiagent.core.geometry import CoordSpace  # noqa: E402
from guiagent.envs.browser import CHROMIUM_ARGS, BrowserEnv, chromium_executable  # noqa: E402
from guiagent.envs.desktop import DesktopEnv  # noqa: E402
from guiagent.envs.display import XvfbDisplay  # noqa: E402
from guiagent.grounding.local import LocalGrounder  # noqa: E402
from guiagent.record import load  # noqa: E402
from guiagent.record.verify import verify_run  # noqa: E402
from guiagent.scenario.schema import load_scenario  # noqa: E402
from guiagent.scenario.session import ScenarioSession, SessionOptions  # noqa: E402
from guiagent.testing.dom_oracle import DomOracle, OracleStep  # noqa: E402
from guiagent.testing.fake_server import FakeModelServer  # noqa: E402
from guiagent.testing.fixtures import PINNED_RENDERING_ARGS, StaticServer  # noqa: E402

WEBAPP = "guiagent/demo/webapp/index.html"
LOGIN_PLAN = [
    OracleStep(kind="click", selector="#username"),
    OracleStep(kind="type", text="alice"),
    OracleStep(kind="click", selector="#password"),
    OracleStep(kind="type", text="secret"),  # the demo app's published password
    OracleStep(kind="click", selector="#sign-in"),
    OracleStep(kind="finish", text="signed in as alice"),
]


async def browser_login(browser: object, out: Path) -> None:
    server = StaticServer(REPO)
    try:
        async with BrowserEnv(start_url=server.url_for(WEBAPP), browser=browser) as env:
            oracle = DomOracle(env.page, LOGIN_PLAN, asyncio.get_running_loop())
            with FakeModelServer(oracle) as model:
                agent = Agent(
                    env,
                    AgentConfig(
                        model_url=model.url,
                        coord_space=CoordSpace.IMAGE,
                        record_dir=out,
                        settle_timeout_s=1.0,
                    ),
                )
                try:
                    result = await agent.run("Sign in as alice with the password secret")
                finally:
                    await agent.close()
            welcome = await env.page.locator("#welcome").text_content()
    finally:
        server.close()
    if not result.ok or "alice" not in (welcome or ""):
        raise RuntimeError(f"browser_login did not sign in: {result}, welcome {welcome!r}")


async def tk_greet(out: Path, grounder: LocalGrounder) -> None:
    with XvfbDisplay((1920, 1080)) as display, tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.json"
        app = launch_tk_demo(display.env, state)
        try:
            async with DesktopEnv(display=display.display) as env:
                with FakeModelServer(OcrGreetModel(grounder, "Ada")) as model:
                    agent = Agent(
                        env,
                        AgentConfig(
                            model_url=model.url,
                            coord_space=CoordSpace.IMAGE,
                            record_dir=out,
                            settle_timeout_s=1.0,
                        ),
                    )
                    try:
                        result = await agent.run("Type Ada in the Name field and press Greet")
                    finally:
                        await agent.close()
            await asyncio.sleep(0.2)
            greeting = json.loads(state.read_text())["greeting"]
        finally:
            app.stop()
    if not result.ok or greeting != "Hello, Ada!":
        raise RuntimeError(f"tk_greet did not greet: {result}, greeting {greeting!r}")


async def scenario_login(browser: object, out: Path, grounder: LocalGrounder) -> None:
    scenario = load_scenario(REPO / "scenarios" / "web" / "login_success.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        session = ScenarioSession(
            SessionOptions(record_dir=Path(tmp)), browser=browser, grounder=grounder
        )
        async with session:
            result = await session.run(scenario)
        if not result.ok:
            raise RuntimeError(f"scenario_login failed: {result.failure_message()}")
        shutil.copytree(result.run_dir, out)


async def make(root: Path) -> list[Path]:
    from playwright.async_api import async_playwright

    grounder = LocalGrounder(incremental=False)
    targets = [root / "browser_login", root / "tk_greet", root / "scenario_login"]
    for path in targets:
        if path.exists():
            shutil.rmtree(path)
    pw = await async_playwright().start()
    browser = await pw.chromium.launch(
        headless=True,
        executable_path=chromium_executable(),
        args=[*CHROMIUM_ARGS, *PINNED_RENDERING_ARGS],  # as the tests' browser draws
    )
    try:
        await browser_login(browser, targets[0])
        await tk_greet(targets[1], grounder)
        await scenario_login(browser, targets[2], grounder)
    finally:
        await browser.close()
        await pw.stop()
    for path in targets:
        problems = verify_run(load(path))
        if problems:
            raise RuntimeError(f"{path} does not verify: {problems}")
    return targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "recordings")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for path in asyncio.run(make(args.out)):
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        print(f"{path}: {len(load(path).steps)} steps, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
