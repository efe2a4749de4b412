"""The shared layout (beyond the paper): one mixture encoder for all stems, then per stem a small
head at the latent rate, the stem's codebook and the stem's decoder.

    mixture → shared encoder → latents of the mixture ─┬→ vocals head → vocals codebook → vocals decoder
                                                        ├→ drums head  → ...
The encoder runs once per chunk instead of once per stem; the heads work at 1/hop of the audio
rate, so they are cheap even when wide.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ShapeError
from .bottleneck import BottleneckBlock
from .config import HeadConfig, VQVAEConfig
from .vqvae import Decoder, ResConv1DBlock, StemBase


class StemHead(nn.Module):
    """Mixture latents → the stem's latents: `Tensor[B x in_width x F]` → `Tensor[B x out_width x F]`.

    A linear skip plus a residual branch whose last conv starts at zero, so an untrained head
    passes the mixture's latents through (the stem decoder then starts from "the stem is the
    mixture" rather than from noise)."""

    def __init__(self, in_width: int, out_width: int, cfg: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.skip = nn.Conv1d(in_width, out_width, 1, bias=False)
        self.branch = nn.Sequential(nn.Conv1d(in_width, cfg.width, 3, 1, 1),
                                    *(ResConv1DBlock(cfg.width, cfg.width, d, 1.0) for d in cfg.dilations()),
                                    nn.ReLU(), nn.Conv1d(cfg.width, out_width, 3, 1, 1))
        with torch.no_grad():
            self.skip.weight.copy_(torch.eye(out_width, in_width).unsqueeze(-1))
            self.branch[-1].weight.zero_()
            self.branch[-1].bias.zero_()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3 or z.shape[1] != self.skip.in_channels:
            raise ShapeError(f"expected latents [B x {self.skip.in_channels} x F], got {tuple(z.shape)}")
        return self.skip(z) + self.branch(z)


class SharedStem(StemBase):
    """One stem of the shared layout: head → codebook → decoder.
    `Tensor[B x trunk emb_width x F]` mixture latents → `Tensor[B x 1 x F*hop]` stem."""

    def __init__(self, cfg: VQVAEConfig, trunk_width: int, head: HeadConfig):
        super().__init__()
        self.cfg = cfg
        self.head = StemHead(trunk_width, cfg.emb_width, head)
        self.quantizer = BottleneckBlock(cfg)  # the stem's codebook (stage 1)
        self.decoder = Decoder(cfg)  # the stem's decoder (stage 1)

    def encode(self, z: torch.Tensor) -> torch.Tensor:
        """Mixture latents `Tensor[B x E x F]` → the stem's codes `LongTensor[B x F]`."""
        return self.quantizer.quantize(self.head(z))
