"""Budgets and the kill switch (Ctrl-C in a subprocess, the X11 hotkey, pyautogui's failsafe)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from pydantic import ValidationError

from guiagent.agent.budget import Budget, BudgetTracker
from guiagent.core.killswitch import (
    HotkeyError,
    HotkeyListener,
    Killed,
    KillSwitch,
    failsafe_as_killed,
    parse_hotkey,
)
from guiagent.models.reply import Usage


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_step_budget() -> None:
    tracker = BudgetTracker(Budget(max_steps=3))
    tracker.start()
    for _ in range(2):
        tracker.add_step()
        assert tracker.exceeded() is None
    tracker.add_step()
    assert tracker.exceeded() == "step budget of 3 steps used up"
    assert BudgetTracker().budget.max_steps == 30


def test_wall_time_budget() -> None:
    clock = Clock()
    tracker = BudgetTracker(Budget(max_steps=None, max_seconds=120), clock=clock)
    tracker.start()
    for _ in range(17):
        tracker.add_step()
        clock.now += 5
    assert tracker.exceeded() is None and tracker.remaining_seconds() == 35
    clock.now += 35
    assert tracker.exceeded() == "wall-time budget of 120 s used up after 17 steps"
    assert tracker.remaining_seconds() == 0


def test_token_budget() -> None:
    tracker = BudgetTracker(Budget(max_tokens=50000))
    tracker.add_usage(Usage(prompt_tokens=40000, completion_tokens=9000, total_tokens=49000))
    assert tracker.exceeded() is None
    tracker.add_usage(Usage(total_tokens=1231))
    tracker.add_usage(None)
    assert tracker.exceeded() == "token budget of 50000 tokens used up (50231 used)"
    snap = tracker.snapshot()
    assert snap["tokens"] == 50231 and snap["max_tokens"] == 50000


def test_budget_rejects_nonsense() -> None:
    with pytest.raises(ValidationError):
        Budget(max_steps=0)
    with pytest.raises(ValidationError):
        Budget(max_seconds=-1)
    with pytest.raises(ValidationError):
        Budget(max_stpes=3)  # type: ignore[call-arg]


def test_kill_switch_trigger_and_check_keeps_first_reason() -> None:
    ks = KillSwitch()
    ks.check()  # not triggered: nothing happens
    assert not ks.triggered and ks.reason is None
    threading.Thread(target=ks.trigger, args=("hotkey pressed",)).start()
    assert ks.wait(5)
    ks.trigger("second reason")
    with pytest.raises(Killed) as info:
        ks.check()
    assert info.value.reason == "hotkey pressed" == ks.reason
    ks.reset()
    ks.check()
    assert not ks.triggered


def test_async_sleep_is_cut_short_by_the_switch() -> None:
    ks = KillSwitch()
    asyncio.run(ks.sleep(0.05))  # untouched: sleeps and returns
    threading.Timer(0.1, ks.trigger, args=("stop now",)).start()
    start = time.monotonic()
    with pytest.raises(Killed, match="stop now"):
        asyncio.run(ks.sleep(10))
    assert time.monotonic() - start < 2


SIGINT_CHILD = textwrap.dedent(
    """
    import sys, time
    from loguru import logger
    logger.remove()
    from guiagent.core.killswitch import KillSwitch, Killed
    ks = KillSwitch()
    with ks.install_sigint():
        try:
            print("ready", flush=True)
            while not ks.wait(0.02):
                pass
            try:
                ks.check()
            except Killed as k:
                print("graceful:", k.reason, flush=True)
            while True:
                time.sleep(0.02)
        except KeyboardInterrupt:
            print("hard stop", flush=True)
            sys.exit(3)
    """
)


def test_sigint_first_graceful_then_keyboard_interrupt() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGINT_CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline().strip()
        assert line.startswith("graceful: interrupted by Ctrl-C"), line
        proc.send_signal(signal.SIGINT)
        assert proc.stdout.readline().strip() == "hard stop"
        assert proc.wait(10) == 3
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_install_sigint_restores_the_previous_handler() -> None:
    before = signal.getsignal(signal.SIGINT)
    with KillSwitch().install_sigint():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


def test_parse_hotkey() -> None:
    assert parse_hotkey("ctrl+alt+k") == (["ControlMask", "Mod1Mask"], "k")
    assert parse_hotkey("Ctrl+Shift+Escape") == (["ControlMask", "ShiftMask"], "Escape")
    with pytest.raises(HotkeyError, match="unknown modifier 'hyper'"):
        parse_hotkey("hyper+k")


def xdotool(display: Any, *args: str) -> None:
    subprocess.run(["xdotool", *args], env={**os.environ, **display.env}, check=True, timeout=10)


def test_x11_hotkey_triggers_the_kill_switch(x_display: Any) -> None:
    ks = KillSwitch()
    with HotkeyListener(ks, "ctrl+alt+k", display=x_display.display):
        xdotool(x_display, "key", "ctrl+k")  # not the chord
        xdotool(x_display, "key", "alt+k")
        assert not ks.wait(0.3)
        xdotool(x_display, "key", "ctrl+alt+k")
        assert ks.wait(5)
    assert ks.reason == "kill switch hotkey ctrl+alt+k pressed"
    # released on exit: another listener can grab the same chord
    other = KillSwitch()
    with HotkeyListener(other, "ctrl+alt+k", display=x_display.display):
        xdotool(x_display, "key", "ctrl+alt+k")
        assert other.wait(5)


def test_hotkey_errors_are_named(x_display: Any) -> None:
    with pytest.raises(HotkeyError, match="no X display"):
        HotkeyListener(KillSwitch(), display="").start()
    with pytest.raises(HotkeyError, match="cannot open X display"):
        HotkeyListener(KillSwitch(), display=":987").start()
    first = HotkeyListener(KillSwitch(), "ctrl+alt+j", display=x_display.display).start()
    try:
        with pytest.raises(HotkeyError, match="already grabbed"):
            HotkeyListener(KillSwitch(), "ctrl+alt+j", display=x_display.display).start()
    finally:
        first.stop()


def test_pyautogui_failsafe_becomes_killed(x_display: Any) -> None:
    import pyautogui

    saved = (pyautogui.FAILSAFE, pyautogui.PAUSE)
    pyautogui.FAILSAFE, pyautogui.PAUSE = True, 0
    ks = KillSwitch()
    try:
        pyautogui.moveTo(0, 0)  # the person slams the pointer into a corner
        with pytest.raises(Killed, match="failsafe"), failsafe_as_killed(ks):
            pyautogui.moveTo(200, 200)
        assert ks.triggered and "corner" in (ks.reason or "")
        with pytest.raises(ValueError, match="other"), failsafe_as_killed(ks):
            raise ValueError("other errors pass through")
    finally:
        pyautogui.FAILSAFE = False
        pyautogui.moveTo(500, 500)  # leave the corner before the failsafe comes back
        pyautogui.FAILSAFE, pyautogui.PAUSE = saved
