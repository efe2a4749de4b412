"""Refinement of the model's stems on the mixture's STFT, with norbert (open-unmix's filtering).

The model's stems give each source's power spectrogram; a filter built from them is applied to the
mixture's STFT, so the refined stems add up to the mixture (to float rounding) and carry the
mixture's own phase and detail instead of the decoder's.

- "none": the model's output as it is.
- "softmask": each source gets the share v_j / Σ v of every time-frequency bin of the mixture.
  Frame-local: a song separated block by block gives exactly the whole-song result.
- "wiener": the soft mask followed by one expectation-maximisation step of the multichannel Wiener
  filter (norbert.wiener), which also estimates each source's stereo image from the frames of its
  slice.
- "learned": the soft mask corrected by the model's learned mask (models/mask.py); frame-local like
  the soft mask. It needs all of the model's stems and runs at the model's rate (`Separator`).
- "auto" (`Separator` only): "learned" for a model that has a learned mask, else "softmask".
The song is refined in place, in slices of `SLICE_SECONDS` and of at most `SLICE_SAMPLES` in all
channels (each with `N_FFT` more samples on both sides, on the STFT's hop grid), so memory does not
grow with the song (measured on a 60-s stereo block at 48 kHz: +75 MiB over the separation's own peak, from
+390 MiB with 15-s slices written to a copy); for "softmask" the result is exactly the whole-song one.
When fewer stems than the model's are asked for, the rest of the mixture is one more source.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .defaults import REFINES
from .errors import JukesepError, ShapeError

N_FFT, HOP = 4096, 1024  # open-unmix's STFT at 44.1 kHz
SLICE_SECONDS = 4.0
SLICE_SAMPLES = 2 * 44100 * 4  # so that many channels at a high rate make shorter slices, not bigger ones
EPS = 1e-10


def check_refine(mode: str) -> str:
    if mode not in REFINES:
        raise JukesepError(f"refine must be one of {', '.join(REFINES)}, not {mode!r}")
    return mode


@functools.cache
def _window(device: torch.device = torch.device("cpu")) -> torch.Tensor:
    return torch.hann_window(N_FFT, device=device)


def spectrogram(x: torch.Tensor) -> torch.Tensor:
    """`Tensor[... x T]` → complex `Tensor[... x bins x frames]` (all leading axes in one call)."""
    spec = torch.stft(x.reshape(-1, x.shape[-1]), N_FFT, HOP, window=_window(x.device), return_complex=True)
    return spec.reshape(*x.shape[:-1], *spec.shape[-2:])


def waveform(spec: torch.Tensor, length: int) -> torch.Tensor:
    """complex `Tensor[... x bins x frames]` → `Tensor[... x length]`."""
    audio = torch.istft(spec.reshape(-1, *spec.shape[-2:]), N_FFT, HOP, window=_window(spec.device), length=length)
    return audio.reshape(*spec.shape[:-2], length)


def _stft(x: np.ndarray) -> torch.Tensor:
    return spectrogram(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))


def _istft(spec: torch.Tensor, length: int) -> np.ndarray:
    return waveform(spec, length).numpy()


def refine(mixture: np.ndarray, stems: dict[str, np.ndarray], mode: str, rate: int,
           complete: bool = True, net: torch.nn.Module | None = None) -> dict[str, np.ndarray]:
    """mixture `np.ndarray[C x T]`, stems {name: `np.ndarray[C x T]`} → the stems, refined in place
    (no second copy of the song's stems) and returned.

    complete: whether `stems` are all of the model's stems; if not, mixture − Σ stems is added as
    one more source, so the filter does not push the missing stems into the ones asked for.
    net: the learned mask, for mode "learned" (all stems, in the model's order)."""
    check_refine(mode)
    if mode == "auto":
        raise JukesepError("refine: resolve 'auto' to a mode first (Separator does)")
    if mode == "learned" and (net is None or not complete):
        raise JukesepError("refine: 'learned' needs the model's learned mask and all of its stems")
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
    # At least N_FFT, so a slice's window reaches back into the previous slice's output only.
    step = max(N_FFT, min(int(SLICE_SECONDS * rate), SLICE_SAMPLES // mixture.shape[0])) // HOP * HOP
    pending = None  # a slice's result, written once the next slice has read its window (they overlap)
    for start in range(0, length, step):
        low, high = max(0, start - N_FFT), min(length, start + step + N_FFT)
        windows = np.stack([source[:, low:high] for source in sources]).astype(np.float32, copy=False)
        if pending is not None:
            _write(stems, *pending)
        end = min(start + step, length)
        refined = _refine_window(mixture[:, low:high], windows, mode, net)
        pending = start, end, [audio[:, start - low:end - low] for audio in refined]
    _write(stems, *pending)
    return stems


def _write(stems: dict[str, np.ndarray], start: int, end: int, refined: list[np.ndarray]) -> None:
    for stem, audio in zip(stems.values(), refined):
        stem[:, start:end] = audio


def _refine_window(mixture: np.ndarray, sources: np.ndarray, mode: str,
                   net: torch.nn.Module | None = None) -> list[np.ndarray]:
    """`np.ndarray[C x L]` mixture and `np.ndarray[S x C x L]` sources → the S refined sources."""
    specs = _stft(np.concatenate([mixture[None], sources]))  # [1+S x C x bins x frames]
    x, parts = specs[0], torch.view_as_real(specs[1:])
    power = parts[..., 0].square() + parts[..., 1].square()  # [S x C x bins x frames], |.|² without a sqrt
    length = mixture.shape[-1]
    if mode == "learned":
        where = next(net.parameters()).device
        with torch.inference_mode():
            share = net(x.to(where), power.transpose(0, 1).to(where)).transpose(0, 1).cpu()  # [S x C x ...]
        return list(_istft(x * share, length))
    if mode == "softmask":  # norbert.softmask's filter, in float32 (norbert divides in complex)
        share = power.mul_(sum(power.unbind(0), EPS).reciprocal_())  # faster than .sum(0) in this layout
        return list(_istft(x * share, length))
    if x.abs().max() == 0:  # norbert scales by the peak: a silent window stays silent
        return [np.zeros_like(mixture, dtype=np.float32) for _ in sources]
    import norbert  # its layout: frames x bins x channels [x sources]
    y = norbert.wiener(power.permute(3, 2, 1, 0).numpy(), x.permute(2, 1, 0).numpy(), iterations=1, eps=EPS)
    return list(_istft(torch.from_numpy(np.ascontiguousarray(y.transpose(3, 2, 1, 0))), length))
