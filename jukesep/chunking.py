"""Chunked processing with receptive-field context and cross-fades.

Each chunk keeps `segment` output samples, computed from an input window extended by `context`
samples on each side (clipped at the signal's ends). With `context` ≥ the model's one-sided
receptive field, every kept sample equals the whole-signal result exactly; neighbouring kept
regions may also overlap by `overlap` samples and are cross-faded, which hides seams when the
context is cut short for speed. Memory depends on the segment, not on the song's length.
"""
from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Callable

import torch

from .errors import ShapeError


@dataclass(frozen=True)
class Chunk:
    start: int  # kept region [start, stop) in the (padded) signal
    stop: int
    window_start: int  # input window [window_start, window_stop)
    window_stop: int
    fade_in: int  # samples at the start of the kept region that cross-fade with the previous chunk
    fade_out: int


def plan_chunks(length: int, segment: int, context: int, overlap: int, align: int,
                same_size: bool = False) -> list[Chunk]:
    """Cut `length` samples into chunks. All positions are multiples of `align` (the model's hop)
    so every chunk sees the same down-sampling grid as the whole signal.

    same_size (no cross-fade only): the chunks at the signal's end are placed from the end, a full
    `segment` each, re-computing part of their neighbours' regions. The windows of a long signal
    then have two lengths, `segment` + `context` at the ends and `segment` + 2 `context` inside,
    whatever `length` is: a backend that builds kernels per input shape (oneDNN on CPU) builds the
    same few for every block of a long song, and its caches stop growing with the song's length.
    """
    if length <= 0 or align <= 0 or length % align != 0:
        raise ShapeError(f"cannot chunk {length} samples on a grid of {align}")
    segment = max(align, segment - segment % align)
    context = -(-context // align) * align
    overlap = min(overlap - overlap % align, segment // 2 - (segment // 2) % align)
    if same_size and not overlap:
        return [Chunk(start, min(start + segment, length), max(0, start - context),
                      min(length, start + segment + context), 0, 0)
                for start in _same_size_starts(length, segment, context)]
    step = segment - overlap
    chunks, start = [], 0
    while True:
        stop = min(start + segment, length)
        last = stop >= length
        chunks.append(Chunk(start, stop, max(0, start - context), min(length, stop + context),
                            fade_in=overlap if start > 0 else 0, fade_out=0 if last else overlap))
        if last:
            return chunks
        start += step


def _same_size_starts(length: int, segment: int, context: int) -> list[int]:
    """Starts of `segment`-long regions that cover [0, length): from the start while a region's
    window fits whole before the end, then from the end."""
    starts, start = [], 0
    while start + segment + context <= length and start + segment < length:
        starts.append(start)
        start += segment
    from_end, stop = [], length
    while stop > start:
        from_end.append(max(0, stop - segment))
        stop -= segment
    return starts + from_end[::-1]


def fade_weights(chunk: Chunk, dtype=torch.float32) -> torch.Tensor:
    """`Tensor[stop - start]` of cross-fade weights: linear ramps that sum to 1 with the neighbour's."""
    w = torch.ones(chunk.stop - chunk.start, dtype=dtype)
    if chunk.fade_in:
        w[:chunk.fade_in] = (torch.arange(chunk.fade_in, dtype=dtype) + 0.5) / chunk.fade_in
    if chunk.fade_out:
        w[-chunk.fade_out:] = (torch.arange(chunk.fade_out, 0, -1, dtype=dtype) - 0.5) / chunk.fade_out
    return w


def batches(chunks: list[Chunk], size: int) -> list[list[Chunk]]:
    """Consecutive chunks in groups of at most `size` whose windows have the same length (so they
    stack into one batch; the edge chunks, clipped at the signal's ends, go alone)."""
    groups: list[list[Chunk]] = []
    for chunk in chunks:
        last = groups[-1] if groups else None
        width = chunk.window_stop - chunk.window_start
        if last and len(last) < size and last[0].window_stop - last[0].window_start == width:
            last.append(chunk)
        else:
            groups.append([chunk])
    return groups


def overlap_add(signal: torch.Tensor, chunks: list[Chunk], process: Callable[[torch.Tensor], torch.Tensor],
                inp: int = 1, outp: int = 1, batch: int = 1, where: torch.device | None = None,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Run `process` on the chunks' windows, up to `batch` at a time, and put the kept part of each
    result in place, cross-fading where neighbours overlap.

    Chunk positions count units of `inp` input and `outp` output positions (e.g. latent frames of a
    model whose input is audio at `inp` samples per frame). signal: `Tensor[... x F*inp]`; process:
    windows `Tensor[N x ... x W*inp]` → `Tensor[N x ... x W*outp]` (any dtype; integer results
    only without overlap). Returns `Tensor[... x F*outp]` on `where` (the results' device when None).
    `progress(done, total)` counts kept units: called with 0 first, then after every batch.
    """
    total = chunks[-1].stop if chunks else 0
    if total * inp != signal.shape[-1]:
        raise ShapeError(f"chunks cover {total} x {inp} positions, the signal has {signal.shape[-1]}")
    if progress is not None:
        progress(0, total)
    out, weights = None, {}
    for group in batches(chunks, max(1, batch)):
        windows = torch.stack([signal[..., c.window_start * inp:c.window_stop * inp] for c in group])
        estimates = process(windows)
        width = windows.shape[-1] // inp * outp
        if estimates.shape[0] != len(group) or estimates.shape[-1] != width:
            raise ShapeError(f"process returned {tuple(estimates.shape)} for windows of {tuple(windows.shape)}")
        if out is None:
            out = torch.zeros(*estimates.shape[1:-1], total * outp, dtype=estimates.dtype,
                              device=where or estimates.device)
        for chunk, estimate in zip(group, estimates):
            kept = estimate[..., (chunk.start - chunk.window_start) * outp:(chunk.stop - chunk.window_start) * outp]
            region = out[..., chunk.start * outp:chunk.stop * outp]
            if not (chunk.fade_in or chunk.fade_out):  # no neighbour to blend with (see plan_chunks)
                region.copy_(kept)
                continue
            key = (chunk.stop - chunk.start, chunk.fade_in, chunk.fade_out)
            if key not in weights:  # a handful of distinct ramps per song: make each once, on out's device
                weights[key] = fade_weights(Chunk(*(v * outp for v in astuple(chunk)))).to(out.device)
            region += kept.to(out) * weights[key]
        if progress is not None:
            progress(group[-1].stop, total)
    return out
