"""What an upload may be: its size on the wire, its length and the size it decodes to.

The decoded-size rule: channels × rate × seconds may not exceed what a stereo 48 kHz song of the
duration limit holds (2 × 48000 × 60 × `max_minutes` samples, 4 bytes each once decoded). A file's
header decides it before anything is decoded, so a small file declaring 8 channels at 384 kHz is
refused at once. Headers can lie (a container claiming one second around an hour of silence), so
the worker re-probes the file and decodes it with `max_samples` (`audio.read_audio`), which stops
as soon as decoding passes the limit: a lying file never costs more memory than an honest one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..audio import AudioInfo, probe
from ..errors import AudioError

REFERENCE_CHANNELS, REFERENCE_RATE = 2, 48000
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


def check_file(separator, limits: Limits, path: Path, name: str) -> AudioInfo:
    """Everything the header of `path` can tell, without decoding; raises an AudioError
    (OverLimitError, with its HTTP status, for the server's limits)."""
    info = probe(path)
    if info.frames <= 0 or info.frames >= UNKNOWN_LENGTH:
        # checking the shape first would call this "no audio samples"; the length is what is missing
        raise OverLimitError(f"{name}: its header declares no length, so it cannot be checked before "
                             "decoding", 422)
    separator.check_header(info, name)
    limits.check(info, name)
    return info
