"""``python -m guiagent.testing --port P [--warmup S]``: run the fake model server in the foreground.

A stand-in for a real Step3-VL server when trying out clients and ``guiagent serve``'s health
wait; it answers every request with ``finish``.
"""

from __future__ import annotations

import argparse
import signal
import threading

from guiagent.testing.fake_server import FakeModelServer


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m guiagent.testing")
    parser.add_argument("--port", type=int, default=30000)
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds /health answers 503")
    args = parser.parse_args()
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with FakeModelServer(port=args.port, warmup_s=args.warmup):
        done.wait()


if __name__ == "__main__":
    main()
