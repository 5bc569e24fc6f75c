"""Speech with espeak-ng: a narration spoken into a WAV file is audible and of plausible
length; a newer announcement cuts off the one being spoken."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import numpy as np
import pytest

from guiagent.narrate.render import to_ssml, to_text
from guiagent.narrate.schema import Item, Narration, Region
from guiagent.narrate.speech import Speaker, SpeechError, synthesize_wav

NARRATION = Narration(
    regions=[
        Region(kind="title_bar", title="Report"),
        Region(
            kind="body",
            items=[
                Item(role="heading", label="Summary", level=1),
                Item(role="button", label="Save", state=["focused"]),
            ],
        ),
    ]
)


def _read(path: Path) -> tuple[np.ndarray, float]:
    with wave.open(str(path)) as wav:
        assert wav.getsampwidth() == 2 and wav.getnchannels() == 1
        frames = wav.readframes(wav.getnframes())
        duration = wav.getnframes() / wav.getframerate()
    return np.frombuffer(frames, dtype=np.int16).astype(np.float64), duration


def test_spoken_narration_wav_is_audible_and_plausibly_long(tmp_path: Path) -> None:
    text = to_text(NARRATION)
    words = len(text.split())
    path = asyncio.run(synthesize_wav(text, tmp_path / "narration.wav"))
    samples, duration = _read(path)
    rms = float(np.sqrt(np.mean(samples**2)))
    assert rms > 300, f"the WAV is (nearly) silent: RMS {rms:.0f}"
    assert 0.15 * words <= duration <= 1.0 * words, f"{duration:.2f} s for {words} words"
    # SSML goes through too, with its pauses
    ssml_path = asyncio.run(synthesize_wav(to_ssml(NARRATION), tmp_path / "n.wav", ssml=True))
    _, ssml_duration = _read(ssml_path)
    assert ssml_duration >= 0.15 * words


def test_newer_announcement_interrupts_the_current_one(tmp_path: Path) -> None:
    async def scenario() -> Speaker:
        speaker = Speaker(wav_dir=tmp_path)
        await speaker.say("This announcement is long. " * 400)
        assert speaker.speaking
        await speaker.say("Dialog: Confirm delete.")
        await speaker.wait()
        return speaker

    speaker = asyncio.run(scenario())
    assert speaker.interrupted == 1 and speaker.spoken == 2
    _, duration = _read(speaker.files[1])
    assert 0.5 <= duration <= 4.0


def test_empty_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match="empty"):
        asyncio.run(synthesize_wav("   ", tmp_path / "x.wav"))
