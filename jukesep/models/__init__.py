"""The models. The torch modules are imported on first use (PEP 562), so that the configs, which
the command line needs for its flags, come without torch."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy
from .config import HeadConfig, VQVAEConfig

if TYPE_CHECKING:
    from .bottleneck import BottleneckBlock
    from .separator import SeparatorModel, StemModel
    from .vqvae import VQVAE, Decoder, Encoder

_LAZY = {"BottleneckBlock": ".bottleneck", "SeparatorModel": ".separator", "StemModel": ".separator",
         "VQVAE": ".vqvae", "Encoder": ".vqvae", "Decoder": ".vqvae"}

__all__ = ["VQVAEConfig", "HeadConfig", "VQVAE", "Encoder", "Decoder", "BottleneckBlock", "StemModel", "SeparatorModel"]

__getattr__, __dir__ = lazy.names(__name__, _LAZY)
