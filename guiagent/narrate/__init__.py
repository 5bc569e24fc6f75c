"""Accessibility narration: what is on the screen, in reading order, and what changed.

- :class:`Narrator` (local: the browser's accessibility tree over CDP, or its DOM; AT-SPI
  on the desktop through :class:`AtspiReader`, on an :class:`AccessibilityBus`; the pixels
  where there is no tree; model mode with :class:`ModelDescriber`);
- :class:`Watcher` / :func:`diff_narrations` / :class:`ChangeAnnouncer` (watch mode);
- :class:`Speaker` / :func:`synthesize_wav` (espeak-ng);
- :func:`render` (text, SSML, JSON) and :func:`compare_text` (pixels beside the tree).
"""

from guiagent.envs.atspi import AccessibilityBus, AtspiError, AtspiReader
from guiagent.narrate.model import ModelDescriber, ModelNarrationError
from guiagent.narrate.narrator import NarrateError, Narrator, Scope
from guiagent.narrate.render import compare_text, render, to_json, to_ssml, to_text
from guiagent.narrate.schema import Announcement, Item, Narration, Region
from guiagent.narrate.speech import Speaker, SpeechError, synthesize_wav
from guiagent.narrate.watch import ChangeAnnouncer, Watcher, diff_narrations

__all__ = [
    "AccessibilityBus",
    "Announcement",
    "AtspiError",
    "AtspiReader",
    "ChangeAnnouncer",
    "Item",
    "ModelDescriber",
    "ModelNarrationError",
    "NarrateError",
    "Narration",
    "Narrator",
    "Region",
    "Scope",
    "Speaker",
    "SpeechError",
    "Watcher",
    "compare_text",
    "diff_narrations",
    "render",
    "synthesize_wav",
    "to_json",
    "to_ssml",
    "to_text",
]
