"""What the loop reads from its environment besides pixels, and how a run's recording opens."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from loguru import logger

from guiagent.agent.config import AgentConfig
from guiagent.agent.policy import Policy
from guiagent.agent.step import redact_record
from guiagent.core.actions import ExtraTool
from guiagent.core.change import NearText, near_box, settle_env
from guiagent.core.env import DomSource, Environment, Frame, FullPageSource, WindowList
from guiagent.core.geometry import Point
from guiagent.core.redact import Redactor
from guiagent.models.profiles import ModelProfile
from guiagent.record.trajectory import Recorder, RunHeader


class SkillSource(Protocol):
    """The skills the model may call (a :class:`guiagent.skills.SkillRegistry`)."""

    def tools(self, surface: str | None, url: str | None, title: str | None) -> list[ExtraTool]: ...

    async def run(
        self, name: str, env: Environment, params: Mapping[str, Any], **kw: Any
    ) -> Any: ...


class SecretSource(Protocol):
    """Named secrets a skill may type (a :class:`guiagent.skills.SecretStore`; its
    ``entries()`` also give each secret's name and scope)."""

    def known_values(self) -> Iterable[str]: ...


async def observe_settled(
    env: Environment, config: AgentConfig, observe: Callable[[], Awaitable[Frame]] | None = None
) -> Frame:
    """A frame (from ``observe``, default ``env.observe``) once the screen stopped changing
    (or at the settle timeout)."""
    observe = observe or env.observe
    if not config.settle:
        return await observe()
    settled = await settle_env(
        env, observe, quiet_ms=config.settle_quiet_ms, timeout_s=config.settle_timeout_s
    )
    # measured, per step: how the screen was judged still and how long that took
    settled.frame.meta["settle"] = {
        "how": settled.how,
        "settled": settled.settled,
        "waited_ms": round(settled.waited_ms, 1),
        "quiet_ms": config.settle_quiet_ms,
    }
    return settled.frame


async def dom_snapshot(
    env: Environment, accessible_names: bool = True
) -> list[dict[str, Any]] | None:
    """The page's elements (None: not a DOM source, or the page was navigating);
    ``accessible_names``: with names and roles from the browser's accessibility tree too."""
    if not isinstance(env, DomSource):
        return None
    # a full-page frame shows fields below the fold too: they must be masked as well
    full_page = isinstance(env, FullPageSource) and env.full_page
    try:
        return await env.dom_elements(in_viewport=not full_page, accessible_names=accessible_names)
    except Exception as exc:  # the page navigating mid-query is not fatal for the lookup
        logger.debug("dom snapshot failed: {}", exc)
        return None


async def window_list(env: Environment, redactor: Redactor) -> list[dict[str, Any]] | None:
    """Desktop windows (title and box) when the user listed windows to black out."""
    if not redactor.window_titles or not isinstance(env, WindowList):
        return None
    try:
        return await env.windows()
    except Exception as exc:  # no window list: fall back to nothing rather than a crash
        logger.warning("could not list windows for redaction: {}", exc)
        return []


def desktop_ocr(env: Environment, config: AgentConfig) -> Any:
    """On the desktop, secrets the user named are found on screen by OCR (about 0.1-1.5 s a
    step, so only when asked); the built-in patterns then redact text, not pixels."""
    if env.surface != "desktop":
        return None
    if not (config.secrets or config.secret_patterns):
        logger.info(
            "desktop: password dots are masked; pass --secret/--secret-pattern to OCR the screen for secrets"
        )
        return None
    from guiagent.grounding.local import LocalGrounder

    return LocalGrounder()


def text_near_reader(frame: Frame, dom: list[dict[str, Any]] | None, ocr: Any) -> NearText | None:
    """What the loop detector reads near the last target of ``frame`` when its pixels say "no
    change": the page's element texts and field values (a browser's DOM snapshot of this frame),
    else OCR of the region (the desktop's reader, when the run has one). None: nothing reads."""
    if dom is not None:
        return lambda point: _dom_text_near(frame, dom, point)
    if ocr is not None and not inspect.iscoroutinefunction(getattr(ocr, "read_text", None)):
        return lambda point: _ocr_text_near(frame, ocr, point)
    return None


def _dom_text_near(frame: Frame, dom: list[dict[str, Any]], point: tuple[float, float]) -> str:
    left, top, right, bottom = near_box(point, frame.image.width, frame.image.height)
    texts = []
    for element in dom:
        box = element.get("box") or {}
        try:
            x, y, w, h = (float(box[k]) for k in ("x", "y", "width", "height"))
        except (KeyError, TypeError, ValueError):
            continue
        a = frame.transform.screen_to_frame(Point(x, y))  # DOM boxes are CSS (screen) pixels
        b = frame.transform.screen_to_frame(Point(x + w, y + h))
        if a.x < right and b.x > left and a.y < bottom and b.y > top:
            value = None if element.get("password") else element.get("value")
            texts += [str(t) for t in (element.get("text"), value) if t]
    return " ".join(texts)


def _ocr_text_near(frame: Frame, ocr: Any, point: tuple[float, float]) -> str:
    left, top, right, bottom = near_box(point, frame.image.width, frame.image.height)
    crop = frame.image.crop((int(left), int(top), int(right), int(bottom)))
    boxes = ocr.read_text(Frame.from_image(crop, surface=frame.surface))
    return " ".join(str(getattr(b, "text", "")) for b in boxes)


def open_recorder(
    env: Environment, config: AgentConfig, profile: ModelProfile, redactor: Redactor, task: str
) -> Recorder | None:
    """The run's recording (None when ``record_dir`` is not set)."""
    if config.record_dir is None:
        return None
    header = RunHeader(
        task=redactor.redact_text(task),
        surface=env.surface,
        model={"url": config.model_url, "name": config.model_name, "profile": profile.name},
        settings=config.model_dump(mode="json", exclude={"api_key", "secrets"}),
    )
    # every record written passes the run's redaction once more (the last net for secrets)
    return Recorder(
        Path(config.record_dir), header, redact=lambda data: redact_record(redactor, data)
    )


def register_secrets(
    redactor: Redactor, policy: Policy, secrets: SecretSource | None, values: Iterable[str]
) -> None:
    """Stored secrets (by name, with their scope) and ``--secret`` values: never written or
    sent, and never typed by the model; a skill may type a stored one inside its scope."""
    entries = getattr(secrets, "entries", None)
    if callable(entries):
        for entry in entries():
            redactor.add_secret(entry.value)
            policy.add_secret(entry.value, name=entry.name, scope=entry.scope)
    elif secrets is not None:
        for value in secrets.known_values():
            redactor.add_secret(value)
            policy.add_secret(value)
    for value in values:
        redactor.add_secret(value)
        policy.add_secret(value)
