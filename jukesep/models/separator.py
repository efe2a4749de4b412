"""The separator: every stem on every channel in one `forward`, `[B x C x T]` → `[B x S x C x T]`.

Two layouts:
- per stem (the paper): one `StemModel` per stem, mixture → stem's mixture encoder → nearest code
  of the stem's codebook → stem's decoder;
- shared (shared.py): one mixture encoder (the trunk) for all stems, then per stem a head at the
  latent rate → the stem's codebook → the stem's decoder.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..defaults import STEMS  # noqa: F401  (kept importable from here)
from ..errors import CheckpointError, JukesepError, ShapeError
from .bottleneck import BottleneckBlock
from .config import HeadConfig, VQVAEConfig
from .fast import FastEncoder, FastStem
from .shared import SharedStem
from .vqvae import VQVAE, Decoder, Encoder

MAX_CONTEXT_SECONDS = 60


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

    configs: {stem: its VQ-VAE config}; trunk and head: the shared layout's encoder and head
    configs (both None: the per-stem layout). The model is mono: `forward` folds channels into the
    batch, runs every stem, and unfolds.
    """

    def __init__(self, configs: dict[str, VQVAEConfig], trunk: VQVAEConfig | None = None,
                 head: HeadConfig | None = None):
        super().__init__()
        if (trunk is None) != (head is None):
            raise CheckpointError("the shared layout needs both a trunk and a head config")
        if trunk is None:
            self._setup({name: StemModel(cfg) for name, cfg in configs.items()})
        else:
            self._setup({name: SharedStem(cfg, trunk.emb_width, head) for name, cfg in configs.items()},
                        Encoder(trunk))

    @classmethod
    def from_stems(cls, stems: dict[str, nn.Module], trunk: nn.Module | None = None) -> "SeparatorModel":
        """A separator over existing stem modules (shared, not copied), e.g. a subset or fast twins."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model._setup(stems, trunk)
        return model

    def _setup(self, stems: dict[str, nn.Module], trunk: nn.Module | None = None) -> None:
        if not stems:
            raise CheckpointError("a separator needs at least one stem")
        rates = {stem.cfg.sample_rate for stem in stems.values()}
        if trunk is not None:
            rates.add(trunk.cfg.sample_rate)
            hops = {stem.cfg.hop_length for stem in stems.values()}
            if hops != {trunk.cfg.hop_length}:
                raise CheckpointError(f"the shared encoder's hop {trunk.cfg.hop_length} differs from the "
                                      f"stems' {sorted(hops)}")
        if len(rates) != 1:
            raise CheckpointError(f"stems disagree on the sample rate: {sorted(rates)}")
        self.configs = {name: stem.cfg for name, stem in stems.items()}
        self.sample_rate = rates.pop()
        self.stems = nn.ModuleDict(stems)
        self.trunk = trunk
        if self.context_samples() > MAX_CONTEXT_SECONDS * self.sample_rate:
            raise CheckpointError(f"the model's receptive field ({self.context_samples() / self.sample_rate:.0f} s "
                                  f"each side) is beyond the {MAX_CONTEXT_SECONDS} s any chunk may hold")

    @property
    def stem_names(self) -> list[str]:
        return list(self.stems.keys())

    @property
    def trunk_config(self) -> VQVAEConfig | None:
        return None if self.trunk is None else self.trunk.cfg

    @property
    def head_config(self) -> HeadConfig | None:
        return None if self.trunk is None else next(iter(self.stems.values())).head.cfg

    def context_samples(self) -> int:
        if self.trunk is None:
            return max(cfg.context_samples() for cfg in self.configs.values())
        head = self.head_config.reach_frames() * self.trunk.cfg.hop_length
        return self.trunk.cfg.encoder_reach() + head + max(c.encoder_reach() for c in self.configs.values()) + 1

    def hop_length(self) -> int:
        return math.lcm(*(cfg.hop_length for cfg in self.configs.values()))

    def select(self, names: list[str]) -> "SeparatorModel":
        """A separator computing only `names` (in that order), sharing this one's weights."""
        unknown = [n for n in names if n not in self.stems]
        if unknown or not names:
            raise JukesepError(f"stem {', '.join(unknown) or '(none)'} not in this model "
                             f"(it has {', '.join(self.stems)})")
        return SeparatorModel.from_stems({n: self.stems[n] for n in names}, self.trunk)

    def fast(self, dtype: torch.dtype | None = None) -> "SeparatorModel":
        """The inference form: every encoder and decoder as its channels-last 2-D twin (same weights,
        faster on CPU and CUDA), its convolutions in `dtype` when given (e.g. bfloat16; the code
        search stays float32). For inference only; its state dict is not a checkpoint's."""
        if any(isinstance(s, FastStem) for s in self.stems.values()) or isinstance(self.trunk, FastEncoder):
            raise JukesepError("this separator is already in its fast form")
        trunk = None if self.trunk is None else FastEncoder(self.trunk, dtype)
        return SeparatorModel.from_stems({n: FastStem(s, dtype) for n, s in self.stems.items()}, trunk).eval()

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x C x T]` mixture (T a multiple of `hop_length()`) → `Tensor[B x S x C x T]` stems,
        S in `stem_names` order."""
        if mixture.dim() != 3 or mixture.shape[-1] % self.hop_length() != 0:
            raise ShapeError(f"expected a mixture [B x C x T] with T a multiple of {self.hop_length()}, "
                             f"got {tuple(mixture.shape)}")
        batch, channels, length = mixture.shape
        mono = mixture.reshape(batch * channels, 1, length)
        source = mono if self.trunk is None else self.trunk(mono)
        return torch.stack([stem(source).to(mixture.dtype).reshape(batch, channels, length)
                            for stem in self.stems.values()], dim=1)
