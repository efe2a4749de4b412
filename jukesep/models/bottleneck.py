"""Vector quantiser of Jukebox's level 0, with an EMA k-means codebook.

Only the codebook `k` is a persistent buffer (it is the one bottleneck key in an official
checkpoint). The EMA statistics are non-persistent buffers: they follow `.to(device)` and the
training code saves them through `ema_state()` so that a resumed run continues exactly.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import distrib
from ..errors import ShapeError
from .config import VQVAEConfig

# Distances are computed in blocks of rows, so the [rows x codebook] matrix stays bounded: 4 MB on
# CPU, where it then stays in cache between the product and the argmin (measured 2.5x faster than
# 64 MB blocks), and 256 MB on a GPU (fewer, larger launches).
_BLOCK_ELEMENTS = {"cuda": 1 << 26}
_DEFAULT_BLOCK_ELEMENTS = 1 << 20
# The first minimum of a row is searched in two steps: the minimum of each group of this many
# codes (a vectorised reduction), then the first minimum among the group minima and inside the
# chosen group. torch's min-with-index over a row is a scalar loop; this is 2-3x faster (AVX2).
_GROUP = 32


class Quantized(NamedTuple):
    """What the quantiser returns in training (named, as descript-audio-codec does)."""
    codes: torch.Tensor  # LongTensor[B x F]
    z_q: torch.Tensor  # Tensor[B x W x F], straight-through: gradients flow to the encoder
    commit_loss: torch.Tensor  # scalar
    metrics: dict  # name -> scalar tensor (perplexity; codes_used, codebook_change in training)


def _flatten(z: torch.Tensor, width: int) -> torch.Tensor:
    """`Tensor[B x W x F]` → `Tensor[B*F x W]`."""
    if z.dim() != 3 or z.shape[1] != width:
        raise ShapeError(f"expected latents [B x {width} x F], got {tuple(z.shape)}")
    return z.permute(0, 2, 1).reshape(-1, width)


def _first_min(d: torch.Tensor) -> torch.Tensor:
    """Index of the first minimum of each row, as `argmin(-1)`. `Tensor[N x K]` → `LongTensor[N]`."""
    n, k = d.shape
    if k % _GROUP or k < 2 * _GROUP:
        return d.min(-1).indices  # as argmin, measured 1.4x faster on CPU
    per_row = k // _GROUP
    # the first minimum lies in the first group whose minimum is the row's minimum
    group = d.view(n, per_row, _GROUP).amin(-1).min(-1).indices
    chosen = torch.arange(n, device=d.device) * per_row + group  # rows of d.view(-1, _GROUP)
    return group * _GROUP + d.view(-1, _GROUP).index_select(0, chosen).min(-1).indices


class BottleneckBlock(nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("k", torch.zeros(cfg.codebook_size, cfg.emb_width))
        self.register_buffer("k_sum", torch.zeros(cfg.codebook_size, cfg.emb_width), persistent=False)
        self.register_buffer("k_elem", torch.zeros(cfg.codebook_size), persistent=False)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool), persistent=False)

    # -- inference -------------------------------------------------------------------------
    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row. `Tensor[N x W]` → `LongTensor[N]`.

        Always float32, also under autocast: reduced precision flips near-tie code choices.
        """
        x, k = x.float(), self.k.float()
        k_norm = (k * k).sum(-1)
        out = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
        block = max(1, _BLOCK_ELEMENTS.get(x.device.type, _DEFAULT_BLOCK_ELEMENTS) // k.shape[0])
        with torch.autocast(x.device.type, enabled=False):
            for start in range(0, x.shape[0], block):
                rows = x[start:start + block]
                # ||x - k||^2 minus the constant ||x||^2
                out[start:start + rows.shape[0]] = _first_min(torch.addmm(k_norm, rows, k.t(), alpha=-2.0))
        return out

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Continuous latents `Tensor[B x W x F]` → codes `LongTensor[B x F]`."""
        codes = self.nearest(_flatten(z, self.cfg.emb_width))
        return codes.view(z.shape[0], z.shape[2])

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes `LongTensor[B x F]` → code vectors `Tensor[B x W x F]`."""
        if codes.dim() != 2 or codes.is_floating_point():
            raise ShapeError(f"expected integer codes [B x F], got {codes.dtype} {tuple(codes.shape)}")
        return F.embedding(codes, self.k).permute(0, 2, 1)

    # -- training --------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> Quantized:
        """`Tensor[B x W x F]` → `Quantized` (codes, straight-through z_q, commitment loss, metrics).

        In training mode the codebook is updated by EMA k-means (statistics summed over ranks).
        """
        x = _flatten(z, self.cfg.emb_width)
        if self.training and not bool(self.initialized):
            self._init_from(x.detach())
        codes = self.nearest(x.detach().float())
        z_q = self.dequantize(codes.view(z.shape[0], z.shape[2])).to(z.dtype)
        metrics = self._update(x.detach().float(), codes) if self.training else {}
        commit_loss = F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()
        probs = torch.bincount(codes, minlength=self.cfg.codebook_size).float() / codes.numel()
        metrics["perplexity"] = torch.exp(-(probs * torch.log(probs + 1e-10)).sum()).detach()
        return Quantized(codes.view(z.shape[0], z.shape[2]), z_q, commit_loss, metrics)

    def _random_rows(self, x: torch.Tensor) -> torch.Tensor:
        """`codebook_size` rows drawn from `x` (tiled with jitter if too few), identical on all ranks."""
        n_codes, width = self.k.shape
        if x.shape[0] < n_codes:
            reps = (n_codes + x.shape[0] - 1) // x.shape[0]
            x = x.repeat(reps, 1)
            x = x + torch.randn_like(x) * (0.01 / width ** 0.5)
        rows = x[torch.randperm(x.shape[0], device=x.device)[:n_codes]].contiguous()
        return distrib.broadcast(rows, 0)

    @torch.no_grad()
    def _init_from(self, x: torch.Tensor) -> None:
        # A codebook loaded from a checkpoint keeps its codes; an all-zero one (new model) is
        # seeded from data, because k-means started at zero never separates its codes.
        if not bool(self.k.abs().sum() > 0):
            self.k.copy_(self._random_rows(x.float()))
        self.k_sum.copy_(self.k)
        self.k_elem.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, codes: torch.Tensor) -> dict:
        mu, n_codes = self.cfg.ema_decay, self.cfg.codebook_size
        batch_elem = torch.bincount(codes, minlength=n_codes).to(x.dtype)
        batch_sum = torch.zeros_like(self.k_sum).index_add_(0, codes, x)
        distrib.all_reduce_sum(batch_elem)
        distrib.all_reduce_sum(batch_sum)
        revive = self._random_rows(x)
        old_k = self.k.clone()
        self.k_sum.mul_(mu).add_(batch_sum, alpha=1 - mu)
        self.k_elem.mul_(mu).add_(batch_elem, alpha=1 - mu)
        used = (self.k_elem >= self.cfg.revival_threshold).unsqueeze(1)
        means = self.k_sum / self.k_elem.clamp_min(1e-12).unsqueeze(1)
        self.k.copy_(torch.where(used, means, revive))
        # Unlike Jukebox, a revived code also restarts its statistics; otherwise its stale k_sum
        # drags it back to where it died as soon as data starts choosing it.
        self.k_sum.copy_(torch.where(used, self.k_sum, revive))
        self.k_elem.copy_(torch.where(used.squeeze(1), self.k_elem, torch.ones_like(self.k_elem)))
        return {"codes_used": used.sum().detach(), "codebook_change": (self.k - old_k).norm().detach()}

    def ema_state(self) -> dict:
        """What a training checkpoint needs beyond the state dict to resume the EMA exactly."""
        return {"k_sum": self.k_sum.clone(), "k_elem": self.k_elem.clone(), "initialized": self.initialized.clone()}

    def load_ema_state(self, state: dict) -> None:
        for name in ("k_sum", "k_elem", "initialized"):
            getattr(self, name).copy_(state[name])


class Bottleneck(nn.Module):
    """Holder whose only job is Jukebox's key layout: `bottleneck.level_blocks.0.k`."""

    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        self.level_blocks = nn.ModuleList([BottleneckBlock(cfg)])
