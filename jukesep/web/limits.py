"""What an upload may be: its size on the wire, its length and the size it decodes to.

The decoded-size rule: channels × rate × seconds may not exceed what a stereo 48 kHz song of the
duration limit holds (2 × 48000 × 60 × `max_minutes` samples, 4 bytes each once decoded). A file's
header decides it before anything is decoded, so a small file declaring 8 channels at 384 kHz is
refused at once. Headers can lie (a container claiming one second around an hour of silence), so
the worker re-probes the file and, before decoding it into memory, counts what it really decodes to
in a streaming pass (ffmpeg writing into a pipe read one block at a time, stopped at the limit): the
server never holds more than one block of a song whose content is longer than its header said.
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioInfo, probe
from ..errors import AudioError

REFERENCE_CHANNELS, REFERENCE_RATE = 2, 48000
BLOCK = 1 << 20
UNKNOWN_LENGTH = 1 << 62  # libsndfile's answer for a FLAC whose header leaves the length out


class OverLimitError(AudioError):
    """An upload over one of the server's limits; `status` is the HTTP status it is refused with."""

    def __init__(self, message: str, status: int = 413):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int  # the upload itself
    max_minutes: float

    @property
    def max_seconds(self) -> float:
        return self.max_minutes * 60.0

    @property
    def max_samples(self) -> int:
        """Decoded samples over all channels: a stereo 48 kHz song of `max_minutes`."""
        return int(REFERENCE_CHANNELS * REFERENCE_RATE * self.max_seconds)

    def frames_allowed(self, rate: int, channels: int) -> int:
        """The most frames a file of this rate and channel count may decode to."""
        return min(int(self.max_seconds * rate), self.max_samples // max(1, channels))

    def check(self, info: AudioInfo, name: str) -> None:
        """Raise OverLimitError naming the limit (duration or decoded size) the header is over."""
        seconds = info.frames / info.rate
        if seconds > self.max_seconds:
            raise OverLimitError(f"{name}: this song is {seconds / 60:.1f} minutes long; "
                                 f"the limit is {self.max_minutes:g} minutes", 422)
        if info.frames * info.channels > self.max_samples:
            raise OverLimitError(
                f"{name}: over the decoded-size limit: {info.channels} channels × {info.rate} Hz × "
                f"{seconds / 60:.1f} minutes would decode to {_gib(info.frames * info.channels)}; the limit is "
                f"{_gib(self.max_samples)} (a stereo 48 kHz song of {self.max_minutes:g} minutes)", 413)


def _gib(samples: int) -> str:
    return f"{samples * 4 / 2**30:.2f} GiB"


def check_header(separator, info: AudioInfo, name: str) -> None:
    """Run the separator's own checks on a stand-in of the header's shape (its channels and rate,
    at most `min_samples` long), so what a header can decide (channels, rate, too short) is ruled in
    one place without decoding. Content (silence, NaN) is checked when the worker decodes."""
    needed = separator.min_samples(info.rate) if info.rate > 0 else 1
    # a read-only view of one value: no memory, whatever channel count a broken header claims
    separator.check(np.broadcast_to(np.float32(1), (info.channels, min(info.frames, needed))), info.rate, name)


def check_file(separator, limits: Limits, path: Path, name: str) -> AudioInfo:
    """Everything the header of `path` can tell, without decoding; raises an AudioError
    (OverLimitError, with its HTTP status, for the server's limits)."""
    info = probe(path)
    if info.frames <= 0 or info.frames >= UNKNOWN_LENGTH:
        # checking the shape first would call this "no audio samples"; the length is what is missing
        raise OverLimitError(f"{name}: its header declares no length, so it cannot be checked before "
                             "decoding", 422)
    check_header(separator, info, name)
    limits.check(info, name)
    return info


def decoded_frames(path: Path, info: AudioInfo, stop_after: int) -> int | None:
    """Frames `path` decodes to as read_audio's ffmpeg path decodes it (the header's channels and
    rate), counted a block at a time and stopped once past `stop_after`; None without ffmpeg (then
    only libsndfile decodes, and it reads no more than the header's frame count)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    command = [exe, "-v", "quiet", "-nostdin", "-i", str(path), "-map", "0:a:0", "-f", "f32le",
               "-acodec", "pcm_f32le", "-ac", str(info.channels), "-ar", str(info.rate), "pipe:1"]
    frame_bytes = 4 * info.channels
    limit = (stop_after + 1) * frame_bytes
    total = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL) as proc:
        try:
            while total <= limit and (block := proc.stdout.read(BLOCK)):
                total += len(block)
        finally:
            proc.kill()  # at the limit: the rest is never decoded; after the end: a no-op
    return total // frame_bytes


def check_decoded(path: Path, info: AudioInfo, limits: Limits, name: str) -> None:
    """Raise OverLimitError when `path` decodes to more than the limits allow (its header lied)."""
    allowed = limits.frames_allowed(info.rate, info.channels)
    frames = decoded_frames(path, info, allowed)
    if frames is not None and frames > allowed:
        which = (f"{limits.max_minutes:g}-minute" if allowed == int(limits.max_seconds * info.rate)
                 else "decoded-size")
        raise OverLimitError(
            f"{name}: its header says {_duration(info.frames / info.rate)}, but it decodes to more than "
            f"{_duration(allowed / info.rate)} of {info.channels} channels at {info.rate} Hz: over the {which} limit, "
            "so it was not separated", 413)


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} minutes"
