from .bottleneck import BottleneckBlock
from .config import VQVAEConfig
from .separator import SeparatorModel, StemModel
from .vqvae import VQVAE, Decoder, Encoder

__all__ = ["VQVAEConfig", "VQVAE", "Encoder", "Decoder", "BottleneckBlock", "StemModel", "SeparatorModel"]
