"""Evaluation. Imported on first use (PEP 562), so that `jukesep evaluate --help` does not pay for torch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .baselines import ideal_ratio_mask, mix4
    from .metrics import bss_eval, mdx_sdr
    from .run import evaluate

_LAZY = {"ideal_ratio_mask": ".baselines", "mix4": ".baselines", "bss_eval": ".metrics", "mdx_sdr": ".metrics",
         "evaluate": ".run"}

__all__ = ["evaluate", "mdx_sdr", "bss_eval", "ideal_ratio_mask", "mix4"]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
