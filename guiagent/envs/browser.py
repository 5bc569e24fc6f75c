"""The browser surface: one Playwright page, seen as a viewport screenshot, driven in CSS pixels.

Frames are in device pixels (viewport CSS size x ``window.devicePixelRatio``, which
browser zoom also multiplies); actions arrive in CSS pixels relative to the viewport.
Both numbers are read from the page at every observe(), so zoom changes between steps are
honoured. With ``full_page=True`` the frame is the whole document and the transform's
origin is minus the scroll offset: a point below the fold maps to a viewport coordinate
beyond the viewport, and act() scrolls it into view before pressing.

Ways to get a browser: launch one (Playwright's own Chromium when installed, else
Debian's /usr/bin/chromium), share an already-launched ``browser`` (the env opens its own
context), attach to a running Chromium over CDP (``cdp_url``) and act on its active page,
or connect to a ``playwright run-server`` endpoint (``ws_endpoint``).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any

from loguru import logger
from PIL import Image
from playwright.async_api import Browser, BrowserContext, Page, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from guiagent.core.actions import (
    BaseAction,
    Click,
    DoubleClick,
    Drag,
    Fail,
    Finish,
    InvalidToolCall,
    Key,
    Move,
    RightClick,
    Scroll,
    Type,
    Wait,
    modifier_prefix,
)
from guiagent.core.env import ActResult, EncodedImage, Frame, SurfaceGoneError
from guiagent.core.geometry import FrameTransform, Point, Size, transform_for_page
from guiagent.core.killswitch import KillSwitch
from guiagent.envs.browser_ax import DOM_SNAPSHOT_JS, AccessibleNames
from guiagent.envs.browser_capture import ViewportCapture, decode_rgb, device_size
from guiagent.envs.browser_launch import (  # noqa: F401  (re-exported: old import path)
    CHROMIUM_ARGS,
    chromium_executable,
    launch_chromium,
)
from guiagent.envs.browser_page import (  # noqa: F401  (re-exported: old import path)
    _FOCUSED_AT_JS,
    _KEYS,
    HOVER_STYLED_JS,
    HoverAnswer,
    _next_frames,
    _refs_to_backend_ids,
    before_press,
    held_modifiers,
    move_and_draw,
    playwright_key,
    wheel_and_wait,
)
from guiagent.envs.browser_quiet import QUIET_INSTALL_JS, change_token, wait_quiet
from guiagent.envs.browser_typing import PageTyping
from guiagent.envs.choice_script import CHOICE_JS
from guiagent.envs.page_scripts import (
    _FOCUS_STATE_JS,
    _FOCUSED_JS,
    _HIT_TEST_JS,
    _PAGE_STATE_JS,
    _SCROLL_INTO_VIEW_JS,
)

WHEEL_PX_PER_NOTCH = 100
TYPE_CHUNK = 64  # characters typed between two kill-switch checks


class BrowserEnv:
    """Environment for one Playwright page (``surface == "browser"``); an async context manager."""

    surface = "browser"

    def __init__(
        self,
        start_url: str | None = None,
        cdp_url: str | None = None,
        ws_endpoint: str | None = None,
        headless: bool = True,
        viewport: tuple[int, int] = (1280, 800),
        device_scale_factor: float = 1.0,
        executable_path: str | None = None,
        browser: Browser | None = None,
        full_page: bool = False,
        extra_args: tuple[str, ...] | list[str] = (),
        timeout_ms: float = 30_000,
    ) -> None:
        if sum(x is not None for x in (cdp_url, ws_endpoint, browser)) > 1:
            raise ValueError("give at most one of cdp_url, ws_endpoint and browser")
        if viewport[0] <= 0 or viewport[1] <= 0:
            raise ValueError(f"viewport must be positive, got {viewport}")
        if not device_scale_factor > 0:
            raise ValueError(f"device_scale_factor must be positive, got {device_scale_factor}")
        self.start_url = start_url
        self.cdp_url = cdp_url
        self.ws_endpoint = ws_endpoint
        self.headless = headless
        self.viewport = viewport
        self.device_scale_factor = device_scale_factor
        self.executable_path = executable_path
        self.full_page = full_page
        self.extra_args = list(extra_args)
        self.timeout_ms = timeout_ms
        self._shared_browser = browser
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._context: BrowserContext | None = None
        self._owns_context = False
        self._owns_browser = False
        self._page: Page | None = None
        self._gone: str | None = None
        self._capture = ViewportCapture(timeout_ms)
        self._typing = PageTyping()
        self._view: dict[str, Any] | None = None  # the page state of the last frame
        # names from the browser's accessibility tree in DOM snapshots (Chromium, over CDP)
        self.accessible_names = True
        self._ax = AccessibleNames()
        # the agent's kill switch, checked between any two input events of one action
        self.killswitch: KillSwitch | None = None
        self._hover_hint = HoverAnswer()

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> BrowserEnv:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def page(self) -> Page:
        if self._page is None:
            raise SurfaceGoneError(
                "browser env is not started (use 'async with BrowserEnv()' or await start())"
            )
        return self._page

    @property
    def browser(self) -> Browser | None:
        return self._browser

    async def start(self) -> BrowserEnv:
        if self._page is not None:
            return self
        try:
            await self._open()
            if self.start_url:
                await self.page.goto(self.start_url, timeout=self.timeout_ms)
        except BaseException:
            await self.close()
            raise
        return self

    async def _open(self) -> None:
        context_options: dict[str, Any] = {
            "viewport": {"width": self.viewport[0], "height": self.viewport[1]},
            "device_scale_factor": self.device_scale_factor,
        }
        if self._shared_browser is not None:
            self._browser = self._shared_browser
        else:
            self._pw = await async_playwright().start()
            chromium = self._pw.chromium
            if self.cdp_url is not None:
                self._browser = await chromium.connect_over_cdp(
                    self.cdp_url, timeout=self.timeout_ms
                )
                self._page = await self._active_page(self._browser)
                self._context = self._page.context
                await self._page.add_init_script(QUIET_INSTALL_JS)
                self._watch()
                logger.info("attached over CDP to {} ({})", self.cdp_url, self._page.url)
                return
            if self.ws_endpoint is not None:
                self._browser = await chromium.connect(
                    self.ws_endpoint, timeout=self.timeout_ms, headers=self._ws_headers()
                )
                self._owns_browser = True
            else:
                exe = self.executable_path or chromium_executable()
                args = [*CHROMIUM_ARGS, *self.extra_args]
                logger.debug("launching chromium {} {}", exe or "(playwright default)", args)
                self._browser = await chromium.launch(
                    headless=self.headless, executable_path=exe, args=args, timeout=self.timeout_ms
                )
                self._owns_browser = True
        self._context = await self._browser.new_context(**context_options)
        self._owns_context = True
        self._context.set_default_timeout(self.timeout_ms)
        self._page = await self._context.new_page()
        await self._page.add_init_script(QUIET_INSTALL_JS)
        self._watch()

    def _ws_headers(self) -> dict[str, str] | None:
        """Launch options for a run-server endpoint when an executable is named.

        The server only honours ``executablePath`` when started with ``--unsafe``
        (``python -m playwright run-server --port P --unsafe``).
        """
        if self.executable_path is None:
            return None
        options = {
            "executablePath": self.executable_path,
            "args": [*CHROMIUM_ARGS, *self.extra_args],
            "headless": self.headless,
        }
        return {"x-playwright-launch-options": json.dumps(options)}

    async def _active_page(self, browser: Browser) -> Page:
        pages = [p for ctx in browser.contexts for p in ctx.pages if not p.is_closed()]
        if not pages:
            context = browser.contexts[0] if browser.contexts else await browser.new_context()
            return await context.new_page()
        for page in reversed(pages):  # the focused, visible page wins; else the last one
            try:
                if await page.evaluate(
                    "() => document.visibilityState === 'visible' && document.hasFocus()"
                ):
                    return page
            except PlaywrightError:
                continue
        return pages[-1]

    def _watch(self) -> None:
        page, browser = self.page, self._browser

        def gone(reason: str) -> None:
            if self._gone is None:
                self._gone = reason
                logger.warning("browser surface gone: {}", reason)

        page.on("crash", lambda _: gone("the page crashed"))
        page.on("close", lambda _: gone("the page was closed"))
        if browser is not None:
            browser.on(
                "disconnected", lambda _: gone("the browser disconnected (crashed or closed)")
            )

    async def close(self) -> None:
        page, context, browser, pw = self._page, self._context, self._browser, self._pw
        self._page = self._context = self._browser = self._pw = None
        self._capture.reset()
        self._typing.reset()
        self._ax.reset()
        self._view = None
        self._gone = self._gone or "the env was closed"
        for step in (
            (context.close if (context is not None and self._owns_context) else None),
            (browser.close if (browser is not None and self._owns_browser) else None),
            (pw.stop if pw is not None else None),
        ):
            if step is None:
                continue
            try:
                await asyncio.wait_for(step(), timeout=15)
            except (PlaywrightError, asyncio.TimeoutError) as exc:
                logger.debug("closing browser env: {}", exc)
        del page

    def _surface_error(self, exc: BaseException) -> SurfaceGoneError | None:
        page = self._page
        if self._gone is not None or page is None or page.is_closed():
            return SurfaceGoneError(
                f"browser surface is gone: {self._gone or 'page closed'} ({exc})"
            )
        if self._browser is not None and not self._browser.is_connected():
            return SurfaceGoneError(f"browser surface is gone: browser disconnected ({exc})")
        text = str(exc)
        if "Target crashed" in text or "has been closed" in text or "Target closed" in text:
            return SurfaceGoneError(f"browser surface is gone: {text.splitlines()[0]}")
        return None

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn Playwright's errors about a dead page or browser into SurfaceGoneError."""
        try:
            yield
        except PlaywrightError as exc:
            gone = self._surface_error(exc)
            if gone is not None:
                raise gone from exc
            raise

    def _check_alive(self) -> Page:
        page = self.page
        if self._gone is not None:
            raise SurfaceGoneError(f"browser surface is gone: {self._gone}")
        return page

    # -- observe ---------------------------------------------------------------------

    async def page_state(self) -> dict[str, Any]:
        """devicePixelRatio, viewport (CSS px), scroll, document size, url and title in one call."""
        page = self._check_alive()
        with self._guard():
            state: dict[str, Any] = await page.evaluate(_PAGE_STATE_JS)
        return state

    async def observe(self) -> Frame:
        page = self._check_alive()
        with self._guard():  # page state and pixels in parallel
            state, png = await asyncio.gather(
                page.evaluate(_PAGE_STATE_JS), self._capture.png(page, self.full_page)
            )
            image = Image.open(io.BytesIO(png)).convert("RGB")
            dpr = float(state["dpr"])
            if self._capture.from_cdp and abs(image.width - round(state["width"] * dpr)) > 1:
                # an emulated device scale: CDP's plain capture is in CSS pixels here
                self._capture.give_up_cdp()
                png = await self._capture.png(page, self.full_page)
                image = Image.open(io.BytesIO(png)).convert("RGB")
        self._view = state
        return self._frame(image, state)

    async def observe_encoded(self, fit: Callable[[Size], Size], quality: int) -> Frame | None:
        """The viewport as Chromium's JPEG, decoded once (:attr:`Frame.encoded` holds the
        bytes), when the model is sent the frame at its own size (``fit(size) == size``).
        None when not (a smaller image is sent, a full-page frame, no CDP, a device scale
        CDP's capture ignores, a viewport that kept resizing): :meth:`observe` then."""
        if self.full_page or not self._capture.jpeg_usable:
            return None
        page = self._check_alive()
        with self._guard():
            view = self._view or await page.evaluate(_PAGE_STATE_JS)
            shot = await self._capture.viewport_jpeg(page, view, fit, quality)
        if shot is None:
            return None
        self._view, data = shot
        image = await asyncio.to_thread(decode_rgb, data)
        if not self._capture.jpeg_fits(image, device_size(self._view)):
            return None
        encoded = EncodedImage(data=data, format="JPEG", quality=quality, image=image)
        return self._frame(image, self._view, encoded)

    def _frame(
        self, image: Image.Image, state: dict[str, Any], encoded: EncodedImage | None = None
    ) -> Frame:
        """A frame of ``image`` (device pixels) showing the page in ``state``."""
        dpr = float(state["dpr"])
        transform = transform_for_page(
            Size(int(state["width"]), int(state["height"])), dpr, Size(image.width, image.height)
        )
        if (
            self.full_page
        ):  # frame pixel (0,0) is the document's top-left, above/left of the viewport
            transform = FrameTransform(
                frame_size=transform.frame_size,
                origin=Point(-float(state["scrollX"]), -float(state["scrollY"])),
                scale=transform.scale,
            )
        meta = {
            "url": state["url"],
            "title": state["title"],
            "viewport": [state["width"], state["height"]],
            "device_pixel_ratio": dpr,
            "scroll": [state["scrollX"], state["scrollY"]],
            "full_page": self.full_page,
        }
        return Frame(
            image=image, transform=transform, surface=self.surface, meta=meta, encoded=encoded
        )

    async def wait_quiet(self, timeout_s: float) -> dict[str, Any] | None:
        """Wait until the page itself is quiet (network, timers, DOM, animations, fonts);
        None when the page cannot be instrumented (see guiagent.envs.browser_quiet)."""
        page = self._check_alive()
        with self._guard():
            return await wait_quiet(page, timeout_s)

    async def change_token(self) -> str | None:
        """See :class:`guiagent.core.env.ChangeSource` (guiagent.envs.browser_quiet)."""
        return await change_token(self._check_alive())

    # -- act -------------------------------------------------------------------------

    hover_styled_js = HOVER_STYLED_JS  # see guiagent.core.env.HoverHint

    def note_hover_styled(self, styled: bool) -> None:
        """The page's answer to :attr:`hover_styled_js`, read just now, for the next press."""
        self._hover_hint.note(styled)

    async def act(self, action: BaseAction) -> ActResult:
        hover_hint = self._hover_hint.take()  # for this action only
        if isinstance(action, Wait):  # the kill switch and the run's deadline end a wait too
            if self.killswitch is not None:
                await self.killswitch.sleep(action.seconds)
            else:
                await asyncio.sleep(action.seconds)
            return ActResult(detail=f"waited {action.seconds:g}s")
        if isinstance(action, (Finish, Fail)):
            return ActResult(detail=action.name)
        page = self._check_alive()
        self._check_killed()
        with self._guard():
            return await self._act(page, action, hover_hint)

    @contextlib.contextmanager
    def _keyboard_may_stick(self, uses_keyboard: bool) -> Iterator[None]:
        """A Playwright error amid keyboard.down/press may leave a key held in Playwright's
        keyboard, which its keyboard.type honours: from then on type through it."""
        try:
            yield
        except PlaywrightError:
            if uses_keyboard and not self._typing.keys_may_be_held:
                logger.debug("a key press failed midway: typing through page.keyboard from now")
                self._typing.keys_may_be_held = True
            raise

    def _check_killed(self) -> None:
        if self.killswitch is not None:
            self.killswitch.check()

    async def _into_view(self, page: Page, x: float, y: float) -> tuple[float, float]:
        """Scroll so that viewport point (x, y) is inside the viewport; return its new position."""
        state = await page.evaluate(_PAGE_STATE_JS)
        w, h = state["width"], state["height"]
        if 0 <= x < w and 0 <= y < h:
            return x, y
        dx = x - w / 2 if not 0 <= x < w else 0
        dy = y - h / 2 if not 0 <= y < h else 0
        after = await page.evaluate(
            "([dx, dy]) => { window.scrollBy(dx, dy); return [window.scrollX, window.scrollY]; }",
            [dx, dy],
        )
        moved_x, moved_y = after[0] - state["scrollX"], after[1] - state["scrollY"]
        return x - moved_x, y - moved_y

    async def _act(
        self, page: Page, action: BaseAction, hover_hint: bool | None = None
    ) -> ActResult:
        mouse = page.mouse
        if isinstance(action, (Click, DoubleClick, RightClick, Move)):
            x, y = (
                await self._into_view(page, action.x, action.y)
                if self.full_page
                else (action.x, action.y)
            )
            if isinstance(action, Move):
                await move_and_draw(page, x, y)
                return ActResult(detail=f"{action.name} at {x:g},{y:g}")
            # on a page with :hover rules, move first and let the page draw its hover state
            # (an icon that swaps its image on :hover gets no click when the press lands in
            # the same instant as the move); the press is one message that moves there too
            await before_press(page, x, y, hover_hint)
            with self._keyboard_may_stick(bool(action.modifiers)):
                async with held_modifiers(page, action.modifiers, self._check_killed):
                    if isinstance(action, Click):
                        await mouse.click(x, y)
                    elif isinstance(action, DoubleClick):
                        await mouse.dblclick(x, y)
                    else:
                        await mouse.click(x, y, button="right")
            return ActResult(
                detail=f"{modifier_prefix(action.modifiers)}{action.name} at {x:g},{y:g}"
            )
        if isinstance(action, Drag):
            x1, y1, x2, y2 = action.x1, action.y1, action.x2, action.y2
            if self.full_page:
                x1b, y1b = await self._into_view(page, x1, y1)
                x2, y2 = x2 - (x1 - x1b), y2 - (y1 - y1b)
                x1, y1 = x1b, y1b
            await mouse.move(x1, y1)
            await mouse.down()
            try:
                for i in range(1, 9):  # eight steps, the kill switch checked between them
                    self._check_killed()
                    await mouse.move(x1 + (x2 - x1) * i / 8, y1 + (y2 - y1) * i / 8)
            finally:
                await mouse.up()
            return ActResult(detail=f"drag {x1:g},{y1:g} -> {x2:g},{y2:g}")
        if isinstance(action, Scroll):
            if action.x is not None and action.y is not None:
                x, y = (
                    await self._into_view(page, action.x, action.y)
                    if self.full_page
                    else (action.x, action.y)
                )
            else:
                state = await page.evaluate(_PAGE_STATE_JS)
                x, y = state["width"] / 2, state["height"] / 2
            await mouse.move(x, y)
            px = action.amount * WHEEL_PX_PER_NOTCH
            dx, dy = {"up": (0, -px), "down": (0, px), "left": (-px, 0), "right": (px, 0)}[
                action.direction
            ]
            await wheel_and_wait(page, dx, dy)
            return ActResult(detail=f"scroll {action.direction} {action.amount} at {x:g},{y:g}")
        if isinstance(action, Type):
            # real key events (no fill), a chunk's events sent without a round trip per key;
            # the kill switch is checked between chunks
            text = action.text
            for start in range(0, len(text), TYPE_CHUNK):
                self._check_killed()
                await self._typing.type(page, text[start : start + TYPE_CHUNK])
            return ActResult(detail=f"typed {len(action.text)} characters")
        if isinstance(action, Key):
            chord = "+".join(playwright_key(k) for k in action.keys)
            with self._keyboard_may_stick(True):
                await page.keyboard.press(chord)
            return ActResult(detail=f"pressed {chord}")
        raise InvalidToolCall(action.name, f"the browser cannot perform {action.name!r}")

    # -- page introspection -------------------------------------------------------------

    async def focused_element(self) -> dict[str, Any] | None:
        """The element with keyboard focus: {tag, type, id} (None when the page body has it)."""
        page = self._check_alive()
        with self._guard():
            focused: dict[str, Any] | None = await page.evaluate(_FOCUSED_JS)
        return focused

    async def focused_at(self, x: float, y: float) -> bool:
        """Whether the text field with keyboard focus covers viewport point (x, y)."""
        page = self._check_alive()
        with self._guard():
            return bool(await page.evaluate(_FOCUSED_AT_JS, [x, y]))

    async def hit_test(self, x: float, y: float, ref: int) -> dict[str, Any]:
        """What is drawn at viewport point (x, y) and whether it is element ``ref`` (from a
        DOM snapshot) or inside it: {found, hit, at, target} (``at``/``target`` described)."""
        page = self._check_alive()
        with self._guard():
            result: dict[str, Any] = await page.evaluate(_HIT_TEST_JS, [x, y, ref])
        return result

    async def choice_control(
        self, x: float, y: float, name: str | None = None, again: bool = False
    ) -> dict[str, Any] | None:
        """The choice control (a ``<select>``, an ARIA listbox or combobox) at or beside
        viewport point (x, y), or named ``name``: {kind, name, box, expanded, options
        [{label, selected}], selected, value, text}; ``again``: the one found last time."""
        page = self._check_alive()
        with self._guard():
            found: dict[str, Any] | None = await page.evaluate(CHOICE_JS, [x, y, name, again])
        return found

    async def scroll_into_view(self, ref: int) -> bool:
        """Scroll element ``ref`` (and its scrolling ancestors) so that it shows."""
        page = self._check_alive()
        with self._guard():
            done = bool(await page.evaluate(_SCROLL_INTO_VIEW_JS, ref))
            await _next_frames(page)
        return done

    async def focus_state(
        self, text: str | None = None, expect: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The focused element: {focused, editable, ref, doc, at (described), contains (its
        value holds ``text``), password}; the value itself is never returned. ``expect``: a
        ``{ref, doc}`` read before (the field meant to get the text): ``expected`` then
        says whether it is still in the page, what it is and whether it holds ``text``."""
        page = self._check_alive()
        with self._guard():
            state: dict[str, Any] = await page.evaluate(
                _FOCUS_STATE_JS, {"text": text, "expect": dict(expect) if expect else None}
            )
        return state

    async def dom_elements(
        self, in_viewport: bool = True, accessible_names: bool = True
    ) -> list[dict[str, Any]]:
        """Visible interactive and text elements with CSS-pixel boxes (viewport coordinates).

        Each: tag, type (inputs), role, id, text (200 characters; more_text holds the rest),
        name (the accessible name), label, aria_label, placeholder, title, alt (every name it
        answers to), owner_name (the name of the control it sits in), pseudo (::before/::after
        text), value (never for password fields), interactive, disabled, password, editable,
        ref (stable across snapshots, for :meth:`hit_test`), clipped, box {x, y, width,
        height} (the part not clipped by scrolling ancestors). Open shadow roots and
        same-origin iframes are included, their boxes in the top viewport.
        ``ax_name``/``ax_role`` (the accessibility tree's) only with ``accessible_names``.
        """
        page = self._check_alive()
        with self._guard():
            names = self.accessible_names and accessible_names
            options = {"inViewport": in_viewport, "mark": names, "known": self._ax.known(page)}
            snapshot = await page.evaluate(DOM_SNAPSHOT_JS, options)
            elements: list[dict[str, Any]] = snapshot["elements"]
            if elements and names:
                # names from the accessibility tree (read again only when the page changed)
                await self._ax.add(page, elements, snapshot)
                self.accessible_names = self._ax.available
        return elements

    async def accessibility_snapshot(self) -> str:
        """The page's ARIA snapshot (Playwright's YAML outline of roles and names)."""
        page = self._check_alive()
        with self._guard():
            return await page.locator("body").aria_snapshot(timeout=self.timeout_ms)
