"""Files made from a finished job's stems: other formats, "everything but vocals", a custom mix and
the compressed previews the page plays.

Everything is read and written block by block (memory stays flat in the song's length) and written
atomically (`jukesep.atomic` through `audio.write_files`), so a reader never sees half a file.
"""
from __future__ import annotations

import threading
import time
import zlib
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

from ..audio import blocks, check_output, gain_for_peak, probe, write_files, write_opus
from ..errors import JukesepError

FORMATS = ("wav", "flac", "mp3")
MEDIA_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "ogg": "audio/ogg"}
NO_VOCALS = "no_vocals"
VOCALS = "vocals"
MAX_GAIN = 2.0  # a custom mix may boost a track up to +6 dB
BLOCK = 1 << 18
PREVIEW_BITRATE = 64_000  # bit/s per channel (Opus at 48 kHz): transparent enough for listening, ~1/11 of 16-bit wav
_LOCKS = [threading.Lock() for _ in range(64)]  # one file is made by one thread; others wait for it


class Busy(JukesepError):
    """Too many files are being made on request right now (HTTP 503: try again in a moment)."""


class Gate:
    """Bounds the files made on request (flac, mp3, previews, no_vocals): at most `makers` are made
    at once, and at most `waiters` requests wait (each `wait_s` at most) for a file another request
    is making. Past either, `Busy` at once: a burst of requests for files not made yet never ties up
    the server's request threads."""

    def __init__(self, makers: int = 2, waiters: int = 4, wait_s: float = 20.0):
        self.wait_s = wait_s
        self._makers = threading.BoundedSemaphore(makers)
        self._waiters = threading.BoundedSemaphore(waiters)
        self._count = threading.Lock()
        self.making = self.waiting = 0  # how many now (for tests and logs)

    def _add(self, name: str, step: int) -> None:
        with self._count:
            setattr(self, name, getattr(self, name) + step)

    @contextmanager
    def make(self):
        if not self._makers.acquire(blocking=False):
            raise Busy("the server is busy making other files; try again in a moment")
        self._add("making", 1)
        try:
            yield
        finally:
            self._add("making", -1)
            self._makers.release()

    def wait_for(self, lock: threading.Lock) -> None:
        """Acquire `lock` (held by a request making the same file) or raise Busy."""
        if not self._waiters.acquire(blocking=False):
            raise Busy("the server is busy making this file for other requests; try again in a moment")
        self._add("waiting", 1)
        try:
            if not lock.acquire(timeout=self.wait_s):
                raise Busy("this file is still being made; try again in a moment")
        finally:
            self._add("waiting", -1)
            self._waiters.release()


def lock_for(path: Path) -> threading.Lock:
    """A lock per target file (from a fixed pool, so it never grows)."""
    return _LOCKS[zlib.crc32(str(path).encode()) % len(_LOCKS)]


def ensure(path: Path, make, gate: Gate | None = None) -> Path:
    """`path`, made by `make(path)` first when it does not exist yet (once, whatever the callers).
    With a `gate` (a request), Busy rather than waiting long or making too many at once; without
    one (the worker), it waits its turn."""
    if path.is_file():
        return path
    lock = lock_for(path)
    if not lock.acquire(blocking=False):
        if gate is None:
            lock.acquire()
        else:
            gate.wait_for(lock)
    try:
        if not path.is_file():
            with gate.make() if gate is not None else nullcontext():
                path.parent.mkdir(exist_ok=True)
                make(path)
    finally:
        lock.release()
    return path


def remove_older(folder: Path, seconds: float) -> None:
    """Delete the files in `folder` last changed more than `seconds` ago."""
    cutoff = time.time() - seconds
    for path in folder.iterdir():
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
        except OSError:  # gone meanwhile
            pass


def _weighted_blocks(sources: dict[Path, float]):
    """Blocks (`np.ndarray[n x C]`) of Σ gain × source over files of one rate, length and layout."""
    readers = [blocks(path, BLOCK)[1] for path in sources]
    gains = [np.float32(g) for g in sources.values()]
    for parts in zip(*readers):
        total = parts[0] * gains[0]
        for part, gain in zip(parts[1:], gains[1:]):
            total += part * gain
        yield total


def write_mix(sources: dict[Path, float], target: Path, fmt: str = "wav", bitrate: int = 320) -> None:
    """Σ gain × source into `target`: one pass for the peak (a sum can pass full scale; it is then
    scaled down whole rather than clipped), one to write."""
    first = probe(next(iter(sources)))
    check_output(fmt, 16, "rescale", first.channels, bitrate)
    peak = max((float(np.abs(b).max(initial=0.0)) for b in _weighted_blocks(sources)), default=0.0)
    gain = gain_for_peak(peak, "rescale")
    write_files({target: (first.channels, lambda: (b.T for b in _weighted_blocks(sources)))},
                first.rate, fmt, 16, "rescale", gain, bitrate)


def write_no_vocals(mixture: Path, vocals: Path, target: Path) -> None:
    """Everything but the vocals: mixture − vocals (so nothing the model missed is lost)."""
    write_mix({mixture: 1.0, vocals: -1.0}, target, "wav")


def write_export(source: Path, target: Path, fmt: str) -> None:
    """A lossless wav in another format (flac, or mp3 at 320 kbit/s)."""
    write_mix({source: 1.0}, target, fmt)


def check_format(fmt: str, channels: int) -> None:
    """AudioError when `fmt` cannot hold audio of `channels` (mp3: at most 2)."""
    check_output(fmt, 16, "rescale", channels)


# -- previews: Opus in Ogg, what the page plays ------------------------------------------------------

def write_preview(source: Path, target: Path) -> None:
    """An Opus/Ogg copy of a wav for listening (see `audio.write_opus`)."""
    write_opus(source, target, PREVIEW_BITRATE // 1000)


def parse_gains(text: str, tracks: list[str]) -> dict[str, float]:
    """`"vocals:0,drums:1.2"` → {"vocals": 0.0, "drums": 1.2}; ValueError (a one-line reason) for a
    track not in `tracks`, a repeat, or a gain outside 0..MAX_GAIN. Tracks left out get 0."""
    if len(text.split(",")) > len(tracks):
        raise ValueError(f"gains: at most {len(tracks)} tracks")
    gains: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition(":")
        name = name.strip()
        if not sep or name not in tracks:
            raise ValueError(f"gains: expected track:gain pairs with tracks from {', '.join(tracks)}")
        if name in gains:
            raise ValueError(f"gains: {name} is given twice")
        try:
            gain = float(value)
        except ValueError:
            gain = float("nan")
        if not 0.0 <= gain <= MAX_GAIN:
            raise ValueError(f"gains: {name} must be a number from 0 to {MAX_GAIN:g}")
        gains[name] = gain
    return gains
