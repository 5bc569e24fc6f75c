"""Built-in skills written in Python (the YAML ones live in ``builtin/``)."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import subprocess

from guiagent.core.env import PageHolder, display_of
from guiagent.skills.model import SkillError, skill
from guiagent.skills.registry import SkillContext


@skill(params={"url": "the address to open (http, https or file)"})
async def open_url(ctx: SkillContext, url: str) -> str:
    """Open a URL: in the browser page, or with the desktop's default handler (xdg-open)."""
    if not url.startswith(("http://", "https://", "file://", "about:")):
        raise SkillError(f"open_url: {url!r} is not an http(s), file or about: URL")
    if isinstance(ctx.env, PageHolder):
        await ctx.env.page.goto(url)
        return f"opened {url}"
    opener = shutil.which("xdg-open")
    if opener is None:
        raise SkillError("open_url: no browser page and no xdg-open on this desktop")
    subprocess.Popen([opener, url], env=_display_env(ctx), start_new_session=True)
    return f"asked the desktop to open {url}"


@skill(
    params={
        "fields": "mapping of field label to the text to type into it",
        "submit": "button text to press afterwards (optional)",
    }
)
async def fill_form(ctx: SkillContext, fields: dict, submit: str = "") -> str:
    """Fill a form: for each label, type its value into the field with that label; then press submit if given."""
    if not fields:
        raise SkillError("fill_form: fields is empty")
    steps: list[dict] = [
        {"type": {"text": str(value), "into": str(label)}} for label, value in fields.items()
    ]
    if submit:
        steps.append({"click": submit})
    await ctx.run_steps(steps)
    return f"filled {len(fields)} field(s)" + (f" and pressed {submit!r}" if submit else "")


@skill(
    applies_to={"surface": "desktop"},
    params={
        "command": "the program to start, e.g. 'xcalc'",
        "window_title": "title of its window to wait for (optional)",
    },
)
async def open_app(
    ctx: SkillContext, command: str, window_title: str = "", timeout: float = 15.0
) -> str:
    """Open an application on the desktop and wait until its window shows."""
    argv = shlex.split(command)
    if not argv or shutil.which(argv[0]) is None:
        raise SkillError(f"open_app: {argv[0] if argv else command!r} is not an installed program")
    env = _display_env(ctx)
    subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    if not window_title:
        return f"started {command}"
    wait = await asyncio.create_subprocess_exec(
        "xdotool", "search", "--sync", "--onlyvisible", "--name", window_title, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await asyncio.wait_for(wait.wait(), timeout)
    except asyncio.TimeoutError:
        wait.kill()
        raise SkillError(
            f"open_app: no window titled {window_title!r} within {timeout:g} s"
        ) from None
    return f"started {command}; window {window_title!r} is open"


def _display_env(ctx: SkillContext) -> dict[str, str]:
    env = dict(os.environ)
    display = display_of(ctx.env)
    if display:
        env["DISPLAY"] = display
    return env
