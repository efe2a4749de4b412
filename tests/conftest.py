import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from jukesep.checkpoint import save_model
from jukesep.defaults import STEMS
from jukesep.models import SeparatorModel, VQVAEConfig

RATE = 44100
BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(**overrides) -> VQVAEConfig:
    values = dict(width=8, depth=1, emb_width=8, codebook_size=32)
    values.update(overrides)
    return VQVAEConfig(**values)


def random_separator(stems=STEMS, cfg=None, seed=0) -> SeparatorModel:
    """A tiny separator with random weights and a random (non-zero) codebook."""
    torch.manual_seed(seed)
    model = SeparatorModel({s: cfg or tiny_config() for s in stems})
    for stem in model.stems.values():
        stem.quantizer.k.normal_(0, 0.1)
    return model.eval()


def with_random_mask(model: SeparatorModel, seed=0, hidden=8, bins=64, reach=0) -> SeparatorModel:
    """`model` with a small learned mask whose last layer is random (not the soft-mask start)."""
    from jukesep.models.config import MaskConfig
    torch.manual_seed(seed)
    masked = model.with_mask(MaskConfig(hidden=hidden, bins=bins, layers=1, reach=reach))
    torch.nn.init.normal_(masked.mask.out.weight, std=0.5)
    return masked.eval()


def music(seconds: float, rate: int = RATE, channels: int = 2, seed: int = 0) -> np.ndarray:
    """`[C x T]` float32: a few tones and noise bursts, clearly not silent."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    chans = []
    for c in range(channels):
        x = 0.2 * np.sin(2 * np.pi * (110 * (c + 1)) * t) + 0.1 * np.sin(2 * np.pi * 440 * t)
        x += 0.05 * rng.standard_normal(t.shape) * (np.sin(2 * np.pi * 2 * t) > 0)
        chans.append(x)
    return np.asarray(chans, dtype=np.float32)


def write_song(folder, seconds=2.0, rate=RATE, silent=(), seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    stems = {}
    for i, stem in enumerate(STEMS):
        t = np.arange(n)[:, None] / rate
        tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6, 2)) for f in rng.uniform(60, 2000 * (i + 1), 3))
        audio = np.zeros((n, 2), np.float32) if stem in silent else \
            (0.05 * tones + 0.01 * rng.standard_normal((n, 2))).astype(np.float32)
        stems[stem] = audio
        sf.write(folder / f"{stem}.wav", audio, rate, subtype="FLOAT")
    sf.write(folder / "mixture.wav", sum(stems.values()), rate, subtype="FLOAT")


def write_corpus(root, songs: dict[str, int], seconds: float = 1.0):
    """A MUSDB18-HQ-layout corpus of synthetic songs: {split: number of songs}."""
    for split, count in songs.items():
        for i in range(count):
            write_song(root / split / f"{split[0]}{i}", seconds=seconds, seed=100 * len(split) + i)
    return root


@pytest.fixture
def tiny_model_file(tmp_path):
    path = tmp_path / "tiny.pt"
    save_model(path, "separator", random_separator(), {"trained_on": "nothing (random test model)"})
    return path


@pytest.fixture
def song(tmp_path):
    path = tmp_path / "song.wav"
    sf.write(path, music(1.5).T, RATE)
    return path


@pytest.fixture(autouse=True)
def float32_by_default(monkeypatch):
    """In-process tests compare outputs to float32 references: "auto" precision stays float32 here
    whatever the CPU (tests of the choice itself patch `cpu_flags`)."""
    monkeypatch.setattr("jukesep.hardware.fast_bf16", lambda device: False)
