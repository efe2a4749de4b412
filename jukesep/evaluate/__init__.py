from .baselines import ideal_ratio_mask, mix4
from .metrics import bss_eval, mdx_sdr
from .run import evaluate

__all__ = ["evaluate", "mdx_sdr", "bss_eval", "ideal_ratio_mask", "mix4"]
