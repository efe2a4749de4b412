"""Separation metrics: the MDX song-level SDR (what the paper reports) and BSSEval v4 (museval)."""
from __future__ import annotations

import numpy as np

EPS = 1e-7


def mdx_sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """10·log10((Σs² + ε) / (Σ(s−ŝ)² + ε)) over all channels and samples; `[C x T]` pair → dB.

    The ε = 1e-7 guards keep a silent reference with a silent estimate at 0 dB instead of NaN.
    """
    assert reference.shape == estimate.shape, (reference.shape, estimate.shape)
    ref, est = reference.astype(np.float64), estimate.astype(np.float64)
    return float(10 * np.log10((np.sum(ref ** 2) + EPS) / (np.sum((ref - est) ** 2) + EPS)))


def bss_eval(references: dict[str, np.ndarray], estimates: dict[str, np.ndarray], rate: int) -> dict:
    """BSSEval v4 with museval on 1-s windows. Returns {stem: {SDR, SIR, ISR, SAR: median over
    frames (None if every frame is undefined, e.g. a silent reference), "frames": [SDR per frame]}}."""
    import museval

    stems = list(references)
    refs = np.stack([references[s].T for s in stems]).astype(np.float64)  # [stems x T x C]
    ests = np.stack([estimates[s].T for s in stems]).astype(np.float64)
    sdr, isr, sir, sar = museval.evaluate(refs, ests, win=rate, hop=rate)
    out = {}
    for i, stem in enumerate(stems):
        values = {name: _nanmedian(m[i]) for name, m in (("SDR", sdr), ("SIR", sir), ("ISR", isr), ("SAR", sar))}
        values["frames"] = [None if not np.isfinite(v) else round(float(v), 3) for v in sdr[i]]
        out[stem] = values
    return out


def _nanmedian(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else None
