from .config import PRESETS, TrainConfig
from .loop import train
from .step import ParamEMA, StepResult, train_step

__all__ = ["TrainConfig", "PRESETS", "train", "train_step", "StepResult", "ParamEMA"]
