"""The paper's inference path, one `StemModel` per stem:
mixture → stem's mixture encoder → nearest code of the stem's codebook → stem's decoder.
`SeparatorModel` runs every stem on every channel in one `forward`: `[B x C x T]` → `[B x S x C x T]`."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import CheckpointError, JukesepError, ShapeError
from .bottleneck import BottleneckBlock
from .config import VQVAEConfig
from .fast import FastStem
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
        if vqvae.cfg != mixture_encoder.cfg:
            raise CheckpointError("the stage-1 VQ-VAE and the stage-2 encoder have different model configs")
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
    """A bundle of stems; each may have its own config, all share one sample rate.

    The model is mono: `forward` folds channels into the batch, runs every stem, and unfolds.
    """

    def __init__(self, configs: dict[str, VQVAEConfig]):
        super().__init__()
        self._setup({name: StemModel(cfg) for name, cfg in configs.items()})

    @classmethod
    def from_stems(cls, stems: dict[str, nn.Module]) -> "SeparatorModel":
        """A separator over existing stem modules (shared, not copied), e.g. a subset or fast twins."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model._setup(stems)
        return model

    def _setup(self, stems: dict[str, nn.Module]) -> None:
        if not stems:
            raise CheckpointError("a separator needs at least one stem")
        rates = {stem.cfg.sample_rate for stem in stems.values()}
        if len(rates) != 1:
            raise CheckpointError(f"stems disagree on the sample rate: {sorted(rates)}")
        self.configs = {name: stem.cfg for name, stem in stems.items()}
        self.sample_rate = rates.pop()
        self.stems = nn.ModuleDict(stems)

    @property
    def stem_names(self) -> list[str]:
        return list(self.stems.keys())

    def context_samples(self) -> int:
        return max(cfg.context_samples() for cfg in self.configs.values())

    def hop_length(self) -> int:
        return math.lcm(*(cfg.hop_length for cfg in self.configs.values()))

    def select(self, names: list[str]) -> "SeparatorModel":
        """A separator computing only `names` (in that order), sharing this one's weights."""
        unknown = [n for n in names if n not in self.stems]
        if unknown or not names:
            raise JukesepError(f"stem {', '.join(unknown) or '(none)'} not in this model "
                             f"(it has {', '.join(self.stems)})")
        return SeparatorModel.from_stems({n: self.stems[n] for n in names})

    def fast(self, dtype: torch.dtype | None = None) -> "SeparatorModel":
        """The inference form: every stem as its channels-last 2-D twin (same weights, faster on CPU
        and CUDA), its convolutions in `dtype` when given (e.g. bfloat16; the code search stays
        float32). For inference only; its state dict is not a checkpoint's."""
        if any(isinstance(s, FastStem) for s in self.stems.values()):
            raise JukesepError("this separator is already in its fast form")
        return SeparatorModel.from_stems({n: FastStem(s, dtype) for n, s in self.stems.items()}).eval()

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x C x T]` mixture (T a multiple of `hop_length()`) → `Tensor[B x S x C x T]` stems,
        S in `stem_names` order."""
        if mixture.dim() != 3 or mixture.shape[-1] % self.hop_length() != 0:
            raise ShapeError(f"expected a mixture [B x C x T] with T a multiple of {self.hop_length()}, "
                             f"got {tuple(mixture.shape)}")
        batch, channels, length = mixture.shape
        mono = mixture.reshape(batch * channels, 1, length)
        return torch.stack([stem(mono).reshape(batch, channels, length) for stem in self.stems.values()], dim=1)
