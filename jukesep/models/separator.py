"""The separator: every stem on every channel in one `forward`, `[B x C x T]` → `[B x S x C x T]`.

Two layouts:
- per stem (the paper): one `StemModel` per stem, mixture → stem's mixture encoder → nearest code
  of the stem's codebook → stem's decoder;
- shared (shared.py): one mixture encoder (the trunk) for all stems, then per stem a head at the
  latent rate → the stem's codebook → the stem's decoder.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

from ..errors import CheckpointError, JukesepError, ShapeError
from .bottleneck import BottleneckBlock
from .config import HeadConfig, MaskConfig, VQVAEConfig
from .fast import FastEncoder, FastStem
from .mask import MaskNet
from .shared import SharedStem
from .vqvae import VQVAE, Decoder, Encoder, StemBase

MAX_CONTEXT_SECONDS = 60


class Stage(NamedTuple):
    """One step of a separator's `forward`, for chunked inference: each step gets exactly the context
    it needs itself, so a long-reach head does not make the encoder and decoders recompute audio.

    Positions are counted in latent frames (of `hop_length()` samples): `run` maps
    `Tensor[B x ... x F*inp]` → `Tensor[B x ... x F*out]`, and an output frame depends on input
    frames at most `reach` frames away. `cost` is the step's rough share of the work (progress)."""
    name: str
    run: Callable[[torch.Tensor], torch.Tensor]
    inp: int
    out: int
    reach: int
    cost: int


