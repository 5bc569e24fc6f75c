"""The desktop's accessibility tree (AT-SPI): moved to :mod:`guiagent.envs.atspi` (the
desktop environment reads the focus through it too); the names stay importable here."""

from guiagent.envs.atspi import (
    HELPER,
    AccessibilityBus,
    AtspiApp,
    AtspiError,
    AtspiNode,
    AtspiReader,
)

__all__ = ["HELPER", "AccessibilityBus", "AtspiApp", "AtspiError", "AtspiNode", "AtspiReader"]
