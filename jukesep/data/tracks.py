"""Multitrack songs on disk: MUSDB18-HQ folders (`<split>/<song>/<stem>.wav`, also any corpus in that
layout, e.g. the rendered one) and MUSDB18 `.stem.mp4` files (`<split>/<song>.stem.mp4`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import fit_length, probe, read_audio
from ..defaults import STEMS
from ..errors import AudioError, JukesepError

SOURCES = ("mixture",) + STEMS
# Stream order inside a MUSDB18 .stem.mp4 (NI Stems): mixture, drums, bass, other, vocals.
STEM_MP4_STREAMS = {"mixture": 0, "drums": 1, "bass": 2, "other": 3, "vocals": 4}


# MUSDB18's official validation songs (from the musdb package). MUSDB18 ships only train/ and test/;
# when DATA/valid/ is absent, these are taken out of train/ to form the validation split.
MUSDB18_VALIDATION = frozenset({
    "Actions - One Minute Smile", "Clara Berry And Wooldog - Waltz For My Victims", "Johnny Lokke - Promises & Lies",
    "Patrick Talbot - A Reason To Leave", "Triviul - Angelsaint", "Alexander Ross - Goodbye Bolero",
    "Fergessen - Nos Palpitants", "Leaf - Summerghost", "Skelpolu - Human Mistakes", "Young Griffo - Pennies",
    "ANiMAL - Rockshow", "James May - On The Line", "Meaxic - Take A Step", "Traffic Experiment - Sirens",
})


class DataError(JukesepError):
    """A data set that is missing files or whose files disagree."""


@dataclass(frozen=True)
class Track:
    name: str
    split: str
    path: Path  # the song folder (wav layout) or the .stem.mp4 file
    length: int  # samples
    rate: int

    @property
    def is_stem_mp4(self) -> bool:
        return self.path.suffix == ".mp4"

    @property
    def mixture_file(self) -> Path:
        """The file whose (first) audio stream is the mixture."""
        return self.path if self.is_stem_mp4 else self.path / "mixture.wav"

    def read(self, source: str, start: int = 0, frames: int | None = None) -> np.ndarray:
        """Audio of `source` ('mixture' or a stem) from `start`: `np.ndarray[2 x frames]` float32."""
        frames = self.length - start if frames is None else frames
        if self.is_stem_mp4:
            path, stream = self.path, STEM_MP4_STREAMS[source]
        else:
            path, stream = self.path / f"{source}.wav", 0
        try:
            audio, _ = read_audio(path, check=False, start=start, frames=frames, stream=stream)
        except AudioError as exc:
            raise DataError(str(exc)) from None
        return self.conform(audio, frames)

    def conform(self, audio: np.ndarray, frames: int | None = None) -> np.ndarray:
        """`np.ndarray[C x T]` → `[2 x frames]` (default: the song's length): mono doubled, extra
        channels dropped, and zero-padded where a decoder stopped a few samples short."""
        frames = self.length if frames is None else frames
        if audio.shape[0] == 1:
            audio = np.repeat(audio, 2, axis=0)
        return fit_length(audio[:2], frames)


def _wav_track(folder: Path, split: str) -> Track:
    infos = {}
    for source in SOURCES:
        path = folder / f"{source}.wav"
        if not path.is_file():
            raise DataError(f"{path}: missing stem file")
        try:
            infos[source] = probe(path)
        except AudioError as exc:
            raise DataError(f"{path}: unreadable ({exc})") from None
    ref = infos["mixture"]
    for source, info in infos.items():
        if info.rate != ref.rate:
            raise DataError(f"{folder / (source + '.wav')}: sample rate {info.rate} differs from the "
                            f"mixture's {ref.rate}")
        if info.frames != ref.frames:
            raise DataError(f"{folder / (source + '.wav')}: {info.frames} samples, the mixture has {ref.frames}")
        if info.channels > 2:
            raise DataError(f"{folder / (source + '.wav')}: {info.channels} channels (mono or stereo expected)")
    return Track(folder.name, split, folder, ref.frames, ref.rate)


def _mp4_track(path: Path, split: str) -> Track:
    try:
        info = probe(path)
    except AudioError as exc:
        raise DataError(f"{path}: unreadable stem file ({exc})") from None
    if info.streams < 5:
        raise DataError(f"{path}: {info.streams} audio streams, a MUSDB18 stem file has 5")
    return Track(path.name.removesuffix(".stem.mp4"), split, path, info.frames, info.rate)


def find_tracks(root, split: str) -> list[Track]:
    """All songs of `split` under `root`, checked for missing stems and mismatched lengths/rates.

    Without a `valid/` folder, MUSDB18's official validation songs are split off `train/`."""
    root = Path(root)
    if split in ("train", "valid") and not (root / "valid").is_dir() and (root / "train").is_dir():
        tracks = _scan(root / "train", "train")
        valid = [t for t in tracks if t.name in MUSDB18_VALIDATION]
        if split == "valid":
            if not valid:
                raise DataError(f"{root}: no valid/ folder and no MUSDB18 validation songs in train/; "
                                "make a valid/ split (the test split is never used for model selection)")
            return [Track(t.name, "valid", t.path, t.length, t.rate) for t in valid]
        return [t for t in tracks if t.name not in MUSDB18_VALIDATION]
    return _scan(root / split, split)


def _scan(folder: Path, split: str) -> list[Track]:
    if not folder.is_dir():
        present = sorted(p.name for p in folder.parent.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.parent.is_dir() else []
        raise DataError(f"{folder}: no such split folder (expected {folder}/<song>/...; "
                        f"{folder.parent} has {', '.join(present) or 'no split folders'})")
    tracks = []
    for item in sorted(folder.iterdir()):
        if item.name.startswith("."):
            continue  # e.g. a half-rendered song being written
        if item.is_dir():
            tracks.append(_wav_track(item, split))
        elif item.name.endswith(".stem.mp4"):
            tracks.append(_mp4_track(item, split))
    if not tracks:
        raise DataError(f"{folder}: holds no songs")
    return tracks
