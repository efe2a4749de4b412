"""Training. `train`, `train_step` and friends (torch) are imported on first use (PEP 562); the
config alone stays light for the command line."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .config import PRESETS, TrainConfig

if TYPE_CHECKING:
    from .loop import train
    from .step import ParamEMA, StepResult, train_step

_LAZY = {"train": ".loop", "train_step": ".step", "StepResult": ".step", "ParamEMA": ".step"}

__all__ = ["TrainConfig", "PRESETS", "train", "train_step", "StepResult", "ParamEMA"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
