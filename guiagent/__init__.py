"""guiagent: operate graphical interfaces like a person."""

__version__ = "0.1.0"
