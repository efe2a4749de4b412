from .baselines import ideal_ratio_mask, mix4
from .metrics import bss_eval, mdx_sdr
from .run import evaluate, separator_estimator

__all__ = ["evaluate", "separator_estimator", "mdx_sdr", "bss_eval", "ideal_ratio_mask", "mix4"]
