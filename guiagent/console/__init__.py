"""The live web console: start, watch, pause, approve and question runs from a browser.

``guiagent console`` serves it; embed it with::

    manager = RunManager(Path("runs"), default_model_url="http://127.0.0.1:30000")
    server = ConsoleServer(manager, "127.0.0.1", 7860)
    await server.serve()            # or server.start() to serve from a background thread
"""

from guiagent.console.app import ConsoleServer, create_app, is_loopback
from guiagent.console.runs import ConsoleError, RunManager, RunSpec

__all__ = ["ConsoleError", "ConsoleServer", "RunManager", "RunSpec", "create_app", "is_loopback"]
