"""Jukebox's level-0 encoder and decoder.

Module nesting (ModuleLists of one level, `model` Sequentials) mirrors Jukebox so that the
state-dict keys of `VQVAE` equal those of an official `vqvae.pth.tar` (see level0_keys.tsv).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from ..errors import ShapeError
from .bottleneck import Bottleneck
from .config import VQVAEConfig


def check_audio_batch(x: torch.Tensor, channels: int, multiple: int) -> None:
    """Raise ShapeError unless `x` is `Tensor[B x channels x T]` with T a multiple of `multiple`."""
    if x.dim() != 3 or x.shape[1] != channels:
        raise ShapeError(f"expected audio [B x {channels} x T], got {tuple(x.shape)}")
    if x.shape[-1] % multiple != 0:
        raise ShapeError(f"length {x.shape[-1]} is not a multiple of the hop {multiple}")


class Reconstruction(NamedTuple):
    """What `VQVAE.forward` returns."""
    audio: torch.Tensor  # Tensor[B x 1 x T], the reconstruction
    codes: torch.Tensor  # LongTensor[B x T/hop]
    commit_loss: torch.Tensor  # scalar
    metrics: dict  # the quantiser's metrics


class ResConv1DBlock(nn.Module):
    def __init__(self, n_in: int, n_state: int, dilation: int, res_scale: float):
        super().__init__()
        self.model = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(n_in, n_state, 3, 1, dilation, dilation),
            nn.ReLU(),
            nn.Conv1d(n_state, n_in, 1, 1, 0),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.res_scale == 1.0:  # Jukebox 5b: skip a full-size multiply by one
            return x + self.model(x)
        return x + self.res_scale * self.model(x)


class Resnet1D(nn.Module):
    def __init__(self, cfg: VQVAEConfig, reverse_dilation: bool = False):
        super().__init__()
        res_scale = 1.0 / math.sqrt(cfg.depth) if cfg.res_scale else 1.0
        n_state = int(cfg.m_conv * cfg.width)
        blocks = [ResConv1DBlock(cfg.width, n_state, d, res_scale) for d in cfg.dilations()]
        if reverse_dilation:
            blocks = blocks[::-1]
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class EncoderConvBlock(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        kernel, pad = cfg.stride_t * 2, cfg.stride_t // 2
        blocks: list[nn.Module] = []
        for i in range(cfg.down_t):
            n_in = cfg.input_channels if i == 0 else cfg.width
            blocks.append(nn.Sequential(nn.Conv1d(n_in, cfg.width, kernel, cfg.stride_t, pad), Resnet1D(cfg)))
        blocks.append(nn.Conv1d(cfg.width, cfg.emb_width, 3, 1, 1))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class DecoderConvBlock(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        kernel, pad = cfg.stride_t * 2, cfg.stride_t // 2
        blocks: list[nn.Module] = [nn.Conv1d(cfg.emb_width, cfg.width, 3, 1, 1)]
        for i in range(cfg.down_t):
            n_out = cfg.emb_width if i == cfg.down_t - 1 else cfg.width
            blocks.append(nn.Sequential(Resnet1D(cfg, reverse_dilation=True),
                                        nn.ConvTranspose1d(cfg.width, n_out, kernel, cfg.stride_t, pad)))
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class Encoder(nn.Module):
    """Audio → continuous latents. `Tensor[B x 1 x T]` → `Tensor[B x emb_width x T/hop]`."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.level_blocks = nn.ModuleList([EncoderConvBlock(cfg)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_audio_batch(x, self.cfg.input_channels, self.cfg.hop_length)
        return self.level_blocks[0](x)


class Decoder(nn.Module):
    """Latents → audio. `Tensor[B x emb_width x F]` → `Tensor[B x 1 x F*hop]`."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.level_blocks = nn.ModuleList([DecoderConvBlock(cfg)])
        self.out = nn.Conv1d(cfg.emb_width, cfg.input_channels, 3, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 3 or z.shape[1] != self.cfg.emb_width:
            raise ShapeError(f"expected latents [B x {self.cfg.emb_width} x F], got {tuple(z.shape)}")
        return self.out(self.level_blocks[0](z))


class VQVAE(nn.Module):
    """Jukebox's bottom level: encoder → vector quantiser → decoder (one stem's autoencoder)."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoders = nn.ModuleList([Encoder(cfg)])
        self.decoders = nn.ModuleList([Decoder(cfg)])
        self.bottleneck = Bottleneck(cfg)

    @property
    def encoder(self) -> Encoder:
        return self.encoders[0]

    @property
    def decoder(self) -> Decoder:
        return self.decoders[0]

    @property
    def quantizer(self):
        return self.bottleneck.level_blocks[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x 1 x T]` → codes `LongTensor[B x T/hop]`."""
        return self.quantizer.quantize(self.encoder(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes `LongTensor[B x F]` → audio `Tensor[B x 1 x F*hop]`."""
        return self.decoder(self.quantizer.dequantize(codes))

    def forward(self, x: torch.Tensor) -> Reconstruction:
        """`Tensor[B x 1 x T]` → `Reconstruction` (audio `[B x 1 x T]`, codes, commitment loss, metrics)."""
        q = self.quantizer(self.encoder(x))
        return Reconstruction(self.decoder(q.z_q), q.codes, q.commit_loss, q.metrics)


class StemBase(nn.Module):
    """What every inference stem shares: `encode` (its own: mixture → the stem's codes) and then
    the stem's codebook and decoder. Subclasses set `quantizer` and `decoder`."""

    def encode(self, source: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Codes `LongTensor[B x F]` → stem audio `Tensor[B x 1 x F*hop]`."""
        return self.decoder(self.quantizer.dequantize(codes).to(dtype))

    def forward(self, source: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(source), source.dtype)
