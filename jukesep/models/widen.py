"""A wider copy of a trained encoder that computes the same function (Net2Net-style widening).

Each conv keeps its trained weights in its first channels. The added channels read every input
with fresh random weights, but no original channel reads them (their outgoing weights start at
zero), so the wide encoder's output equals the narrow one's until training moves those zeros.
Gradients reach them because the added channels are active from the start.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ..errors import JukesepError
from .vqvae import Encoder


def widen_encoder(narrow: Encoder, width: int) -> Encoder:
    """`narrow` with `width` channels inside (its latent width unchanged); same function at start.
    The added channels' weights come from torch's global generator (seeded by the training run)."""
    if width < narrow.cfg.width:
        raise JukesepError(f"a trunk {width} wide cannot start from an encoder {narrow.cfg.width} wide")
    wide = Encoder(dataclasses.replace(narrow.cfg, width=width))
    old_convs = [m for m in narrow.modules() if isinstance(m, nn.Conv1d)]
    new_convs = [m for m in wide.modules() if isinstance(m, nn.Conv1d)]
    with torch.no_grad():
        for old, new in zip(old_convs, new_convs, strict=True):
            out_ch, in_ch = old.weight.shape[:2]
            new.weight[:out_ch].zero_()
            new.weight[:out_ch, :in_ch].copy_(old.weight)
            if old.bias is not None:
                new.bias[:out_ch].copy_(old.bias)
    return wide
