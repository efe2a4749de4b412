"""Refinement of the model's stems on the mixture's STFT, with norbert (open-unmix's filtering).

The model's stems give each source's power spectrogram; a filter built from them is applied to the
mixture's STFT, so the refined stems add up to the mixture (to float rounding) and carry the
mixture's own phase and detail instead of the decoder's.

- "none": the model's output as it is.
- "softmask": each source gets the share v_j / Σ v of every time-frequency bin of the mixture.
  Frame-local: a song separated block by block gives exactly the whole-song result.
- "wiener": the soft mask followed by one expectation-maximisation step of the multichannel Wiener
  filter (norbert.wiener), which also estimates each source's stereo image. The EM step pools the
  frames of each `WIENER_SECONDS` slice, which bounds its memory.
When fewer stems than the model's are asked for, the rest of the mixture is one more source.
"""
from __future__ import annotations

import numpy as np
import torch

from .defaults import DEFAULT_REFINE, REFINES  # noqa: F401  (re-exported)
from .errors import JukesepError, ShapeError

N_FFT, HOP = 4096, 1024  # open-unmix's STFT at 44.1 kHz
WIENER_SECONDS = 30.0
EPS = 1e-10


def check_refine(mode: str) -> str:
    if mode not in REFINES:
        raise JukesepError(f"refine must be one of {', '.join(REFINES)}, not {mode!r}")
    return mode


def _stft(x: np.ndarray) -> torch.Tensor:
    """`np.ndarray[C x T]` → complex `Tensor[C x bins x frames]`."""
    return torch.stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), N_FFT, HOP,
                      window=torch.hann_window(N_FFT), return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> np.ndarray:
    """complex `Tensor[C x bins x frames]` → `np.ndarray[C x T]`."""
    return torch.istft(spec, N_FFT, HOP, window=torch.hann_window(N_FFT), length=length).numpy()


def refine(mixture: np.ndarray, stems: dict[str, np.ndarray], mode: str, rate: int,
           complete: bool = True) -> dict[str, np.ndarray]:
    """mixture `np.ndarray[C x T]`, stems {name: `np.ndarray[C x T]`} → refined stems, same shapes.

    complete: whether `stems` are all of the model's stems; if not, mixture − Σ stems is added as
    one more source, so the filter does not push the missing stems into the ones asked for."""
    check_refine(mode)
    if mode == "none" or not stems:
        return stems
    length = mixture.shape[-1]
    for name, stem in stems.items():
        if stem.shape != mixture.shape:
            raise ShapeError(f"stem {name} is {stem.shape}, the mixture {mixture.shape}")
    if length <= N_FFT // 2:
        return stems  # too short for one STFT frame: nothing to refine against
    sources = list(stems.values())
    if not complete:
        sources.append(mixture - sum(sources))
    x = _stft(mixture).permute(2, 1, 0).numpy()  # [frames x bins x C], norbert's layout
    power = np.stack([np.abs(_stft(s).permute(2, 1, 0).numpy()) ** 2 for s in sources], axis=-1)
    if mode == "softmask":
        import norbert
        y = norbert.softmask(power, x, eps=EPS)
    else:
        y = _wiener_slices(power, x, max(1, int(WIENER_SECONDS * rate / HOP)))
    spec = torch.from_numpy(np.ascontiguousarray(y.transpose(3, 2, 1, 0)))  # [S x C x bins x frames]
    return {name: _istft(spec[i], length).astype(np.float32) for i, name in enumerate(stems)}


def _wiener_slices(power: np.ndarray, x: np.ndarray, frames: int) -> np.ndarray:
    """norbert.wiener (soft mask + one EM step) on consecutive slices of `frames` STFT frames."""
    import norbert
    out = np.empty(x.shape + (power.shape[-1],), dtype=x.dtype)
    for start in range(0, x.shape[0], frames):
        part = slice(start, start + frames)
        # norbert scales the input to unit peak and back; a silent slice stays silent.
        if np.abs(x[part]).max() == 0:
            out[part] = 0
            continue
        out[part] = norbert.wiener(power[part], x[part], iterations=1, eps=EPS)
    return out
