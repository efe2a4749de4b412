"""Separating a file straight into files, block by block, so memory does not grow with the song.

The song is read in blocks of `BLOCK_SECONDS`, each with the model's receptive field of extra audio
on both sides (plus a margin for the resampler's filter), separated by the in-memory engine, and
the middle of each block is appended to a float32 scratch file per output. Output is therefore
identical to whole-song separation for files at the model's rate, and equal within the resampler's
precision for others. The clip policy needs the song's peak, so a last pass converts the scratch
files into the requested format, all outputs renamed into place together (`atomic_paths`).
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import refine
from .audio import (
    blocks,
    check_complete,
    check_output,
    check_peak,
    check_size,
    float_writer,
    gain_for_peak,
    peak_of,
    probe,
    read_audio,
    write_files,
)

BLOCK_SECONDS = 60.0  # audio per block: memory ~ a few copies of this, whatever the song's length
BLOCK_SAMPLES = 2 * 48000 * 60  # and at most this many samples (all channels) per block
RESAMPLER_MARGIN = 4096  # extra samples per side when the rate changes (soxr HQ's filter is far shorter)
CONVERT_BLOCK = 1 << 18  # frames per block in the final conversion pass


class Written(NamedTuple):
    """What `separate_to_files` wrote."""
    rate: int
    frames: int
    gain: float  # the clip policy's gain (1.0 when nothing was too loud)
    peaks: dict  # name → peak |sample| before the gain


def separate_to_files(separator, path, targets: dict[str, Path], fmt: str = "wav", bits: int = 16,
                      clip: str = "rescale", bitrate: int = 320, stems: list[str] | None = None,
                      two_stems: str | None = None, progress=None, max_samples: int | None = None,
                      block_seconds: float = BLOCK_SECONDS) -> Written:
    """Separate `path` into `targets` ({output name: file}; names as `Separator.separate_file`
    returns them, plus "mixture" for a copy of the input). `progress(done, total)` counts seconds
    of audio (to a tenth)."""
    path = Path(path)
    stems = separator.resolve_stems(stems, two_stems)
    info = probe(path)
    if info.frames > 0:  # a header without a length is judged when decoding ends
        separator.check_header(info, str(path))
    check_output(fmt, bits, clip, info.channels, bitrate)
    # Blocks are bounded in samples too, so a file of many channels at a high rate stays small.
    block = _aligned(min(block_seconds * info.rate, BLOCK_SAMPLES / info.channels), separator, info.rate)
    context = _context(separator, info.rate)
    with tempfile.TemporaryDirectory(prefix=".jukesep-", dir=_existing(next(iter(targets.values())).parent)) as scratch:
        writers = {name: float_writer(f"{scratch}/{name}.wav", info.rate, info.channels) for name in targets}
        try:
            frames, peaks = _separate_blocks(separator, path, info, writers, stems, two_stems, block, context,
                                             progress, max_samples)
        finally:
            for writer in writers.values():
                writer.close()
        check_complete(path, frames, info)  # a file cut short decodes to less than its header says
        separator.check_length(frames, info.rate, str(path))
        check_peak(peaks.pop("_input"), str(path))
        gain = gain_for_peak(max(peaks.values()), clip)
        _convert(scratch, targets, info.rate, info.channels, fmt, bits, clip, bitrate, gain)
    return Written(info.rate, frames, gain, peaks)


def _aligned(samples: float, separator, rate: int) -> int:
    """`samples` rounded up to a whole number of "grid units": a block starting on one lands on a
    latent-frame boundary of the model's grid once resampled to the model's rate (e.g. 8 samples at
    44.1 kHz, 1280 at 48 kHz), so blocks see the grid the whole song would."""
    hop, model_rate = separator.model.hop_length(), separator.sample_rate
    if separator.refine == "learned":  # its STFT frames are at the model's rate
        hop = math.lcm(hop, refine.HOP)
    common = math.gcd(rate, model_rate)
    unit = rate // common * hop // math.gcd(hop, model_rate // common)
    if separator.refine not in ("none", "learned"):  # and on the refinement's STFT frames, at `rate`
        unit = math.lcm(unit, refine.HOP)
    return max(unit, math.ceil(samples / unit) * unit)


def _context(separator, rate: int) -> int:
    """Extra samples (at `rate`) read on each side of a block: what the model sees of its edges."""
    seconds = separator.context_samples() / separator.sample_rate
    margin = RESAMPLER_MARGIN if rate != separator.sample_rate else 0
    if separator.refine != "none":  # the STFT frames that reach into the block
        margin += math.ceil(refine.N_FFT * max(1.0, rate / separator.sample_rate))
    return _aligned(seconds * rate + margin, separator, rate)


def _separate_blocks(separator, path: Path, info, writers: dict, stems, two_stems, block: int, context: int,
                     progress, max_samples) -> tuple[int, dict]:
    """Separate block after block into the scratch writers; returns (frames, peaks incl. "_input")."""
    peaks = {name: 0.0 for name in list(writers) + ["_input"]}
    start, total = 0, max(info.frames, 1)
    while True:
        first = max(0, start - context)
        wanted = start + block + context - first
        window, _ = read_audio(path, check=False, start=first, frames=wanted)
        end = first + window.shape[1]  # a window shorter than asked for ends at the song's end
        if max_samples is not None:  # headers can lie: count what really decodes
            check_size(path, info, max_samples, end)
        if end <= start:
            return start, peaks
        peak = peak_of(window)
        check_peak(peak, str(path), silent_too=False)  # silence is judged on the whole song, at the end
        peaks["_input"] = max(peaks["_input"], peak)
        total = max(total, end)

        def within(done: int, count: int, start=start, end=end) -> None:  # chunks of this block → seconds
            if progress is not None:
                kept = min(start + block, end) - start
                progress(round((start + kept * done / max(count, 1)) / info.rate, 1), round(total / info.rate, 1))

        final = window.shape[1] < wanted  # the song's last block (same_size: see Separator._plan)
        outputs = separator._separate(window, info.rate, stems, two_stems, within, same_size=not final)
        outputs["mixture"] = window
        keep = slice(start - first, min(start + block, end) - first)
        for name, writer in writers.items():
            kept = outputs[name][:, keep]
            peaks[name] = max(peaks[name], peak_of(kept))
            writer.write(np.ascontiguousarray(kept.T))
        start = min(start + block, end)
        last = final and start >= end
        del window, outputs, kept  # before the next block is read: one block in memory, not two
        if last:
            return start, peaks


def _existing(folder: Path) -> Path:
    """`folder`, or its nearest existing parent (the scratch files' home: same disk, nothing made)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder


def _convert(scratch: str, targets: dict[str, Path], rate: int, channels: int, fmt: str, bits: int, clip: str,
             bitrate: int, gain: float) -> None:
    """The scratch float files → the requested files, all renamed into place together. Folders are
    made only now, and those made are removed again if the writing fails."""
    made = sorted({f for t in targets.values() for f in [t.parent, *t.parent.parents] if not f.exists()},
                  key=lambda f: len(f.parts))
    try:
        for folder in made:
            folder.mkdir()
        sources = {target: (channels, lambda name=name: (b.T for b in blocks(f"{scratch}/{name}.wav",
                                                                           CONVERT_BLOCK)[1]))
                   for name, target in targets.items()}
        write_files(sources, rate, fmt, bits, clip, gain, bitrate)
    except BaseException:
        for folder in reversed(made):
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
