"""The paper's losses (Jukebox's `lmix` and multi-resolution spectral loss) and the MDX SDR."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ShapeError

STFT_RESOLUTIONS = ((2048, 240, 1200), (1024, 120, 600), (512, 50, 240))  # (n_fft, hop, window)


def lmix(estimate: torch.Tensor, target: torch.Tensor, linf_weight: float = 0.02, linf_k: int = 2048) -> torch.Tensor:
    """MSE + `linf_weight` × mean of the `linf_k` largest squared errors of each example.

    estimate, target: `Tensor[B x ...]` of equal shape → scalar.
    """
    _same_shape(estimate, target)
    squared = (estimate.float() - target.float()).pow(2).reshape(estimate.shape[0], -1)
    top = squared.topk(min(linf_k, squared.shape[1]), dim=-1).values
    return squared.mean() + linf_weight * top.mean()


def _same_shape(estimate: torch.Tensor, target: torch.Tensor) -> None:
    if estimate.shape != target.shape:
        raise ShapeError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} differ in shape")


def _mono_batch(x: torch.Tensor) -> None:
    if x.dim() != 3 or x.shape[1] != 1:
        raise ShapeError(f"expected mono audio [B x 1 x T], got {tuple(x.shape)}")


def _magnitude(x: torch.Tensor, n_fft: int, hop: int, window: int) -> torch.Tensor:
    win = torch.hann_window(window, device=x.device)
    return torch.stft(x, n_fft, hop, window, win, return_complex=True).abs()


@dataclass(frozen=True)
class Bandwidth:
    """Jukebox's loss normalisers, measured on the training data: mean power (`l2`) and mean
    spectrogram norm (`spec`). Dividing by them makes the waveform and spectral terms both of order
    one, whatever the audio's level; without them the spectral term outweighs the waveform term by
    orders of magnitude and the model may learn the right spectrum with the wrong waveform."""
    l2: float = 1.0
    spec: float = 1.0

    @classmethod
    def measure(cls, examples: torch.Tensor) -> "Bandwidth":
        """examples: `Tensor[N x 1 x T]` of training audio."""
        _mono_batch(examples)
        # The spectral loss of a silent estimate is the mean spectrogram norm.
        spec = multi_resolution_stft_loss(torch.zeros_like(examples), examples)
        return cls(l2=float(examples.float().pow(2).mean()), spec=float(spec))


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor,
                               resolutions=STFT_RESOLUTIONS) -> torch.Tensor:
    """Jukebox's spectral loss: per example, the L2 norm of the magnitude-spectrogram difference,
    averaged over resolutions and examples. `Tensor[B x 1 x T]` pair → scalar."""
    _same_shape(estimate, target)
    _mono_batch(estimate)
    est, tgt = estimate.float().squeeze(1), target.float().squeeze(1)
    losses = []
    for n_fft, hop, window in resolutions:
        diff = _magnitude(est, n_fft, hop, window) - _magnitude(tgt, n_fft, hop, window)
        losses.append(diff.reshape(diff.shape[0], -1).norm(dim=-1).mean())
    return sum(losses) / len(losses)


def sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """MDX song-level SDR in dB, per example: 10·log10((Σs² + eps) / (Σ(s−ŝ)² + eps)).

    `Tensor[B x ...]` pair → `Tensor[B]`.
    """
    _same_shape(estimate, reference)
    ref = reference.double().reshape(reference.shape[0], -1)
    err = (ref - estimate.double().reshape(ref.shape)).pow(2).sum(-1)
    return (10 * torch.log10((ref.pow(2).sum(-1) + eps) / (err + eps))).float()
