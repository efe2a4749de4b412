"""A faster inference form of `StemModel`: the same weights run as 2-D convolutions (kernel 1×k) in
channels-last layout, which oneDNN executes much faster on CPU (measured here: about 1.4× in
float32 and 3–4× in bfloat16 per dilated conv). Same arithmetic, same results (to float rounding).

On CPU, two fusions cut the passes over full-size activations, which cost as much as the
convolutions themselves at these widths:
- each residual block's inner ReLU and its residual sum run inside oneDNN's convolutions;
- a decoder's last up-sampling conv and its output conv (two linear maps, nothing between) are one
  transposed conv, so the emb_width-channel signal at the audio rate is never made.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ShapeError
from .vqvae import ResConv1DBlock


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


# oneDNN's fused convolutions (the ops inductor emits) are private to torch: without them the
# plain ops run.
_FUSED_OPS = all(hasattr(torch.ops.mkldnn, op) for op in ("_convolution_pointwise", "_convolution_pointwise_"))


def _fuses(x: torch.Tensor) -> bool:
    """Whether the oneDNN fused convolutions apply: CPU, no autograd, not being traced (a compiler
    does its own fusion; export keeps to standard ops)."""
    return (_FUSED_OPS and not torch.compiler.is_compiling() and x.device.type == "cpu"
            and not torch.is_grad_enabled() and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


def _conv_args(conv: nn.Conv2d) -> tuple:
    return (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)


class FusedResBlock(nn.Module):
    """Inference twin of a `ResConv1DBlock` with res_scale 1: `x + conv_b(relu(conv_a(relu(x))))` on
    `Tensor[B x W x 1 x T]` (channels-last). On CPU the inner ReLU is a post-op of conv_a and the sum
    one of conv_b. `overwrite`: write the sum into `x`, which must be a temporary that nothing else
    reads (the previous block's output), saving a full-size allocation."""

    def __init__(self, block: ResConv1DBlock, overwrite: bool):
        super().__init__()
        self.conv_a, self.conv_b = _as_2d(block.model[1]), _as_2d(block.model[3])
        self.overwrite = overwrite

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(x)
        if not _fuses(x):
            return x + self.conv_b(torch.relu_(self.conv_a(h)))
        a, b = self.conv_a, self.conv_b
        h = torch.ops.mkldnn._convolution_pointwise(h, a.weight, a.bias, *_conv_args(a), "relu", [], "")
        add = (b.weight, b.bias, *_conv_args(b), "add", 1.0, None, [], None)
        if self.overwrite:
            return torch.ops.mkldnn._convolution_pointwise_.binary(x, h, *add)
        return torch.ops.mkldnn._convolution_pointwise.binary(h, x, *add)


def _fuse_res_blocks(module: nn.Module) -> None:
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        for i, child in enumerate(seq):
            if isinstance(child, ResConv1DBlock) and child.res_scale == 1.0:
                seq[i] = FusedResBlock(child, overwrite=i > 0 and isinstance(seq[i - 1], FusedResBlock))


def convs_to_2d(module: nn.Module) -> nn.Module:
    """A copy of `module` (copied once) with every Conv1d / ConvTranspose1d replaced by its 1×k 2-D
    twin, every residual block of res_scale 1 by a `FusedResBlock`, and every ReLU that follows a
    convolution made in-place (inference only: no autograd)."""
    module = copy.deepcopy(module)
    _fuse_res_blocks(module)
    _replace_convs(module)
    for block in module.modules():
        if isinstance(block, nn.Sequential):
            for before, after in zip(block, list(block)[1:]):
                if isinstance(after, nn.ReLU) and isinstance(before, (nn.Conv2d, nn.ConvTranspose2d)):
                    after.inplace = True  # the conv's output is used by nothing else
    return module.to(memory_format=torch.channels_last)


class FusedUpsampleOut(nn.Module):
    """A decoder's last up-sampling conv, `ConvTranspose(W → E, kernel 2s, stride s, padding p)`, and
    its output conv, `Conv(E → Q, kernel 3, padding 1)`, as one `ConvTranspose(W → Q, kernel 2s + 2,
    padding p + 1)`: `Tensor[B x W x 1 x F]` → `Tensor[B x Q x 1 x F*s]` (channels-last), measured
    8x faster than the pair on a 4-s chunk (AVX2). The output conv's zero padding hides the up-sampled
    signal one step beyond each end, which the merged kernel sees; those two samples are corrected."""

    def __init__(self, up: nn.ConvTranspose2d, out: nn.Conv2d):
        super().__init__()
        w_up, w_out = up.weight.double()[:, :, 0], out.weight.double()[:, :, 0]  # [W x E x K], [Q x E x 3]
        width, kernel = w_up.shape[0], w_up.shape[-1]
        b_up = up.bias.double() if up.bias is not None else w_up.new_zeros(w_up.shape[1])
        b_out = out.bias.double() if out.bias is not None else w_out.new_zeros(w_out.shape[0])
        # tap j of the output conv reads the up-sampled signal at offset j - 1
        taps = [torch.einsum("wek,qe->wqk", w_up, w_out[:, :, j]) for j in range(3)]
        merged = w_up.new_zeros(width, w_out.shape[0], kernel + 2)
        for j, tap in enumerate(taps):
            merged[:, :, 2 - j:2 - j + kernel] += tap
        self.stride, self.padding = up.stride[1], up.padding[1]
        self.context = -(-(kernel + self.padding) // self.stride) + 1  # input frames that reach an edge
        dtype = up.weight.dtype
        bias = b_out + w_out.sum(-1) @ b_up
        # With an output of exactly stride x the input (even strides), the merged transposed conv is
        # run as a plain conv with one output channel per phase: oneDNN's transposed conv to so few
        # channels was measured 3x slower (AVX2).
        self.phased = kernel + 2 - 2 * (self.padding + 1) == self.stride
        if self.phased:
            merged, bias = _phases(merged, self.stride, self.padding + 1), bias.repeat(self.stride)
        self.register_buffer("weight", merged.unsqueeze(2).to(dtype))
        self.register_buffer("bias", bias.to(dtype))
        # what the phantom samples at -1 (tap 0) and at the end (tap 2) add, to subtract them
        self.register_buffer("first_w", taps[0].unsqueeze(2).to(dtype))
        self.register_buffer("first_b", (w_out[:, :, 0] @ b_up).to(dtype))
        self.register_buffer("last_w", taps[2].unsqueeze(2).to(dtype))
        self.register_buffer("last_b", (w_out[:, :, 2] @ b_up).to(dtype))

    @staticmethod
    def fits(up: nn.Module, out: nn.Module) -> bool:
        """Whether `up` → `out` has the shape this fusion handles (every jukesep decoder does)."""
        return (isinstance(up, nn.ConvTranspose2d) and isinstance(out, nn.Conv2d) and up.groups == 1
                and out.groups == 1 and up.dilation[1] == 1 and up.output_padding[1] == 0 and up.padding[1] >= 1
                and out.kernel_size[1] == 3 and out.padding[1] == 1 and out.stride[1] == 1 and out.dilation[1] == 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride, pad = (1, self.stride), (0, self.padding - 1)
        if self.phased:  # [B x s*Q x 1 x F] channels-last is [B x F x s x Q] in memory: y's own layout
            y = F.conv2d(x, self.weight, self.bias, 1, (0, self.weight.shape[-1] // 2))
            batch, frames = y.shape[0], y.shape[-1]
            y = y.permute(0, 2, 3, 1).reshape(batch, 1, frames * self.stride, -1).permute(0, 3, 1, 2)
        else:
            y = F.conv_transpose2d(x, self.weight, self.bias, stride, (0, self.padding + 1))
        # with one step less padding, output 0 is position -1 and the last one is position T
        first = F.conv_transpose2d(x[..., :self.context], self.first_w, self.first_b, stride, pad)[..., 0]
        last = F.conv_transpose2d(x[..., -self.context:], self.last_w, self.last_b, stride, pad)[..., -1]
        y[..., 0] -= first
        y[..., -1] -= last
        return y


def _phases(weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """A transposed conv's weight `[W x Q x K]` (output length stride x input) → a plain conv's
    `[stride*Q x W x 2h+1]` whose output channel r*Q + q is output q's samples stride*m + r."""
    width, channels, kernel = weight.shape
    taps = []  # (phase, input offset u, transposed tap k): sample stride*m + r reads input m + u
    for r in range(stride):
        first, rest = divmod(r + padding, stride)
        taps += [(r, first - j, rest + j * stride) for j in range(-(-(kernel - rest) // stride))]
    half = max(abs(u) for _, u, _ in taps)
    out = weight.new_zeros(stride * channels, width, 2 * half + 1)
    for r, u, k in taps:
        out[r * channels:(r + 1) * channels, :, u + half] = weight[:, :, k].t()
    return out


def _fuse_decoder_out(decoder: nn.Sequential) -> None:
    """In a 2-D decoder twin `Sequential(level block, out conv)`, merge the level's last up-sampling
    conv with the out conv (when their shapes fit)."""
    last_step, out = decoder[0].model[-1], decoder[1]
    if FusedUpsampleOut.fits(last_step[-1], out):
        last_step[-1] = FusedUpsampleOut(last_step[-1], out)
        decoder[1] = nn.Identity()


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
        self.decoder = convs_to_2d(nn.Sequential(stem.decoder.level_blocks[0], stem.decoder.out))
        _fuse_decoder_out(self.decoder)
        self.decoder.to(dtype=dtype)
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
