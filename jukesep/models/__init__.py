"""The models. The torch modules are imported on first use (PEP 562), so that the configs, which
the command line needs for its flags, come without torch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .config import HeadConfig, VQVAEConfig

if TYPE_CHECKING:
    from .bottleneck import BottleneckBlock
    from .separator import SeparatorModel, StemModel
    from .vqvae import VQVAE, Decoder, Encoder

_LAZY = {"BottleneckBlock": ".bottleneck", "SeparatorModel": ".separator", "StemModel": ".separator",
         "VQVAE": ".vqvae", "Encoder": ".vqvae", "Decoder": ".vqvae"}

__all__ = ["VQVAEConfig", "HeadConfig", "VQVAE", "Encoder", "Decoder", "BottleneckBlock", "StemModel", "SeparatorModel"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
