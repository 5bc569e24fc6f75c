"""Measure how fast a run gives up on a stalled model server and how fast a fail-safe stops typing.

    PYTHONPATH=. python scripts/measure_faults.py [--repeats 5]

Prints medians (seconds) of:
- a stalled server (headers, a few bytes, then silence) with --timeout 3: its last byte to the run's end;
- a trickling server (a byte every 0.5 s) with --timeout 3: its last byte to the run's end;
- an SSE keep-alive stream (every 0.2 s) with --timeout 3: its last byte to the run's end;
- the corner fail-safe during a 2000-character type: from starting `xdotool mousemove 0 0` (an
  upper bound: the pointer gets there a little later) to the type stopping (no input event is sent
  after the check that stops it).
A measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from PIL import Image

from guiagent.agent.config import AgentConfig
from guiagent.agent.loop import Agent
from guiagent.core.actions import Type
from guiagent.core.env import Frame
from guiagent.envs.desktop import DesktopEnv, FailSafeError
from guiagent.envs.display import XvfbDisplay
from guiagent.testing.misbehaving import Conn, MisbehavingServer, keepalive_stream, trickle


class StillImage:
    surface = "image"

    def __init__(self) -> None:
        self.frame = Frame.from_image(Image.new("RGB", (640, 400), (200, 210, 220)))

    async def observe(self) -> Frame:
        return self.frame

    async def act(self, action: object) -> None:
        raise RuntimeError("dry runs do not act")

    async def close(self) -> None:
        return None


def stall(conn: Conn) -> None:
    conn.head("application/json", 1000)
    conn.send(b'{"id": "x", ')
    conn.pause(3600)


def run_end_after_last_byte(behaviour: object, stream: bool = False) -> float:
    with MisbehavingServer(behaviour) as server, tempfile.TemporaryDirectory() as tmp:
        config = AgentConfig(
            model_url=server.url,
            record_dir=Path(tmp) / "run",
            max_steps=1,
            settle=False,
            dry_run=True,
            stream=stream,
            request_timeout_s=3,
        )

        async def go() -> None:
            agent = Agent(StillImage(), config)
            try:
                await agent.run("measure")
            finally:
                await agent.close()

        asyncio.run(go())
        ended = time.monotonic()
        assert server.last_byte_at is not None
        return ended - server.last_byte_at


def failsafe_to_stop(display: XvfbDisplay) -> float:
    env = DesktopEnv(display=display.display, failsafe=True, input_backend="xdotool")
    env.type_delay_ms = 2
    x_env = {**os.environ, **display.env}
    triggered: list[float] = []

    def corner() -> None:
        time.sleep(0.5)
        # the pointer reaches the corner while xdotool runs: its start is the earliest the
        # trigger can be, so stop - start is an upper bound of trigger -> last input event
        triggered.append(time.monotonic())
        subprocess.run(["xdotool", "mousemove", "0", "0"], env=x_env, check=True)

    async def go() -> float:
        await env.start()
        try:
            subprocess.run(["xdotool", "mousemove", "500", "500"], env=x_env, check=True)
            thread = threading.Thread(target=corner)
            thread.start()
            try:
                await env.act(Type(text="abcdefghij" * 200))
            except FailSafeError:
                stopped = time.monotonic()
            else:
                raise RuntimeError("the type finished before the fail-safe")
            thread.join()
            return stopped - triggered[0]
        finally:
            await env.close()

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cases = {
        "stalled server (timeout 3 s): last byte -> run end": lambda: run_end_after_last_byte(
            stall
        ),
        "trickle 1 B/0.5 s (timeout 3 s): last byte -> run end": lambda: run_end_after_last_byte(
            trickle(0.5)
        ),
        "SSE keep-alive/0.2 s (timeout 3 s): last byte -> run end": lambda: run_end_after_last_byte(
            keepalive_stream(0.2), stream=True
        ),
    }
    for name, measure in cases.items():
        values = [measure() for _ in range(args.repeats)]
        print(f"{name}: median {statistics.median(values):.3f} s  (all: {values})")
    with XvfbDisplay((1280, 800)) as display:
        values = [failsafe_to_stop(display) for _ in range(args.repeats)]
    print(
        f"fail-safe (xdotool mousemove started) -> type stopped: median {statistics.median(values) * 1000:.1f} ms "
        f"(all: {[round(v * 1000, 1) for v in values]})"
    )


if __name__ == "__main__":
    main()
