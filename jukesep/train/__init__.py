"""Training. `train`, `train_step` and friends (torch) are imported on first use (PEP 562); the
config alone stays light for the command line."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy
from .config import PRESETS, TrainConfig

if TYPE_CHECKING:
    from .loop import train
    from .step import ParamEMA, StepResult, train_step

_LAZY = {"train": ".loop", "train_step": ".step", "StepResult": ".step", "ParamEMA": ".step"}

__all__ = ["TrainConfig", "PRESETS", "train", "train_step", "StepResult", "ParamEMA"]

__getattr__, __dir__ = lazy.names(__name__, _LAZY)
