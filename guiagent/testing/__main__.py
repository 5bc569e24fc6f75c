"""``python -m guiagent.testing [options]``: the stand-in model in the foreground.

The same as ``guiagent fake-model``: by default it answers every request with a ``finish``
tool call (``--answer``); ``--echo``, ``--script FILE`` and ``--plan FILE --cdp URL`` make it
echo, play a script or click from a live page's DOM. ``--warmup S`` keeps ``/health`` at 503
for S seconds (to try ``guiagent serve``'s health wait).
"""

from __future__ import annotations

import sys

from guiagent.cli import main as cli_main


def main() -> None:
    sys.exit(cli_main(["fake-model", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
