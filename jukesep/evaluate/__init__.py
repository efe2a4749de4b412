"""Evaluation. Imported on first use (PEP 562), so that `jukesep evaluate --help` does not pay for torch."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .. import lazy

if TYPE_CHECKING:
    from .baselines import ideal_ratio_mask, mix4
    from .metrics import bss_eval, mdx_sdr
    from .run import evaluate

_LAZY = {"ideal_ratio_mask": ".baselines", "mix4": ".baselines", "bss_eval": ".metrics", "mdx_sdr": ".metrics",
         "evaluate": ".run"}

__all__ = ["evaluate", "mdx_sdr", "bss_eval", "ideal_ratio_mask", "mix4"]

__getattr__, __dir__ = lazy.names(__name__, _LAZY)
