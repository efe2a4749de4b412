"""The VQ-VAE architecture as an explicit, frozen config. Defaults are Jukebox 5b's level 0."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import CheckpointError


@dataclass(frozen=True)
class VQVAEConfig:
    width: int = 64  # channels of every conv inside encoder/decoder
    depth: int = 8  # residual blocks per down-sampling step
    down_t: int = 3  # down-sampling steps
    stride_t: int = 2  # stride of each step; hop length = stride_t ** down_t
    emb_width: int = 64  # latent (and codebook vector) width
    codebook_size: int = 2048  # Jukebox's l_bins
    dilation_growth_rate: int = 3
    dilation_cycle: int | None = None
    m_conv: float = 1.0  # width multiplier inside a residual block
    res_scale: bool = False  # scale residual branches by 1/sqrt(depth) (False in Jukebox 5b)
    input_channels: int = 1  # mono; stereo is processed as a batch of mono signals
    sample_rate: int = 44100
    ema_decay: float = 0.99  # EMA k-means decay of the codebook
    revival_threshold: float = 1.0  # codes with less EMA usage than this are re-seeded from data

    def __post_init__(self):
        for name in ("width", "depth", "down_t", "stride_t", "emb_width", "codebook_size",
                     "dilation_growth_rate", "input_channels", "sample_rate"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"VQVAEConfig.{name} must be a positive integer, got {value!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"VQVAEConfig.ema_decay must be in (0, 1), got {self.ema_decay}")

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame."""
        return self.stride_t ** self.down_t

    def dilations(self) -> list[int]:
        """Dilations of the residual blocks of one encoder down-sampling step."""
        return [self.dilation_growth_rate ** (d if self.dilation_cycle is None else d % self.dilation_cycle)
                for d in range(self.depth)]

    def context_samples(self) -> int:
        """One-sided receptive field of encode → decode, in audio samples (an upper bound).

        Audio further than this from an output sample cannot change it, so chunks padded with this
        much context on each side give exactly the whole-signal result.
        """
        kernel_reach = self.stride_t  # a (2s, stride s, pad s//2) conv reaches s input steps each side
        per_step = sum(self.dilations())  # each dilated kernel-3 conv reaches d frames each side
        one_way = 0
        for step in range(self.down_t):
            jump_in, jump_out = self.stride_t ** step, self.stride_t ** (step + 1)
            one_way += kernel_reach * jump_in + per_step * jump_out
        one_way += self.hop_length  # the kernel-3 conv at the latent rate
        # The decoder mirrors the encoder; its output conv reaches one sample each side.
        return 2 * one_way + 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VQVAEConfig":
        if not isinstance(data, dict):
            raise CheckpointError(f"model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"unknown model config fields: {', '.join(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"invalid model config: {exc}") from None
