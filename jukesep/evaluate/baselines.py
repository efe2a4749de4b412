"""Reference points scored by the same harness: the oracle ideal ratio mask (a practical ceiling)
and mixture/4 (MDX's "scaled mixture" floor). Each is an `Estimator`:
    estimate(mixture `[C x T]`, rate, references {stem: `[C x T]`}) → {stem: `[C x T]`}."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

Estimator = Callable[[np.ndarray, int, dict], dict]


def mix4(mixture: np.ndarray, rate: int, references: dict) -> dict:
    return {stem: mixture / 4.0 for stem in references}


def ideal_ratio_mask(mixture: np.ndarray, rate: int, references: dict, power: float = 1.0,
                     n_fft: int = 4096, hop: int = 1024) -> dict:
    """Oracle: mask_j = |S_j|^p / Σ_k |S_k|^p from the true stems, applied to the mixture STFT."""
    window = torch.hann_window(n_fft, dtype=torch.float64)

    def stft(x: np.ndarray) -> torch.Tensor:
        return torch.stft(torch.from_numpy(x.astype(np.float64)), n_fft, hop, window=window, return_complex=True)

    length = mixture.shape[-1]
    mix = stft(mixture)
    powers = {stem: stft(ref).abs() ** power for stem, ref in references.items()}
    total = sum(powers.values()) + 1e-12
    out = {}
    for stem, p in powers.items():
        spec = mix * (p / total)
        out[stem] = torch.istft(spec, n_fft, hop, window=window, length=length).numpy().astype(np.float32)
    return out


BUILTIN = {"irm": ideal_ratio_mask, "mix4": mix4}
