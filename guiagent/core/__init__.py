"""The core layer: pure contracts and primitives. Imports nothing else of guiagent."""
