"""Desktop settling, the three ways side by side on one 1920x1080 Xvfb (part of the loop area).

- ``full frames``: the way before: ``settle(env.observe)``, a full capture (PIL image,
  window title) and a PIL thumbnail every 50 ms;
- ``thumbnails, polled``: a grayscale thumbnail straight from an mss grab's BGRA bytes every
  50 ms (``DesktopEnv.wait_still`` on a server without DAMAGE);
- ``thumbnails on DAMAGE``: the same thumbnails, taken only when X DAMAGE says something
  was drawn (the default on X11).

Figures: the cost of one look; the latency from a change on screen (a black window mapped
by another X client) to the settle noticing it; the CPU time of one second of waiting on a
still screen.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from guiagent.core.change import bgra_thumbnail, settle, thumbnail

QUIET_MS = 300
CHANGE_AT_S = 0.1


class _Flasher:
    """Maps a black 300x300 window from its own X connection, at a moment it records."""

    def __init__(self, display: str) -> None:
        from Xlib import X
        from Xlib import display as xdisplay

        self.dpy = xdisplay.Display(display)
        screen = self.dpy.screen()
        self.window = screen.root.create_window(
            200, 200, 300, 300, 0, screen.root_depth,
            background_pixel=screen.black_pixel, override_redirect=True,
        )  # fmt: skip
        self._x = X

    def show_later(self, delay_s: float) -> list[float]:
        when: list[float] = []

        def run() -> None:
            time.sleep(delay_s)
            self.window.map()
            self.dpy.sync()
            when.append(time.monotonic())

        threading.Thread(target=run, daemon=True).start()
        return when

    def hide(self) -> None:
        self.window.unmap()
        self.dpy.sync()

    def close(self) -> None:
        self.window.destroy()
        self.dpy.close()


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


async def _latency(
    wait: Callable[[], Awaitable[Any]], flasher: _Flasher, repeats: int
) -> tuple[float, float]:
    """Median (latency to notice the change, total wait) in ms: the window appears
    CHANGE_AT_S into a wait of QUIET_MS, so the wait ends QUIET_MS after it was noticed."""
    latencies, totals = [], []
    for _ in range(repeats):
        flasher.hide()
        await asyncio.sleep(0.2)
        start = time.monotonic()
        shown = flasher.show_later(CHANGE_AT_S)
        await wait()
        end = time.monotonic()
        if shown:
            latencies.append((end - shown[0]) * 1000 - QUIET_MS)
            totals.append((end - start) * 1000)
    flasher.hide()
    return _median(latencies), _median(totals)


async def _cpu_still(wait: Callable[[], Awaitable[Any]]) -> float:
    """Process CPU ms (all threads) spent in one second of waiting on a still screen."""
    await asyncio.sleep(0.3)
    cpu = time.process_time()
    await wait()
    return round((time.process_time() - cpu) * 1000, 1)


async def rows(env: Any, display: str, quick: bool) -> list[dict[str, Any]]:
    """The settle rows, on a started DesktopEnv ``env`` showing ``display``."""
    from guiagent.envs.desktop_still import ScreenStill

    repeats = 5 if quick else 12
    frame = await env.observe()
    look_full = await _look_ms(lambda: _full_look(env), repeats * 2)
    mon = env._mss.monitors[int(env.monitor)]
    box = (mon["left"], mon["top"], mon["width"], mon["height"])
    look_thumb = await _look_ms(lambda: env._call(_thumb_look, env, box), repeats * 2)
    flasher = _Flasher(display)
    ways: dict[str, tuple[Callable[[int], Awaitable[Any]], str]] = {
        "full frames (before)": (
            lambda q: settle(env.observe, quiet_ms=q, timeout_s=5, poll_ms=50),
            "settle(env.observe): full capture + PIL thumbnail every 50 ms",
        ),
        "thumbnails, polled": (
            lambda q: env.wait_still(q, 5),
            "BGRA grab -> gray thumbnail every 50 ms (no DAMAGE)",
        ),
        "thumbnails on DAMAGE": (
            lambda q: env.wait_still(q, 5),
            "a look only when X DAMAGE reports drawing",
        ),
    }
    out: list[dict[str, Any]] = [
        {
            "name": "desktop settle: one look, mss thumbnail",
            "median_ms": round(look_thumb, 2),
            "baseline_ms": round(look_full, 2),
            "ratio": round(look_thumb / look_full, 2) if look_full else None,
            "note": f"baseline: one full observe() + PIL thumbnail ({frame.image.width}x{frame.image.height})",
        }
    ]
    found: dict[str, tuple[float, float, float]] = {}
    try:
        for name, (wait, _) in ways.items():
            if name == "thumbnails, polled":
                env._still = ScreenStill(env._grab_raw, None)
            latency, total = await _latency(lambda w=wait: w(QUIET_MS), flasher, repeats)
            cpu = await _cpu_still(lambda w=wait: w(1000))
            found[name] = (latency, total, cpu)
            if name == "thumbnails, polled":
                await env._call(env._still.close)
                env._still = None
    finally:
        await asyncio.to_thread(flasher.close)
    base_latency, _, base_cpu = found["full frames (before)"]
    for name, (latency, total, cpu) in found.items():
        note = ways[name][1]
        out.append(
            {
                "name": f"desktop settle, {name}: notice a change",
                "median_ms": latency,
                "baseline_ms": base_latency,
                "note": f"{note}; whole wait {total:.0f} ms (change at {CHANGE_AT_S * 1000:.0f}, still window {QUIET_MS})",
            }
        )
        out.append(
            {
                "name": f"desktop settle, {name}: CPU per still second",
                "median_ms": cpu,
                "baseline_ms": base_cpu,
                "ratio": round(cpu / base_cpu, 3) if base_cpu else None,
                "note": "process CPU ms over a 1000 ms still window on a still screen",
            }
        )
    return out


async def _look_ms(call: Callable[[], Awaitable[Any]], repeats: int) -> float:
    await call()
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples)


async def _full_look(env: Any) -> Any:
    frame = await env.observe()
    return thumbnail(frame.image)


def _thumb_look(env: Any, box: tuple[int, int, int, int]) -> Any:
    raw, width, height = env._grab_raw(box)
    return bgra_thumbnail(raw, width, height)
