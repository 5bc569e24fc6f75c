"""Speech: espeak-ng in a subprocess (pyttsx3 where it is installed), one utterance at a
time, the current one cut off when a newer announcement supersedes it."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any, Literal

from loguru import logger

Engine = Literal["auto", "espeak-ng", "pyttsx3"]


class SpeechError(RuntimeError):
    """No speech engine, or the engine failed."""


def espeak_binary() -> str | None:
    return shutil.which("espeak-ng") or shutil.which("espeak")


def _espeak_args(
    binary: str, voice: str | None, rate: int, ssml: bool, wav: Path | None
) -> list[str]:
    args = [binary, "--stdin", "-s", str(rate)]
    if voice:
        args += ["-v", voice]
    if ssml:
        args.append("-m")
    if wav is not None:
        args += ["-w", str(wav)]
    return args


async def synthesize_wav(
    text: str, path: Path, voice: str | None = None, rate: int = 175, ssml: bool = False
) -> Path:
    """Speak ``text`` into a WAV file with espeak-ng and wait until it is written."""
    binary = espeak_binary()
    if binary is None:
        raise SpeechError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    if not text.strip():
        raise SpeechError("nothing to say: the text is empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        *_espeak_args(binary, voice, rate, ssml, path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate(text.encode())
    if proc.returncode != 0 or not path.exists():
        raise SpeechError(
            f"espeak-ng failed (exit {proc.returncode}): {err.decode(errors='replace')[-500:]}"
        )
    return path


class Speaker:
    """Says things, newest first: :meth:`say` cuts off whatever is still being said.

    ``wav_dir``: write each utterance to ``utterance-NNNN.wav`` there instead of the sound
    device (for machines without audio, and for tests). ``engine="auto"`` picks espeak-ng,
    else pyttsx3 when importable.
    """

    def __init__(
        self,
        engine: Engine = "auto",
        voice: str | None = None,
        rate: int = 175,
        wav_dir: Path | None = None,
    ) -> None:
        self.voice = voice
        self.rate = rate
        self.wav_dir = wav_dir
        self.engine = self._pick(engine)
        self._proc: asyncio.subprocess.Process | None = None
        self._pyttsx: Any = None
        self._pyttsx_thread: threading.Thread | None = None
        self.spoken = 0
        self.interrupted = 0
        self.files: list[Path] = []

    def _pick(self, engine: Engine) -> Literal["espeak-ng", "pyttsx3"]:
        if engine in ("auto", "espeak-ng") and espeak_binary() is not None:
            return "espeak-ng"
        if engine in ("auto", "pyttsx3"):
            try:
                import pyttsx3  # type: ignore[import-not-found]  # noqa: F401
            except ImportError:
                pass
            else:
                if self.wav_dir is not None:
                    raise SpeechError("writing WAV files needs espeak-ng")
                return "pyttsx3"
        raise SpeechError(
            f"no speech engine for {engine!r}: install espeak-ng (apt-get install espeak-ng) "
            "or pyttsx3"
        )

    @property
    def speaking(self) -> bool:
        if self._proc is not None:
            return self._proc.returncode is None
        return self._pyttsx_thread is not None and self._pyttsx_thread.is_alive()

    async def say(self, text: str, ssml: bool = False) -> None:
        """Start saying ``text`` (returns once it has started), interrupting the last one."""
        if not text.strip():
            return
        await self.stop()
        self.spoken += 1
        if self.engine == "pyttsx3":
            self._say_pyttsx3(text)
            return
        binary = espeak_binary()
        assert binary is not None
        wav = None
        if self.wav_dir is not None:
            self.wav_dir.mkdir(parents=True, exist_ok=True)
            wav = self.wav_dir / f"utterance-{self.spoken:04d}.wav"
            self.files.append(wav)
        self._proc = await asyncio.create_subprocess_exec(
            *_espeak_args(binary, self.voice, self.rate, ssml, wav),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert self._proc.stdin is not None
        self._proc.stdin.write(text.encode())
        await self._proc.stdin.drain()
        self._proc.stdin.close()

    def _say_pyttsx3(self, text: str) -> None:
        import pyttsx3

        if self._pyttsx is None:
            self._pyttsx = pyttsx3.init()
            self._pyttsx.setProperty("rate", self.rate)
            if self.voice:
                self._pyttsx.setProperty("voice", self.voice)
        engine = self._pyttsx

        def run() -> None:
            engine.say(text)
            engine.runAndWait()

        self._pyttsx_thread = threading.Thread(target=run, name="guiagent-speech", daemon=True)
        self._pyttsx_thread.start()

    async def wait(self) -> None:
        """Wait until the current utterance is finished."""
        if self._proc is not None:
            await self._proc.wait()
        elif self._pyttsx_thread is not None:
            await asyncio.to_thread(self._pyttsx_thread.join)

    async def stop(self) -> None:
        """Cut off the current utterance, if any."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 2)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
            self.interrupted += 1
            logger.debug("speech interrupted by a newer announcement")
        elif self._pyttsx is not None and self.speaking:
            self._pyttsx.stop()
            await asyncio.to_thread(self._pyttsx_thread.join, 2)  # type: ignore[union-attr]
            self.interrupted += 1

    async def close(self) -> None:
        await self.stop()
