"""The desktop's accessibility tree (AT-SPI), read by a helper process on Debian's Python.

:class:`AtspiReader` starts :mod:`guiagent.envs.atspi_helper` on a Python that can
import ``gi`` with the Atspi typelib (``python3-gi``, ``gir1.2-atspi-2.0``): this one when
it can, else ``/usr/bin/python3``. They talk in JSON lines over a pipe.
:class:`AccessibilityBus` starts a D-Bus session bus for an X display; the AT-SPI bus
launcher is started on it on demand (D-Bus activation), and applications started with
its environment expose their tree there.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from loguru import logger
from pydantic import BaseModel, Field

from guiagent.envs.display import stop_process_group

HELPER = Path(__file__).with_name("atspi_helper.py")
SYSTEM_PYTHON = "/usr/bin/python3"


class AtspiError(RuntimeError):
    """AT-SPI cannot be read here (no bindings, no bus, the helper died)."""


class AtspiNode(BaseModel):
    """One accessible of a desktop application; box in screen points."""

    role: str
    name: str = ""
    description: str = ""
    states: list[str] = Field(default_factory=list)
    box: list[float] = Field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    text: str | None = None  # what a text field holds (never sent for password text)
    filled: bool | None = None  # password text only
    value: float | None = None
    rows: int | None = None
    columns: int | None = None
    children: list[AtspiNode] = Field(default_factory=list)


class AtspiApp(BaseModel):
    name: str
    pid: int = 0
    windows: list[AtspiNode] = Field(default_factory=list)


def _python_with_gi() -> str | None:
    for python in (sys.executable, SYSTEM_PYTHON):
        if not python or not Path(python).exists():
            continue
        probe = subprocess.run(
            [python, "-c", "import gi; gi.require_version('Atspi', '2.0')"],
            capture_output=True,
            timeout=20,
        )
        if probe.returncode == 0:
            return python
    return None


class AtspiReader:
    """Reads the AT-SPI tree through the helper process (started on first use).

    ``env``: the environment the helper runs in (``DISPLAY`` and the session bus's
    ``DBUS_SESSION_BUS_ADDRESS``); default: this process's.
    """

    def __init__(self, env: dict[str, str] | None = None, timeout_s: float = 20.0) -> None:
        self.env = env
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        python = _python_with_gi()
        if python is None:
            raise AtspiError(
                "no Python here can import gi with Atspi 2.0 "
                "(Debian: apt-get install python3-gi gir1.2-atspi-2.0 at-spi2-core)"
            )
        env = dict(os.environ if self.env is None else {**os.environ, **self.env})
        env.pop("NO_AT_BRIDGE", None)
        self._proc = subprocess.Popen(
            [python, str(HELPER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        return self._proc

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
        except BrokenPipeError as exc:
            raise AtspiError("the AT-SPI helper died") from exc
        ready, _, _ = select.select([proc.stdout], [], [], self.timeout_s)
        if not ready:
            self.close()
            raise AtspiError(f"the AT-SPI helper did not answer in {self.timeout_s:.0f} s")
        line = proc.stdout.readline()
        if not line:
            raise AtspiError("the AT-SPI helper died")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AtspiError(str(answer["error"]))
        return answer

    def applications(self, max_nodes: int = 4000) -> list[AtspiApp]:
        """The showing applications on the accessibility bus, with their windows' trees."""
        answer = self._ask({"cmd": "tree", "max_nodes": max_nodes})
        return [AtspiApp.model_validate(app) for app in answer.get("apps", [])]

    def focus(self, pid: int, x: float, y: float, max_nodes: int = 2000) -> dict[str, Any]:
        """For the application of process ``pid``: its focused object and the text field at
        screen point (x, y), each ``{role, name, states, box, count, text}`` or None (a
        password text has no ``text``); ``{"app": None}`` when it is not on the bus."""
        return self._ask({"cmd": "focus", "pid": pid, "x": x, "y": y, "max_nodes": max_nodes})

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __enter__(self) -> AtspiReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AccessibilityBus:
    """A D-Bus session bus for one X display, for accessibility (AT-SPI).

    ``with AccessibilityBus(display) as bus: start apps with bus.env``. The AT-SPI bus
    launcher is activated on it when the first application or reader asks for it; all of
    it runs in one process group, ended on exit.
    """

    def __init__(self, display: str, start_timeout_s: float = 10.0) -> None:
        self.display = display
        self.start_timeout_s = start_timeout_s
        self.address: str | None = None
        self._proc: subprocess.Popen[str] | None = None

    @property
    def env(self) -> dict[str, str]:
        if self.address is None:
            raise AtspiError("the accessibility bus is not running")
        return {"DISPLAY": self.display, "DBUS_SESSION_BUS_ADDRESS": self.address}

    def start(self) -> AccessibilityBus:
        daemon = shutil.which("dbus-daemon")
        if daemon is None:
            raise AtspiError("dbus-daemon is not installed (Debian: apt-get install dbus)")
        env = {**os.environ, "DISPLAY": self.display}
        self._proc = subprocess.Popen(
            [daemon, "--session", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: activated services die with it
        )
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.start_timeout_s)
        line = self._proc.stdout.readline().strip() if ready else ""
        if not line:
            self.stop()
            raise AtspiError("the D-Bus session bus did not start")
        self.address = line
        self._launch_atspi()
        logger.debug("accessibility bus for {} at {}", self.display, self.address)
        return self

    def _launch_atspi(self) -> None:
        """Ask for the AT-SPI bus now, so the first application finds it at once."""
        send = shutil.which("dbus-send")
        if send is None:
            return
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            done = subprocess.run(
                [send, "--session", "--print-reply", "--dest=org.a11y.Bus", "/org/a11y/bus",
                 "org.a11y.Bus.GetAddress"],
                env={**os.environ, **self.env},
                capture_output=True,
                timeout=self.start_timeout_s,
            )  # fmt: skip
            if done.returncode == 0:
                return
            time.sleep(0.1)
        logger.warning("the AT-SPI bus launcher did not answer on {}", self.address)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        self.address = None
        if proc is not None:
            stop_process_group(proc)

    def __enter__(self) -> AccessibilityBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
