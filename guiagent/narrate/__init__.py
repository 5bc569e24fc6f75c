"""Accessibility narration: what is on the screen, in reading order, and what changed.

- :class:`Narrator` (local: DOM + ARIA in a browser, OCR + X11 windows + AT-SPI on the
  desktop; model mode with :class:`ModelDescriber`);
- :class:`Watcher` / :func:`diff_narrations` / :class:`ChangeAnnouncer` (watch mode);
- :class:`Speaker` / :func:`synthesize_wav` (espeak-ng);
- :func:`render` (text, SSML, JSON).
"""

from guiagent.narrate.model import ModelDescriber, ModelNarrationError
from guiagent.narrate.narrator import NarrateError, Narrator, Scope
from guiagent.narrate.render import render, to_json, to_ssml, to_text
from guiagent.narrate.schema import Announcement, Item, Narration, Region
from guiagent.narrate.speech import Speaker, SpeechError, synthesize_wav
from guiagent.narrate.watch import ChangeAnnouncer, Watcher, diff_narrations

__all__ = [
    "Announcement",
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
    "diff_narrations",
    "render",
    "synthesize_wav",
    "to_json",
    "to_ssml",
    "to_text",
]
