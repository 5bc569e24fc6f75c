"""Real X servers for desktops and tests: Xvfb (one monitor) and Xorg + dummy driver (several).

Both are context managers (``with`` and ``async with``). The server picks its own free
display number through ``-displayfd`` (race-free when several test workers start servers
at once) and reports it only once it accepts connections. ``.env`` carries ``DISPLAY`` and
``XAUTHORITY``: a private Xauthority file with a fresh MIT-MAGIC-COOKIE-1 for the display
(pyautogui's Xlib refuses to start when the file is missing). By default the server does
not check it (unix socket only, ``-nolisten tcp``): in-process clients (mss, Xlib)
authenticate with the process-wide ``$XAUTHORITY``, and one process often talks to two of
our servers. ``secure=True`` makes the server require the cookie (``-auth``), for servers
used only through their ``.env``.

Xorg with ``xserver-xorg-video-dummy`` is the only way here to get several RandR monitors
at chosen positions (Xvfb's +xinerama stacks its heads at 0,0); it must run as root.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import secrets
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from loguru import logger

_X11_SOCKET_DIR = Path("/tmp/.X11-unix")


class DisplayError(RuntimeError):
    """An X server could not be started, configured or reached."""


def display_number(display: str) -> int:
    """``":3"``, ``":3.0"`` or ``"unix:3"`` -> 3; remote displays (``host:N``) are rejected."""
    match = re.fullmatch(r"(?:unix)?:(\d+)(?:\.\d+)?", display.strip())
    if not match:
        raise DisplayError(f"not a local X display: {display!r} (expected ':N')")
    return int(match.group(1))


def display_reachable(display: str, timeout: float = 1.0) -> bool:
    """True when the X server of a display answers (unix socket for ``:N``, xdpyinfo otherwise)."""
    try:
        number = display_number(display)
    except DisplayError:  # host:N (TCP, ssh forwarding): ask an X client
        if not display or shutil.which("xdpyinfo") is None:
            return False
        try:
            probe = subprocess.run(
                ["xdpyinfo", "-display", display], capture_output=True, timeout=max(timeout, 3.0)
            )
        except subprocess.TimeoutExpired:
            return False
        return probe.returncode == 0
    path = _X11_SOCKET_DIR / f"X{number}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        return False
    finally:
        sock.close()
    return True


class _XServer:
    """Shared lifecycle: start with -displayfd, wait, stop the whole process group."""

    name = "X"

    def __init__(self, start_timeout: float = 20.0, secure: bool = False) -> None:
        self.start_timeout = start_timeout
        self.secure = secure
        self.display = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self.xauthority = ""

    # -- to be provided by subclasses --
    def _command(self, tmp: Path) -> list[str]:
        raise DisplayError("subclass must build the server command")

    def _after_start(self) -> None:
        """Configure the fresh server (monitors...)."""

    # -- lifecycle --
    @property
    def env(self) -> dict[str, str]:
        return {"DISPLAY": self.display, "XAUTHORITY": self.xauthority}

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> _XServer:
        if self._proc is not None:
            raise DisplayError(f"{self.name} already started on {self.display}")
        self._tmp = Path(tempfile.mkdtemp(prefix="guiagent-x-"))
        auth = self._tmp / "Xauthority"
        auth.touch()
        self.xauthority = str(auth)
        cookie = secrets.token_hex(16)
        # the server loads every cookie in the file whatever its display number; clients
        # look theirs up by number, added once the server has picked one
        secured = self.secure and self._xauth_add(":0", cookie)
        if self.secure and not secured:
            self._cleanup_tmp()
            raise DisplayError(
                "secure=True needs the xauth program (Debian: apt-get install xauth)"
            )
        read_fd, write_fd = os.pipe()
        cmd = [*self._command(self._tmp), "-displayfd", str(write_fd)]
        if secured:
            cmd += ["-auth", self.xauthority]
        log_path = self._tmp / "server.log"
        logger.debug("starting {}: {}", self.name, " ".join(cmd))
        try:
            with open(log_path, "wb") as log:
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                    preexec_fn=parent_death_signal(),
                )
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            self._cleanup_tmp()
            raise DisplayError(f"cannot run {cmd[0]}: {exc}") from exc
        os.close(write_fd)
        try:
            number = self._read_display_number(read_fd, log_path)
        finally:
            os.close(read_fd)
        self.display = f":{number}"
        try:
            # unsecured servers ignore the cookie; having an entry keeps Xlib from warning
            if not self._xauth_add(self.display, cookie) and secured:
                raise DisplayError(
                    f"cannot write the X cookie for {self.display} to {self.xauthority}"
                )
            self._wait_socket()
            self._after_start()
        except BaseException:
            self.stop()
            raise
        logger.info("{} running on {} (pid {})", self.name, self.display, self._proc.pid)
        return self

    def _xauth_add(self, display: str, cookie: str) -> bool:
        if shutil.which("xauth") is None:
            logger.warning("xauth not installed: X server runs without access control")
            return False
        proc = subprocess.run(
            ["xauth", "-f", self.xauthority, "add", display, "MIT-MAGIC-COOKIE-1", cookie],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if proc.returncode != 0:
            logger.warning("xauth add failed: {}", proc.stderr.strip())
        return proc.returncode == 0

    def _read_display_number(self, fd: int, log_path: Path) -> int:
        deadline = time.monotonic() + self.start_timeout
        data = b""
        while time.monotonic() < deadline and b"\n" not in data:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 64)
                if not chunk:  # pipe closed without a number: the server died
                    break
                data += chunk
            elif self._proc is not None and self._proc.poll() is not None:
                break
        text = data.decode().strip()
        if text.isdigit():
            return int(text)
        assert self._proc is not None
        rc = self._proc.poll()
        log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        self.stop()
        state = (
            f"exited with code {rc}"
            if rc is not None
            else f"gave no display within {self.start_timeout:g}s"
        )
        raise DisplayError(f"{self.name} {state}; its output:\n{log}")

    def _wait_socket(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if display_reachable(self.display):
                return
            time.sleep(0.02)
        raise DisplayError(f"{self.name} on {self.display} does not accept connections")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            stop_process_group(proc)
            logger.debug("{} on {} stopped", self.name, self.display)
        self._cleanup_tmp()

    def _cleanup_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Any:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __del__(self) -> None:  # last resort against leaked servers
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


class XvfbDisplay(_XServer):
    """``Xvfb`` with one screen: ``with XvfbDisplay((1920, 1080)) as d: d.display``."""

    name = "Xvfb"

    def __init__(
        self,
        size: tuple[int, int] = (1920, 1080),
        depth: int = 24,
        start_timeout: float = 20.0,
        secure: bool = False,
    ) -> None:
        super().__init__(start_timeout, secure)
        if size[0] <= 0 or size[1] <= 0:
            raise DisplayError(f"display size must be positive, got {size[0]}x{size[1]}")
        if depth not in (8, 16, 24, 32):
            raise DisplayError(f"unsupported depth {depth} (use 8, 16, 24 or 32)")
        self.size = size
        self.depth = depth

    def _command(self, tmp: Path) -> list[str]:
        exe = shutil.which("Xvfb")
        if exe is None:
            raise DisplayError("Xvfb is not installed (Debian: apt-get install xvfb)")
        w, h = self.size
        return [exe, "-screen", "0", f"{w}x{h}x{self.depth}", "-nolisten", "tcp", "-noreset"]


_XORG_CONF = """\
Section "Device"
    Identifier "dummy"
    Driver "dummy"
    VideoRam {videoram}
