"""Training excerpts from multitrack songs.

Every item is mono, as the model is: `Tensor[1 x L]` per source. Augmentations (training only):
the paper's random shift (random excerpt start) and random left/right mono blend, plus
Demucs-style remixing (each stem from a random song), random gain and channel swap. Excerpts whose
target stem is silent are redrawn. Items are a pure function of (seed, index), so runs are
reproducible and a resumed run sees the same data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..defaults import STEMS
from ..errors import ShapeError
from .tracks import DataError, Track

ALL = "all"  # target: every stem at once (the shared stage)
SILENT_RMS = 10 ** (-60 / 20)  # -60 dBFS: quieter target excerpts are not worth training on
MAX_DRAWS = 20


@dataclass(frozen=True)
class Augment:
    remix: bool = True  # draw each stem from an independent random song and offset
    gain: tuple[float, float] = (0.25, 1.25)  # per-stem gain range when remixing
    channel_swap: float = 0.5  # probability of swapping left and right per stem
    mono_blend: bool = True  # mono = a·L + (1−a)·R with a ~ U(0, 1); else (L + R) / 2
    stereo: bool = False  # keep both channels (for stereo peer models); mono_blend is then unused


def to_mono(audio: np.ndarray, weight: float | None = 0.5) -> np.ndarray:
    """`[2 x L]` → `[1 x L]`: weight·left + (1 − weight)·right; weight None keeps `[2 x L]`."""
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ShapeError(f"expected stereo audio [2 x L], got {audio.shape}")
    if weight is None:
        return np.ascontiguousarray(audio, dtype=np.float32)
    return (weight * audio[0] + (1.0 - weight) * audio[1])[None].astype(np.float32)


class ExcerptDataset(torch.utils.data.Dataset):
    """Random excerpts of `length` samples.

    target: the stem to learn, None for any source (foundation training: mixtures and stems), or
        ALL for every stem (`Tensor[S x 1 x L]`, S in STEMS order; redrawn when the mixture is silent).
    with_mixture: also return the (possibly remixed) mixture of the same excerpt (stage 2).
    Items: {"target": Tensor[1 x L]} and, with_mixture, {"mixture": Tensor[1 x L]}
    (`[2 x L]` with Augment(stereo=True)).
    """

    def __init__(self, tracks: list[Track], length: int, target: str | None, with_mixture: bool = False,
                 items_per_epoch: int = 1000, seed: int = 0, augment: Augment | None = Augment()):
        if target is not None and target not in STEMS + (ALL,):
            raise DataError(f"unknown stem {target!r} (choose from {', '.join(STEMS)})")
        usable = [t for t in tracks if t.length >= length]
        if not usable:
            raise DataError(f"no song is at least {length} samples long")
        self.tracks, self.length, self.target = usable, length, target
        self.with_mixture, self.items_per_epoch = with_mixture, items_per_epoch
        self.seed, self.augment = seed, augment

    def __len__(self) -> int:
        return self.items_per_epoch

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 0, index])  # the 0 keeps the draws of earlier versions
        for _ in range(MAX_DRAWS):
            item = self._draw(rng)
            if np.sqrt(np.mean(item["mixture" if self.target == ALL else "target"] ** 2)) > SILENT_RMS:
                return {k: torch.from_numpy(v) for k, v in item.items()}
        raise DataError(f"{MAX_DRAWS} excerpts in a row had a silent {self.target or 'source'}; "
                        "is this stem present in the data?")

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        if self.target == ALL:
            return self._draw_all(rng)
        source = self.target or rng.choice(("mixture",) + STEMS)
        aug = self.augment
        blend = rng.uniform() if aug and aug.mono_blend else 0.5
        blend = None if aug and aug.stereo else blend
        if not self.with_mixture:
            return {"target": to_mono(self._read(rng, source, rng.integers(len(self.tracks))), blend)}
        song = rng.integers(len(self.tracks))
        if aug is None or not aug.remix:
            offset = rng.integers(self.tracks[song].length - self.length + 1)
            return {"target": to_mono(self.tracks[song].read(source, offset, self.length), blend),
                    "mixture": to_mono(self.tracks[song].read("mixture", offset, self.length), blend)}
        stems = {stem: self._read(rng, stem, song if stem == source else rng.integers(len(self.tracks)))
                 for stem in STEMS}
        mixture = sum(stems.values())
        return {"target": to_mono(stems[source], blend), "mixture": to_mono(mixture, blend)}

    def _draw_all(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        aug = self.augment
        blend = rng.uniform() if aug and aug.mono_blend else 0.5
        blend = None if aug and aug.stereo else blend
        song = rng.integers(len(self.tracks))
        if aug is None or not aug.remix:
            offset = rng.integers(self.tracks[song].length - self.length + 1)
            stems = [self.tracks[song].read(stem, offset, self.length) for stem in STEMS]
        else:
            stems = [self._read(rng, stem, rng.integers(len(self.tracks))) for stem in STEMS]
        return {"target": np.stack([to_mono(s, blend) for s in stems]), "mixture": to_mono(sum(stems), blend)}

    def _read(self, rng: np.random.Generator, source: str, song: int) -> np.ndarray:
        track = self.tracks[song]
        audio = track.read(source, rng.integers(track.length - self.length + 1), self.length)
        aug = self.augment
        if aug is not None and aug.remix:
            audio = audio * np.float32(rng.uniform(*aug.gain))
            if rng.uniform() < aug.channel_swap:
                audio = audio[::-1]
        return audio


def validation_excerpts(tracks: list[Track], length: int, per_track: int, target: str | None,
                        with_mixture: bool = True) -> list[dict[str, torch.Tensor]]:
    """A fixed validation set: `per_track` evenly spaced excerpts per song, left+right averaged,
    no augmentation, silent targets left out. Identical every time it is built."""
    items = []
    for track in tracks:
        if track.length < length:
            continue
        for offset in np.linspace(0, track.length - length, per_track).astype(int):
            if target == ALL:
                mixture = to_mono(track.read("mixture", int(offset), length))
                if np.sqrt(np.mean(mixture ** 2)) > SILENT_RMS:
                    stems = np.stack([to_mono(track.read(s, int(offset), length)) for s in STEMS])
                    items.append({"target": torch.from_numpy(stems), "mixture": torch.from_numpy(mixture)})
                continue
            sources = [target or "mixture"] + (["mixture"] if with_mixture and target else [])
            audio = {s: to_mono(track.read(s, int(offset), length)) for s in sources}
            if np.sqrt(np.mean(audio[sources[0]] ** 2)) <= SILENT_RMS:
                continue
            item = {"target": torch.from_numpy(audio[sources[0]])}
            if with_mixture:
                item["mixture"] = torch.from_numpy(audio.get("mixture", audio[sources[0]]))
            items.append(item)
    return items
