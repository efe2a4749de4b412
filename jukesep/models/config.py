"""The VQ-VAE architecture as an explicit, frozen config. Defaults are Jukebox 5b's level 0."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import CheckpointError

LIMITS = {"width": 2048, "depth": 64, "down_t": 12, "stride_t": 16, "emb_width": 2048, "codebook_size": 65536,
          "dilation_growth_rate": 16, "input_channels": 8, "sample_rate": 768000}
MAX_M_CONV = 16.0
MAX_HOP = 1 << 16
MAX_PARAMETERS = 200_000_000  # an encoder + decoder; Jukebox's level 0 has 0.9 M
MAX_CONTEXT_SAMPLES = 60 * 768000  # one minute at the highest rate


def _check_ints(config, limits: dict[str, int]) -> None:
    """Each named field an integer from 1 to its limit (a bool is not an integer here)."""
    for name, high in limits.items():
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise ValueError(f"{type(config).__name__}.{name} must be an integer from 1 to {high}, got {value!r}")


class _Serialised:
    """A config dataclass as the plain mapping a checkpoint stores, and back."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict):
        """The config from a checkpoint's mapping; CheckpointError on anything odd."""
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


@dataclass(frozen=True)
class VQVAEConfig(_Serialised):
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
        # Upper bounds keep a hostile or mistyped config (e.g. in a downloaded checkpoint) from
        # asking for gigabytes: each is far above any sensible model.
        _check_ints(self, LIMITS)
        if self.dilation_cycle is not None and (not isinstance(self.dilation_cycle, int)
                                                or not 1 <= self.dilation_cycle <= LIMITS["depth"]):
            raise ValueError(f"VQVAEConfig.dilation_cycle must be None or 1..{LIMITS['depth']}, "
                             f"got {self.dilation_cycle!r}")
        if not (isinstance(self.m_conv, (int, float)) and 0.0 < self.m_conv <= MAX_M_CONV):
            raise ValueError(f"VQVAEConfig.m_conv must be in (0, {MAX_M_CONV}], got {self.m_conv!r}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"VQVAEConfig.ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.approx_parameters() > MAX_PARAMETERS:
            raise ValueError(f"VQVAEConfig: about {self.approx_parameters():,} parameters is more than the "
                             f"{MAX_PARAMETERS:,} jukesep accepts")
        if self.hop_length > MAX_HOP or self.context_samples() > MAX_CONTEXT_SAMPLES:
            raise ValueError(f"VQVAEConfig: hop {self.hop_length} or receptive field {self.context_samples()} "
                             f"samples is beyond what any chunk could hold")

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame."""
        return self.stride_t ** self.down_t

    def approx_parameters(self) -> int:
        """Encoder + decoder weights, roughly (the residual convs dominate)."""
        inner = int(self.m_conv * self.width)
        per_block = 3 * self.width * inner + inner * self.width
        return 2 * self.down_t * (self.depth * per_block + 2 * self.stride_t * self.width * self.width) \
            + self.codebook_size * self.emb_width

    def dilations(self) -> list[int]:
        """Dilations of the residual blocks of one encoder down-sampling step."""
        return [self.dilation_growth_rate ** (d if self.dilation_cycle is None else d % self.dilation_cycle)
                for d in range(self.depth)]

    def context_samples(self) -> int:
        """One-sided receptive field of encode → decode, in audio samples (an upper bound).

        Audio further than this from an output sample cannot change it, so chunks padded with this
        much context on each side give exactly the whole-signal result.
        """
        # The decoder mirrors the encoder; its output conv reaches one sample each side.
        return 2 * self.encoder_reach() + 1

    def encoder_reach(self) -> int:
        """One-sided receptive field of the encoder (or of the decoder), in audio samples."""
        kernel_reach = self.stride_t  # a (2s, stride s, pad s//2) conv reaches s input steps each side
        per_step = sum(self.dilations())  # each dilated kernel-3 conv reaches d frames each side
        one_way = 0
        for step in range(self.down_t):
            jump_in, jump_out = self.stride_t ** step, self.stride_t ** (step + 1)
            one_way += kernel_reach * jump_in + per_step * jump_out
        return one_way + self.hop_length  # + the kernel-3 conv at the latent rate


HEAD_LIMITS = {"width": 2048, "depth": 64, "dilation_growth_rate": 16}


@dataclass(frozen=True)
class HeadConfig(_Serialised):
    """A stem's head in the shared layout: residual dilated convs at the latent rate that map the
    mixture's latents (the shared encoder's output) onto the stem's latent space."""
    width: int = 32  # channels inside the head
    depth: int = 8  # residual blocks; block i has dilation dilation_growth_rate ** i
    dilation_growth_rate: int = 3  # (the defaults are the shipped model's: a reach of 0.6 s at hop 8)

    def __post_init__(self):
        _check_ints(self, HEAD_LIMITS)
        if self.approx_parameters() > MAX_PARAMETERS:
            raise ValueError(f"HeadConfig: about {self.approx_parameters():,} parameters is more than "
                             f"the {MAX_PARAMETERS:,} jukesep accepts")
        if self.reach_frames() > 1 << 16:
            raise ValueError("HeadConfig: the head's receptive field is beyond what any chunk could hold")

    def dilations(self) -> list[int]:
        return [self.dilation_growth_rate ** d for d in range(self.depth)]

    def approx_parameters(self) -> int:
        """One head's weights, roughly (its residual blocks)."""
        return self.depth * 4 * self.width ** 2

    def reach_frames(self) -> int:
        """One-sided receptive field in latent frames: the kernel-3 convs in and out, and the blocks."""
        return 2 + sum(self.dilations())


MASK_LIMITS = {"hidden": 4096, "bins": 2049, "layers": 16}
MAX_MASK_REACH = 64


@dataclass(frozen=True)
class MaskConfig(_Serialised):
    """The learned mask (models/mask.py), which corrects the soft mask built from the model's stems
    in each STFT frame: `reach` 0, an MLP over the frame's low `bins` bins at once; `reach` k ≥ 1, one
    small rule shared by every bin that sees the k bins on each side (it cannot learn the spectra of
    particular instruments). Bins from `bins` up keep the plain soft mask."""
    hidden: int = 256  # units (channels) of each hidden layer
    bins: int = 1024  # STFT bins it corrects, from 0 Hz (1024 of 2049: up to 11 kHz at 44.1 kHz)
    layers: int = 2  # hidden layers
    reach: int = 0  # 0: an MLP over whole frames; k: a rule shared by all bins, seeing ±k bins

    def __post_init__(self):
        _check_ints(self, MASK_LIMITS)
        if not isinstance(self.reach, int) or isinstance(self.reach, bool) or not 0 <= self.reach <= MAX_MASK_REACH:
            raise ValueError(f"MaskConfig.reach must be an integer from 0 to {MAX_MASK_REACH}, got {self.reach!r}")

    def approx_parameters(self, stems: int) -> int:
        """Its weights for `stems` stems, roughly."""
        seen, corrected = (self.bins, self.bins) if self.reach == 0 else (2 * self.reach + 1, 1)
        return ((stems + 1) * seen + self.layers * self.hidden + stems * corrected) * self.hidden