EndSection
Section "Monitor"
    Identifier "monitor0"
    HorizSync 5.0-1000.0
    VertRefresh 5.0-200.0
EndSection
Section "Screen"
    Identifier "screen0"
    Device "dummy"
    Monitor "monitor0"
    DefaultDepth 24
    SubSection "Display"
        Depth 24
        Virtual {virtual_w} {virtual_h}
    EndSubSection
EndSection
Section "ServerLayout"
    Identifier "layout0"
    Screen "screen0"
EndSection
Section "ServerFlags"
    Option "AutoAddDevices" "false"
    Option "AutoEnableDevices" "false"
    Option "DontVTSwitch" "true"
EndSection
"""


class XorgDummyDisplay(_XServer):
    """Xorg with the dummy driver and one RandR output per monitor.

    ``monitors`` are ``(width, height, x, y)`` in desktop points; monitor ``i`` becomes
    output ``DUMMY{i}``. X cannot place a monitor at a negative position (the root window
    starts at 0,0), so positions must be >= 0. mss lists the primary monitor first, so use
    :meth:`mss_number` to find the mss number (1..N) of ``monitors[i]``.
    """

    name = "Xorg"

    def __init__(
        self,
        monitors: list[tuple[int, int, int, int]],
        primary: int = 0,
        start_timeout: float = 30.0,
        secure: bool = False,
    ) -> None:
        super().__init__(start_timeout, secure)
        if not monitors:
            raise DisplayError("XorgDummyDisplay needs at least one monitor")
        if len(monitors) > 16:
            raise DisplayError("the dummy driver has 16 outputs (DUMMY0..DUMMY15)")
        for w, h, x, y in monitors:
            if w <= 0 or h <= 0 or x < 0 or y < 0:
                raise DisplayError(
                    f"bad monitor {(w, h, x, y)}: size must be positive and position >= 0"
                )
        if not 0 <= primary < len(monitors):
            raise DisplayError(f"primary index {primary} out of range for {len(monitors)} monitors")
        self.monitors = list(monitors)
        self.primary = primary

    @property
    def desktop_size(self) -> tuple[int, int]:
        return (
            max(x + w for w, h, x, y in self.monitors),
            max(y + h for w, h, x, y in self.monitors),
        )

    def mss_number(self, index: int) -> int:
        """mss's number (1..N) of ``monitors[index]``, read from the running server."""
        import mss

        w, h, x, y = self.monitors[index]
        with mss.MSS(display=self.display) as grabber:
            for number, m in enumerate(grabber.monitors[1:], start=1):
                if (m["width"], m["height"], m["left"], m["top"]) == (w, h, x, y):
                    return number
        raise DisplayError(f"monitor {self.monitors[index]} not reported by mss on {self.display}")

    def _command(self, tmp: Path) -> list[str]:
        exe = shutil.which("Xorg")
        if exe is None:
            raise DisplayError(
                "Xorg is not installed (Debian: apt-get install xserver-xorg-core xserver-xorg-video-dummy)"
            )
        if hasattr(os, "geteuid") and os.geteuid() != 0:
            raise DisplayError("XorgDummyDisplay runs Xorg directly and needs root")
        fb_w, fb_h = self.desktop_size
        virtual_w, virtual_h = max(fb_w, 2048), max(fb_h, 1536)
        # 4 bytes per pixel, twice over for RandR's shadow, in kB, with headroom
        videoram = max(256000, virtual_w * virtual_h * 8 // 1024 + 16384)
        conf = tmp / "xorg.conf"
        conf.write_text(
            _XORG_CONF.format(videoram=videoram, virtual_w=virtual_w, virtual_h=virtual_h)
        )
        # -config accepts an absolute path when running as root
        return [
            exe,
            "-config",
            str(conf),
            "-noreset",
            "-nolisten",
            "tcp",
            "-logfile",
            str(tmp / "Xorg.log"),
        ]

    def _xrandr(self, *args: str) -> str:
        env = {**os.environ, **self.env}
        proc = subprocess.run(
            ["xrandr", *args], env=env, capture_output=True, text=True, timeout=20
        )
        if proc.returncode != 0:
            raise DisplayError(
                f"xrandr {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def _after_start(self) -> None:
        if shutil.which("xrandr") is None:
            raise DisplayError(
                "xrandr is not installed (Debian: apt-get install x11-xserver-utils)"
            )
        query = self._xrandr("--query")
        known_modes = set(re.findall(r"^\s+(\d+x\d+)\s", query, flags=re.MULTILINE))
        for i, (w, h, _x, _y) in enumerate(self.monitors):
            mode = f"{w}x{h}"
            if mode not in known_modes:
                self._xrandr("--newmode", mode, *_modeline(w, h))
                known_modes.add(mode)
            self._xrandr("--addmode", f"DUMMY{i}", mode)
        fb_w, fb_h = self.desktop_size
        args = ["--fb", f"{fb_w}x{fb_h}"]
        for i, (w, h, x, y) in enumerate(self.monitors):
            args += ["--output", f"DUMMY{i}", "--mode", f"{w}x{h}", "--pos", f"{x}x{y}"]
            if i == self.primary:
                args.append("--primary")
        self._xrandr(*args)
        self._verify_with_mss()

    def _verify_with_mss(self) -> None:
        import mss

        with mss.MSS(display=self.display) as grabber:
            seen = [(m["width"], m["height"], m["left"], m["top"]) for m in grabber.monitors[1:]]
        if sorted(seen) != sorted(self.monitors):
            raise DisplayError(
                f"Xorg on {self.display}: mss reports monitors {seen}, expected {self.monitors}"
            )


def _modeline(width: int, height: int, refresh: float = 60.0) -> list[str]:
    """Timings for ``xrandr --newmode`` (from ``cvt`` when present, else a simple blanking)."""
    cvt = shutil.which("cvt")
    if cvt is not None:
        out = subprocess.run(
            [cvt, str(width), str(height), str(refresh)], capture_output=True, text=True
        ).stdout
        match = re.search(r'Modeline\s+"[^"]+"\s+(.*)', out)
        if match:
            return match.group(1).split()
    h_total, v_total = int(width * 1.25), int(height * 1.05)
    clock = h_total * v_total * refresh / 1e6
    return [
        f"{clock:.2f}",
        str(width),
        str(width + 48),
        str(width + 80),
        str(h_total),
        str(height),
        str(height + 3),
        str(height + 9),
        str(v_total),
        "-hsync",
        "+vsync",
    ]


PR_SET_PDEATHSIG = 1


def stop_process_group(proc: subprocess.Popen[Any], timeout_s: float = 5) -> None:
    """End a child started with ``start_new_session=True`` and everything it started:
    SIGTERM to its process group, SIGKILL if it is still there after ``timeout_s``."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout_s)


def parent_death_signal() -> Any:
    """A ``preexec_fn`` that makes the child get SIGTERM when this process dies (even by
    SIGKILL), so no X server or scenario app outlives the run that started it; None
    without procfs.

    Linux sends the signal when the *thread* that forked the child ends. Servers are
    started from the main thread or from executor threads (the desktop env's own, asyncio's
    default one), which live until their pool shuts down, after the server is stopped.
    """
    if not os.path.exists("/proc/self"):
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


# An Xauthority entry for a host that does not exist: clients read the file, match nothing
# and connect without a cookie, as with no file. python-xlib raises on a missing file and
# prints a warning on stdout for an empty one.
_PLACEHOLDER_ENTRY = b"".join(
    struct.pack(">H", len(field)) + field
    for field in (b"guiagent-placeholder-host", b"", b"MIT-MAGIC-COOKIE-1", bytes(16))
)


def ensure_readable_xauthority(path: str) -> None:
    """Make ``path`` an Xauthority file X clients read quietly: created (mode 0600) with one
    placeholder entry when missing, given it when empty; a file with entries is left as is."""
    with contextlib.suppress(FileNotFoundError):
        if os.path.getsize(path) > 0:
            return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        if os.fstat(fd).st_size == 0:
            os.write(fd, struct.pack(">H", 256) + _PLACEHOLDER_ENTRY)  # 256: FamilyLocal
    finally:
        os.close(fd)


def client_xauthority(own_server: _XServer | None) -> str:
    """The Xauthority file this process's X clients use: the cookie file of guiagent's own
    server (made ``$XAUTHORITY`` when none is set: Xlib reads only that or ~/.Xauthority),
    else ``$XAUTHORITY``, else ~/.Xauthority made readable (see ensure_readable_xauthority)."""
    if own_server is not None:
        os.environ.setdefault("XAUTHORITY", own_server.xauthority)
        return own_server.xauthority
    path = os.environ.get("XAUTHORITY", "")
    if not path or not os.path.exists(path):
        path = os.path.join(os.path.expanduser("~"), ".Xauthority")
        ensure_readable_xauthority(path)
    return path


def x_client_env() -> dict[str, str | None]:
    """``$DISPLAY`` and ``$XAUTHORITY`` as they are (None: unset)."""
    return {key: os.environ.get(key) for key in ("DISPLAY", "XAUTHORITY")}


def restore_x_client_env(server: _XServer, before: dict[str, str | None]) -> None:
    """Put back ``$DISPLAY``/``$XAUTHORITY`` that still name ``server`` (about to stop) as
    they were in ``before``: later X clients must not be pointed at a dead server."""
    ours = {"DISPLAY": server.display, "XAUTHORITY": server.xauthority}
    for key, value in ours.items():
        if os.environ.get(key) == value:
            if before.get(key) is None:
                del os.environ[key]
            else:
                os.environ[key] = before[key]  # type: ignore[assignment]


def ensure_display(size: tuple[int, int] = (1920, 1080)) -> tuple[str, XvfbDisplay | None]:
    """The display to use: ``$DISPLAY`` when it answers, else a fresh Xvfb (returned to stop later)."""
    current = os.environ.get("DISPLAY", "")
    if current and display_reachable(current):
        return current, None
    if current:
        logger.info("DISPLAY={} does not answer; starting Xvfb", current)
    server = XvfbDisplay(size)
    server.start()
    return server.display, server
