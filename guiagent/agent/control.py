"""Pause, resume and stop a run between two actions (used by the console and the API)."""

from __future__ import annotations

import asyncio


class RunControl:
    def __init__(self) -> None:
        self._running = asyncio.Event()
        self._running.set()
        self.stop_requested = False
        self.stop_reason: str | None = None

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self, reason: str = "stopped by the user") -> None:
        self.stop_requested = True
        self.stop_reason = reason
        self._running.set()  # a paused run must wake up to stop

    async def wait_if_paused(self) -> None:
        await self._running.wait()
