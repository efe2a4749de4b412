"""A faster inference form of `StemModel`: the same weights run as 2-D convolutions (kernel 1×k) in
channels-last layout, which oneDNN executes much faster on CPU (measured here: about 1.4× in
float32 and 3–4× in bfloat16 per dilated conv). Same arithmetic, same results (to float rounding)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..errors import ShapeError


def _as_2d(conv: nn.Module) -> nn.Module:
    if isinstance(conv, nn.Conv1d):
        new = nn.Conv2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), (1, conv.stride[0]),
                        (0, conv.padding[0]), (1, conv.dilation[0]), conv.groups, conv.bias is not None)
    else:
        new = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), (1, conv.stride[0]),
                                 (0, conv.padding[0]), (0, conv.output_padding[0]), conv.groups,
                                 conv.bias is not None, (1, conv.dilation[0]))
    with torch.no_grad():
        new.weight.copy_(conv.weight.unsqueeze(2))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.to(conv.weight.device)


def _replace_convs(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Conv1d, nn.ConvTranspose1d)):
            setattr(module, name, _as_2d(child))
        else:
            _replace_convs(child)


def convs_to_2d(module: nn.Module) -> nn.Module:
    """A copy of `module` (copied once) with every Conv1d / ConvTranspose1d replaced by its 1×k 2-D
    twin, and every ReLU that follows a convolution made in-place (inference only: no autograd)."""
    module = copy.deepcopy(module)
    _replace_convs(module)
    for block in module.modules():
        if isinstance(block, nn.Sequential):
            for before, after in zip(block, list(block)[1:]):
                if isinstance(after, nn.ReLU) and isinstance(before, (nn.Conv2d, nn.ConvTranspose2d)):
                    after.inplace = True  # the conv's output is used by nothing else
    return module.to(memory_format=torch.channels_last)


class FastEncoder(nn.Module):
    """Inference-only twin of an `Encoder`: `Tensor[B x 1 x T]` → `Tensor[B x E x T/hop]` in `dtype`
    (the input's when None)."""

    def __init__(self, encoder: nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = encoder.cfg
        self.model = convs_to_2d(encoder.level_blocks[0]).to(dtype=dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != 1 or x.shape[-1] % self.cfg.hop_length != 0:
            raise ShapeError(f"expected mono audio [B x 1 x T] with T a multiple of {self.cfg.hop_length}, "
                             f"got {tuple(x.shape)}")
        # [B x 1 x 1 x T]
        h = x.to(self.dtype or x.dtype).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return self.model(h).squeeze(2)


class FastStem(nn.Module):
    """Inference-only twin of a `StemModel` (`Tensor[B x 1 x T]` → `Tensor[B x 1 x T]`) or of a
    `SharedStem` (mixture latents `Tensor[B x E x F]` → `Tensor[B x 1 x F*hop]`).

    With `dtype=torch.bfloat16` the encoder, head and decoder hold bfloat16 weights (cast once, not
    at every call as autocast does) while the codebook and its search stay float32; the output has
    the input's dtype."""

    def __init__(self, stem: nn.Module, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = stem.cfg
        shared = hasattr(stem, "head")
        self.encoder = None if shared else FastEncoder(stem.encoder, dtype)
        self.head = convs_to_2d(stem.head).to(dtype=dtype) if shared else None
        self.decoder = convs_to_2d(nn.Sequential(stem.decoder.level_blocks[0], stem.decoder.out)).to(dtype=dtype)
        self.quantizer = stem.quantizer
        self.dtype = dtype

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture audio `Tensor[B x 1 x T]` (or mixture latents) → the stem's codes `LongTensor[B x F]`."""
        if self.encoder is not None:
            return self.quantizer.quantize(self.encoder(x))
        h = x.to(self.dtype or x.dtype).unsqueeze(2).contiguous(memory_format=torch.channels_last)
        return self.quantizer.quantize((self.head.skip(h) + self.head.branch(h)).squeeze(2))  # StemHead's sum

    def decode(self, codes: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Codes `LongTensor[B x F]` → stem audio `Tensor[B x 1 x F*hop]` in `dtype`."""
        z_q = self.quantizer.dequantize(codes).to(self.dtype or dtype)
        return self.decoder(z_q.unsqueeze(2).contiguous(memory_format=torch.channels_last)).squeeze(2).to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.dtype)
