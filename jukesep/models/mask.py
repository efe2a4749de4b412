"""The learned mask: beyond the paper, a small network that corrects the soft mask built from the
model's own stems (refine.py's "softmask"), trained on the frozen separator's output
(`jukesep train mask`).

Per STFT frame and channel, an MLP reads the mixture's and the stems' log magnitudes and adds a
correction Δ to each stem's log power; each stem gets softmax(log power + Δ) over the stems of the
mixture's bin, so the stems still add up to the mixture. Its last layer starts at zero: an untrained
mask is the soft mask. Frame-local (no context across frames), so a song refined slice by slice
gets the whole-song result.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ShapeError
from .config import MaskConfig

EPS = 1e-10  # power floor, as refine.py's
MAGNITUDE_FLOOR = 1e-3  # of the log magnitudes the MLP reads


class MaskNet(nn.Module):
    def __init__(self, cfg: MaskConfig, stems: int):
        super().__init__()
        self.cfg, self.stems = cfg, stems
        if cfg.reach == 0:  # one MLP over the frame's bins
            self.inp = nn.Linear((stems + 1) * cfg.bins, cfg.hidden)
            self.norm = nn.LayerNorm(cfg.hidden)
            self.hidden = nn.ModuleList(nn.Linear(cfg.hidden, cfg.hidden) for _ in range(cfg.layers))
            self.out = nn.Linear(cfg.hidden, stems * cfg.bins)
        else:  # one rule for every bin, over its ±reach neighbours (linear layers on the last axis: GEMMs)
            self.inp = nn.Linear((stems + 1) * (2 * cfg.reach + 1), cfg.hidden)
            self.hidden = nn.ModuleList(nn.Linear(cfg.hidden, cfg.hidden) for _ in range(cfg.layers))
            self.out = nn.Linear(cfg.hidden, stems)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, mixture: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
        """mixture: complex `Tensor[N x F x T]` STFT (one row per channel); power: the stems' power
        spectrograms `Tensor[N x S x F x T]` → each stem's share of every bin, `Tensor[N x S x F x T]`
        (summing to 1 over S)."""
        n, s, f, t = power.shape
        if s != self.stems or mixture.shape != (n, f, t) or f < self.cfg.bins:
            raise ShapeError(f"mask for {self.stems} stems and ≥{self.cfg.bins} bins got mixture "
                             f"{tuple(mixture.shape)} and stems {tuple(power.shape)}")
        low = self.cfg.bins
        mix = (mixture[:, None, :low].abs() + MAGNITUDE_FLOOR).log()  # [N x 1 x bins x T]
        stems = (power[:, :, :low].sqrt() + MAGNITUDE_FLOOR).log()
        delta = self._frame(mix, stems) if self.cfg.reach == 0 else self._local(mix, stems)  # [N x S x bins x T]
        logits = (power + EPS).log()
        logits = torch.cat([logits[:, :, :low] + delta, logits[:, :, low:]], dim=2)
        return logits.softmax(dim=1)

    def _frame(self, mix: torch.Tensor, stems: torch.Tensor) -> torch.Tensor:
        n, s, low, t = stems.shape
        features = torch.cat([mix, stems], dim=1).permute(0, 3, 1, 2).reshape(n, t, -1)  # [N x T x (S+1)*bins]
        h = self._body(nn.functional.gelu(self.norm(self.inp(features))))
        return h.reshape(n, t, s, low).permute(0, 2, 3, 1)

    def _local(self, mix: torch.Tensor, stems: torch.Tensor) -> torch.Tensor:
        """Reads each stem's level relative to the mixture's, not absolute spectra."""
        k, low = self.cfg.reach, mix.shape[2]
        features = nn.functional.pad(torch.cat([mix, stems - mix], dim=1), (0, 0, k, k), mode="replicate")
        near = torch.stack([features[:, :, i:i + low] for i in range(2 * k + 1)], dim=-1)  # [N x S+1 x bins x T x 2k+1]
        h = nn.functional.gelu(self.inp(near.permute(0, 2, 3, 1, 4).flatten(3)))  # [N x bins x T x hidden]
        return self._body(h).permute(0, 3, 1, 2)

    def _body(self, h: torch.Tensor) -> torch.Tensor:
        """The residual hidden layers and the output layer, on the last axis."""
        for layer in self.hidden:
            h = h + nn.functional.gelu(layer(h))
        return self.out(h)
