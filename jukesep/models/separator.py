"""The paper's inference path, one `StemModel` per stem:
mixture → stem's mixture encoder → nearest code of the stem's codebook → stem's decoder."""
from __future__ import annotations

import math

import torch
from torch import nn

from .bottleneck import BottleneckBlock
from .config import VQVAEConfig
from .vqvae import VQVAE, Decoder, Encoder

STEMS = ("vocals", "drums", "bass", "other")


class StemModel(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)  # trained on mixtures (stage 2)
        self.quantizer = BottleneckBlock(cfg)  # the stem's codebook (stage 1)
        self.decoder = Decoder(cfg)  # the stem's decoder (stage 1)

    @classmethod
    def from_parts(cls, vqvae: VQVAE, mixture_encoder: Encoder) -> "StemModel":
        """Assemble from a stage-1 VQ-VAE and a stage-2 mixture encoder of the same config."""
        assert vqvae.cfg == mixture_encoder.cfg, "stage-1 and stage-2 configs differ"
        stem = cls(vqvae.cfg)
        stem.encoder.load_state_dict(mixture_encoder.state_dict())
        stem.quantizer.load_state_dict(vqvae.quantizer.state_dict())
        stem.decoder.load_state_dict(vqvae.decoder.state_dict())
        return stem

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x 1 x T]` mixture (T a multiple of the hop) → `Tensor[B x 1 x T]` stem estimate."""
        codes = self.quantizer.quantize(self.encoder(mixture))
        return self.decoder(self.quantizer.dequantize(codes).to(mixture.dtype))


class SeparatorModel(nn.Module):
    """A bundle of stems; each may have its own config, all share one sample rate."""

    def __init__(self, configs: dict[str, VQVAEConfig]):
        super().__init__()
        assert configs, "a separator needs at least one stem"
        rates = {cfg.sample_rate for cfg in configs.values()}
        assert len(rates) == 1, f"stems disagree on the sample rate: {sorted(rates)}"
        self.configs = dict(configs)
        self.sample_rate = rates.pop()
        self.stems = nn.ModuleDict({name: StemModel(cfg) for name, cfg in configs.items()})

    @property
    def stem_names(self) -> list[str]:
        return list(self.stems.keys())

    def context_samples(self) -> int:
        return max(cfg.context_samples() for cfg in self.configs.values())

    def hop_length(self) -> int:
        return math.lcm(*(cfg.hop_length for cfg in self.configs.values()))
