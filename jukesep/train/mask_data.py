"""The mask stage's data: training songs with a frozen separator's stems for them.

The separator's stems are computed once per song, by the one separation path (`Separator`, no
refinement), and kept in RUN/stems/SONG.npy (float16 `[S x 2 x T]`: songs are read as stereo,
`Track.read`); a resumed run reuses them. RUN/stems.json records whose stems they are (the
separator file's SHA-256) and the wall time spent on them (`--minutes` counts training steps only).
Running the separator on every training excerpt instead would cost ~2 s a step on a 2-core CPU.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path, atomic_write_text
from ..data.datasets import SILENT_RMS, to_mono
from ..data.tracks import DataError, Track
from ..progress import Progress
from ..refine import N_FFT

GAIN = (0.5, 1.5)  # one random gain for the mixture, its stems and the estimates (all linear in it)
MAX_DRAWS = 20
EQ_HZ = (40.0, 80.0, 160.0, 320.0, 640.0, 1280.0, 2560.0, 5120.0, 10240.0, 16000.0)  # the EQ's anchor points


def random_eq(rng: np.random.Generator, stems: int, most_db: float, hz: np.ndarray) -> np.ndarray:
    """Each stem's random EQ: gains uniform in ±`most_db` dB at `EQ_HZ`, linear in dB over log
    frequency between them and flat outside → linear gains at the frequencies `hz`, `[S x len(hz)]`."""
    db = rng.uniform(-most_db, most_db, size=(stems, len(EQ_HZ)))
    where = np.log(np.maximum(hz, EQ_HZ[0]))
    return np.stack([10 ** (np.interp(where, np.log(EQ_HZ), d) / 20) for d in db]).astype(np.float32)


class EstimateExcerpts(torch.utils.data.Dataset):
    """Random excerpts of `length` samples of a song's mixture, clean stems and the separator's
    stems, mono (a random left/right blend), all at one random gain. Items are a pure function of
    (seed, index): {"mixture": `Tensor[1 x L]`, "target": `Tensor[S x 1 x L]`, "estimate":
    `Tensor[S x 1 x L]`}, S in the separator's stem order. With `eq_db` > 0 also "eq": `Tensor[S x F]`,
    a random EQ per stem (`random_eq`) as gains on the bins of refine.py's STFT, which the mask stage
    applies to the stem, to the separator's stem for it and to the mixture (a timbre the training
    songs lack)."""

    def __init__(self, tracks: list[Track], length: int, folder: Path, stems: list[str], seed: int = 0,
                 items_per_epoch: int = 1000, eq_db: float = 0.0):
        self.tracks = [t for t in tracks if t.length >= length]
        if not self.tracks:
            raise DataError(f"no song is at least {length} samples long")
        self.length, self.folder, self.stems = length, Path(folder), list(stems)
        self.seed, self.items_per_epoch, self.eq_db = seed, items_per_epoch, eq_db

    def __len__(self) -> int:
        return self.items_per_epoch

    def cache_file(self, track: Track) -> Path:
        return self.folder / f"{track.name}.npy"

    @property
    def record(self) -> Path:
        return self.folder.with_suffix(".json")

    def fill(self, separator, source: Path, rank: int = 0, world: int = 1) -> float:
        """Separate the songs not yet cached (`separator`: an `api.Separator` of the model in the file
        `source`); under torchrun each rank takes every `world`-th song from its `rank`. Rank 0 keeps
        `record` up to date after every song (the separator's file hash, the minutes spent in all).
        Returns the minutes taken this time. DataError if the folder holds another separator's stems."""
        identity = hashlib.sha256(Path(source).read_bytes()).hexdigest()
        record = json.loads(self.record.read_text()) if self.record.exists() else {"minutes": 0.0}
        if record.get("separator", identity) != identity:
            raise DataError(f"{self.folder} holds the stems of another separator than {source}; "
                            "remove it or choose another --out")
        record.update(separator=identity, songs=len(self.tracks))
        start = last = time.monotonic()
        todo = [t for t in self.tracks[rank::world] if not self.cache_file(t).exists()]
        self.folder.mkdir(parents=True, exist_ok=True)
        bar = Progress(round(sum(t.length / t.rate for t in todo)), "separator's stems", unit="s", enabled=rank == 0)
        done = 0.0
        for track in [None, *todo]:  # None: write the record before the first song
            if track is not None:
                stems = separator.separate(track.read("mixture"), track.rate, stems=self.stems)
                with atomic_path(self.cache_file(track)) as part:
                    with open(part, "wb") as file:
                        np.save(file, np.stack([stems[s] for s in self.stems]).astype(np.float16))
                done += track.length / track.rate
                bar.set(round(done))
            if rank == 0:
                now = time.monotonic()
                record["minutes"] = round(record["minutes"] + (now - last) / 60, 3)
                atomic_write_text(self.record, json.dumps(record))
                last = now
        bar.close()
        return (time.monotonic() - start) / 60

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, 1, index])
        for _ in range(MAX_DRAWS):
            track = self.tracks[rng.integers(len(self.tracks))]
            offset = int(rng.integers(track.length - self.length + 1))
            blend, gain = rng.uniform(), np.float32(rng.uniform(*GAIN))
            mixture = to_mono(track.read("mixture", offset, self.length), blend) * gain
            if np.sqrt(np.mean(mixture ** 2)) <= SILENT_RMS:
                continue
            estimate = np.load(self.cache_file(track), mmap_mode="r")[:, :, offset:offset + self.length]
            target = np.stack([to_mono(track.read(s, offset, self.length), blend) for s in self.stems])
            estimate = np.stack([to_mono(e.astype(np.float32), blend) for e in estimate])
            item = {"mixture": torch.from_numpy(mixture), "target": torch.from_numpy(target * gain),
                    "estimate": torch.from_numpy(estimate * gain)}
            if self.eq_db > 0:  # drawn last: the excerpts stay those of a run without it
                hz = np.fft.rfftfreq(N_FFT, 1 / track.rate)
                item["eq"] = torch.from_numpy(random_eq(rng, len(self.stems), self.eq_db, hz))
            return item
        raise DataError(f"{MAX_DRAWS} excerpts in a row had a silent mixture; is the data silent?")
