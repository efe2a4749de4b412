from .bottleneck import BottleneckBlock
from .config import HeadConfig, VQVAEConfig
from .separator import SeparatorModel, StemModel
from .vqvae import VQVAE, Decoder, Encoder

__all__ = ["VQVAEConfig", "HeadConfig", "VQVAE", "Encoder", "Decoder", "BottleneckBlock", "StemModel", "SeparatorModel"]