class StemModel(StemBase):
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

    def encode(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x 1 x T]` mixture (T a multiple of the hop) → the stem's codes `LongTensor[B x T/hop]`."""
        return self.quantizer.quantize(self.encoder(mixture))


class SeparatorModel(nn.Module):
    """A bundle of stems; each may have its own config, all share one sample rate.

    configs: {stem: its VQ-VAE config}; trunk and head: the shared layout's encoder and head
    configs (both None: the per-stem layout); mask: the learned mask's config (None: it has none;
    see mask.py, used by `Separator` with refine="learned", not by `forward`). The model is mono:
    `forward` folds channels into the batch, runs every stem, and unfolds.
    """

    def __init__(self, configs: dict[str, VQVAEConfig], trunk: VQVAEConfig | None = None,
                 head: HeadConfig | None = None, mask: MaskConfig | None = None):
        super().__init__()
        if (trunk is None) != (head is None):
            raise CheckpointError("the shared layout needs both a trunk and a head config")
        net = None if mask is None else MaskNet(mask, len(configs))
        if trunk is None:
            self._setup({name: StemModel(cfg) for name, cfg in configs.items()}, mask=net)
        else:
            self._setup({name: SharedStem(cfg, trunk.emb_width, head) for name, cfg in configs.items()},
                        Encoder(trunk), net)

    @classmethod
    def from_stems(cls, stems: dict[str, nn.Module], trunk: nn.Module | None = None,
                   mask: MaskNet | None = None) -> "SeparatorModel":
        """A separator over existing stem modules (shared, not copied), e.g. a subset or fast twins."""
        model = cls.__new__(cls)
        nn.Module.__init__(model)
        model._setup(stems, trunk, mask)
        return model

    def _setup(self, stems: dict[str, nn.Module], trunk: nn.Module | None = None, mask: MaskNet | None = None) -> None:
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
        if mask is not None and mask.stems != len(stems):
            raise CheckpointError(f"the learned mask is for {mask.stems} stems, the model has {len(stems)}")
        self.mask = mask
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

    @property
    def mask_config(self) -> MaskConfig | None:
        return None if self.mask is None else self.mask.cfg

    def with_mask(self, cfg: MaskConfig) -> "SeparatorModel":
        """This separator (its stems shared, not copied) with a new, untrained learned mask."""
        return SeparatorModel.from_stems(dict(self.stems), self.trunk, MaskNet(cfg, len(self.stems)))

    def context_samples(self) -> int:
        """One-sided receptive field of `forward` in audio samples (an upper bound)."""
        return sum(stage.reach for stage in self.stages()) * self.hop_length()

    def hop_length(self) -> int:
        return math.lcm(*(cfg.hop_length for cfg in self.configs.values()))

    def select(self, names: list[str]) -> "SeparatorModel":
        """A separator computing only `names` (in that order), sharing this one's weights (the
        learned mask too, when `names` are all stems in order)."""
        unknown = [n for n in names if n not in self.stems]
        if unknown or not names:
            raise JukesepError(f"stem {', '.join(unknown) or '(none)'} not in this model "
                             f"(it has {', '.join(self.stems)})")
        mask = self.mask if list(names) == self.stem_names else None
        return SeparatorModel.from_stems({n: self.stems[n] for n in names}, self.trunk, mask)

    def fast(self, dtype: torch.dtype | None = None) -> "SeparatorModel":
        """The inference form: every encoder and decoder as its channels-last 2-D twin (same weights,
        faster on CPU and CUDA), its convolutions in `dtype` when given (e.g. bfloat16; the code
        search stays float32). For inference only; its state dict is not a checkpoint's."""
        if any(isinstance(s, FastStem) for s in self.stems.values()) or isinstance(self.trunk, FastEncoder):
            raise JukesepError("this separator is already in its fast form")
        trunk = None if self.trunk is None else FastEncoder(self.trunk, dtype)
        stems = {n: FastStem(s, dtype) for n, s in self.stems.items()}
        return SeparatorModel.from_stems(stems, trunk, self.mask).eval()

    def stages(self) -> list[Stage]:
        """`forward` as a chain of steps: mixture `Tensor[B x C x T]` → (shared layout: the trunk's
        latents `Tensor[B x C x E x F]` →) codes `LongTensor[B x S x C x F]` → stems `Tensor[B x S x C x T]`."""
        hop, count = self.hop_length(), len(self.stems)
        if len({cfg.hop_length for cfg in self.configs.values()}) > 1:  # codes of unequal rates: one step
            reach = max(cfg.context_samples() for cfg in self.configs.values())
            return [Stage("separate", self._whole, hop, hop, _frames(reach, hop), 2 * count)]
        coder = _frames(max(cfg.encoder_reach() for cfg in self.configs.values()), hop)
        decode = Stage("decode", self._decode, 1, hop, coder, count)
        if self.trunk is None:
            return [Stage("encode", self._encode, hop, 1, coder, count), decode]
        return [Stage("trunk", self._trunk, hop, 1, _frames(self.trunk.cfg.encoder_reach(), hop), 1),
                Stage("heads", self._encode, 1, 1, self.head_config.reach_frames(), count), decode]

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x C x T]` mixture (T a multiple of `hop_length()`) → `Tensor[B x S x C x T]` stems,
        S in `stem_names` order."""
        if mixture.dim() != 3 or mixture.shape[-1] % self.hop_length() != 0:
            raise ShapeError(f"expected a mixture [B x C x T] with T a multiple of {self.hop_length()}, "
                             f"got {tuple(mixture.shape)}")
        x = mixture
        for stage in self.stages():
            x = stage.run(x)
        return x.to(mixture.dtype)

    def _trunk(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x C x T]` → the trunk's latents `Tensor[B x C x E x T/hop]`."""
        batch, channels, length = mixture.shape
        z = self.trunk(mixture.reshape(batch * channels, 1, length))
        return z.reshape(batch, channels, *z.shape[1:])

    def _encode(self, source: torch.Tensor) -> torch.Tensor:
        """Mixture `Tensor[B x C x T]` (per-stem layout) or trunk latents `Tensor[B x C x E x F]`
        → codes `LongTensor[B x S x C x F]`."""
        batch, channels = source.shape[:2]
        folded = source.reshape(batch * channels, *source.shape[2:])
        if self.trunk is None:
            folded = folded.unsqueeze(1)  # mono audio [B*C x 1 x T]
        elif isinstance(self.trunk, FastEncoder):  # the heads' channels-last layout, made once for all
            folded = folded.unsqueeze(2).contiguous(memory_format=torch.channels_last).squeeze(2)
        codes = torch.stack([stem.encode(folded) for stem in self.stems.values()], dim=1)  # [B*C x S x F]
        return codes.reshape(batch, channels, *codes.shape[1:]).transpose(1, 2)

    def _decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `LongTensor[B x S x C x F]` → stems `Tensor[B x S x C x F*hop]` (float32)."""
        batch, _, channels, frames = codes.shape
        return torch.stack([stem.decode(codes[:, i].reshape(batch * channels, frames)).reshape(batch, channels, -1)
                            for i, stem in enumerate(self.stems.values())], dim=1)

    def _whole(self, mixture: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x C x T]` → `Tensor[B x S x C x T]`, each stem end to end (stems of unequal hops)."""
        batch, channels, length = mixture.shape
        mono = mixture.reshape(batch * channels, 1, length)
        return torch.stack([stem(mono).float().reshape(batch, channels, length) for stem in self.stems.values()], 1)


def _frames(samples: int, hop: int) -> int:
    """A reach in samples as whole frames, plus one: a frame's own samples may start up to a frame away."""
    return -(-samples // hop) + 1
