from .config import PRESETS, TrainConfig
from .loop import train

__all__ = ["TrainConfig", "PRESETS", "train"]
