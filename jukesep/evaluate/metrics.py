"""Separation metrics: the MDX song-level SDR (what the paper reports) and BSSEval v4 (museval)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import JukesepError, ShapeError

EPS = 1e-7


def mdx_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10((Σs² + ε) / (Σ(s−ŝ)² + ε)) over all channels and samples; `[C x T]` pair → dB.

    The ε = 1e-7 guards keep a silent reference with a silent estimate at 0 dB instead of NaN.
    """
    if reference.shape != estimate.shape:
        raise ShapeError(f"reference {reference.shape} and estimate {estimate.shape} differ in shape")
    ref, est = reference.astype(np.float64), estimate.astype(np.float64)
    return float(10 * np.log10((np.sum(ref ** 2) + EPS) / (np.sum((ref - est) ** 2) + EPS)))


def bss_eval(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], rate: int) -> dict:
    """BSSEval v4 with museval on 1-s windows. Returns {stem: {SDR, SIR, ISR, SAR: median over
    frames (None if every frame is undefined, e.g. a silent reference), "frames": [SDR per frame]}}."""
    stems = list(references)
    refs = np.stack([references[s].T for s in stems]).astype(np.float64)  # [stems x T x C]
    ests = np.stack([estimates[s].T for s in stems]).astype(np.float64)
    # what museval.evaluate(refs, ests, win=rate, hop=rate) computes (v4, same lengths)
    sdr, isr, sir, sar, _ = museval_metrics().bss_eval(refs, ests, compute_permutation=False, window=rate, hop=rate,
                                                        framewise_filters=False, bsseval_sources_version=False)
    out = {}
    for i, stem in enumerate(stems):
        values = {name: _nanmedian(m[i]) for name, m in (("SDR", sdr), ("SIR", sir), ("ISR", isr), ("SAR", sar))}
        values["frames"] = [None if not np.isfinite(v) else round(float(v), 3) for v in sdr[i]]
        out[stem] = values
    return out


def museval_metrics():
    """The `museval.metrics` module (BSSEval v4), loaded without `museval/__init__`: that imports
    musdb → stempeg, and stempeg refuses to import on a machine without a system ffmpeg."""
    import importlib.util
    import sys
    name = "jukesep._museval_metrics"
    if name not in sys.modules:
        package = importlib.util.find_spec("museval")
        if package is None or package.origin is None:
            raise JukesepError("BSSEval needs museval: pip install museval (or pass --no-bss)")
        spec = importlib.util.spec_from_file_location(name, Path(package.origin).parent / "metrics.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


def _nanmedian(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None
