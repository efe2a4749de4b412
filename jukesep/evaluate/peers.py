"""Open-Unmix and HT-Demucs as baselines: trained on the same corpus with the same budget by
`jukesep baselines train`, scored by `jukesep evaluate --baseline openunmix:PATH|demucs:PATH`.

Their model classes come from the `openunmix` and `demucs` PyPI packages, installed without their
dependencies (their torchaudio pin would replace our torch build):
    pip install --no-deps openunmix==1.3.0 demucs==4.1.0 einops julius
`demucs.htdemucs` and `demucs.apply` never import torchaudio. `openunmix` imports it at import time
without using it in the model, STFT or Wiener filter, so while importing openunmix a stub stands in
for torchaudio (only when torchaudio is absent); any use of the stub raises.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..api import resolve_device
from ..atomic import atomic_torch_save
from ..data import Augment, ExcerptDataset, find_tracks
from ..defaults import STEMS
from ..errors import CheckpointError, JukesepError
from ..progress import Progress
from ..train.budget import Budget
from ..train.step import train_step

INSTALL = "pip install --no-deps openunmix==1.3.0 demucs==4.1.0 einops julius"
RATE = 44100


class _TorchaudioStub(types.ModuleType):
    def __getattr__(self, name: str):
        raise AttributeError(f"torchaudio.{name}: torchaudio is not installed (jukesep's import stub)")


def import_openunmix():
    """The `openunmix.model` module, imported without torchaudio."""
    stub = None
    if "torchaudio" not in sys.modules and importlib.util.find_spec("torchaudio") is None:
        stub = sys.modules["torchaudio"] = _TorchaudioStub("torchaudio")
    try:
        import openunmix.model as model
    except ImportError as exc:
        raise JukesepError(f"Open-Unmix is not installed ({exc}); {INSTALL}") from None
    finally:
        if stub is not None and sys.modules.get("torchaudio") is stub:
            del sys.modules["torchaudio"]
    return model


def import_demucs():
    try:
        from demucs.apply import apply_model
        from demucs.htdemucs import HTDemucs
    except ImportError as exc:
        raise JukesepError(f"Demucs is not installed ({exc}); {INSTALL}") from None
    return HTDemucs, apply_model


# -- model construction (configs are saved in the baseline file) ----------------------------------

def build_openunmix(config: dict) -> dict:
    unmix = import_openunmix()
    return {t: unmix.OpenUnmix(nb_bins=config["n_fft"] // 2 + 1, nb_channels=2, hidden_size=config["hidden"],
                               max_bin=config["max_bin"]) for t in config["targets"]}


def build_demucs(config: dict):
    HTDemucs, _ = import_demucs()
    return HTDemucs(sources=list(config["targets"]), audio_channels=2, samplerate=RATE, segment=config["segment"],
                    channels=config["channels"], depth=config["depth"], t_layers=config["t_layers"])


OPENUNMIX_DEFAULT = {"n_fft": 4096, "hop": 1024, "hidden": 512, "max_bin": 1487, "targets": list(STEMS)}
DEMUCS_DEFAULT = {"segment": 4.0, "channels": 48, "depth": 4, "t_layers": 5, "targets": list(STEMS)}


# -- training ------------------------------------------------------------------------------------

def train_peer(kind: str, data, out: Path, steps: int, minutes: float = 0.0, batch: int = 4,
               excerpt: float = 4.0, lr: float = 1e-3, seed: int = 0, config: dict | None = None,
               device: str = "cpu", progress: bool = True, resume: bool = False, ckpt_every: int = 200) -> dict:
    """Train Open-Unmix (one model per stem, jointly stepped) or HT-Demucs on `data`'s train split
    for `steps` steps (in all) or `minutes` of wall time (this call), whichever comes first; saves `out`.
    excerpt: seconds (not samples) per example (Open-Unmix; HT-Demucs trains on its config's `segment`).
    Every `ckpt_every` steps and at the end the training state goes to `state_file(out)`; `resume`
    continues from it (same settings: the batches of a step depend on the step alone, so a resumed run
    trains on what an uninterrupted one would)."""
    torch.manual_seed(seed)
    tracks = find_tracks(data, "train")
    dev = resolve_device(device)
    if kind == "openunmix":
        config = {**OPENUNMIX_DEFAULT, **(config or {})}
        model, length = nn.ModuleDict(build_openunmix(config)), int(excerpt * RATE)
        batch_loss = _openunmix_loss(model, config, tracks, length, batch, seed, dev)
    elif kind == "demucs":
        config = {**DEMUCS_DEFAULT, **(config or {})}
        model, length = build_demucs(config), int(config["segment"] * RATE)
        batch_loss = _demucs_loss(model, tracks, length, batch, seed, dev)
    else:
        raise JukesepError(f"unknown baseline kind {kind!r} (openunmix or demucs)")
    model.to(dev).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    settings = {"kind": kind, "config": config, "batch": batch, "excerpt_seconds": length / RATE, "lr": lr,
                "seed": seed}
    step, earlier = _restore(state_file(out), settings, model, optimizer) if resume else (0, 0.0)
    budget, losses = Budget(steps, minutes, start_step=step), []
    bar = Progress(steps, f"train {kind}", unit="step", enabled=progress)
    bar.set(step, steps)
    Path(out).parent.mkdir(parents=True, exist_ok=True)

    def save_state() -> None:
        atomic_torch_save({"settings": settings, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "step": step, "minutes": earlier + budget.elapsed() / 60,
                           "rng": torch.get_rng_state()}, state_file(out))  # Open-Unmix's LSTM dropout draws from it

    while (stopped := budget.stop_reason(step)) is None:
        result = train_step(model, optimizer, lambda: batch_loss(step))
        step += 1
        losses.append(float(result.loss))
        bar.set_postfix(loss=f"{losses[-1]:.4g}")
        bar.set(step, budget.expected_steps(step))  # toward the limit that will stop it
        if step % ckpt_every == 0:
            save_state()
    bar.close()
    save_state()
    model.cpu()
    state = {t: m.state_dict() for t, m in model.items()} if kind == "openunmix" else model.state_dict()
    meta = {"steps": step, "minutes": round(earlier + budget.elapsed() / 60, 2), "data": str(data),
            "batch": batch, "excerpt_seconds": length / RATE, "lr": lr}
    atomic_torch_save({"format": "jukesep-baseline", "kind": kind, "config": config, "state": state,
                       "metadata": meta}, out)
    return {**meta, "losses": losses, "stopped": budget.describe(stopped, step)}


def state_file(out: Path) -> Path:
    """Where `train_peer` keeps the training state of the baseline file `out`."""
    return Path(f"{out}.train_state.pt")


def _restore(path: Path, settings: dict, model: nn.Module, optimizer) -> tuple[int, float]:
    """Load a training state into `model` and `optimizer` → (its step, its minutes); JukesepError when
    there is none or it was trained with other settings."""
    if not path.exists():
        raise JukesepError(f"--resume: {path} holds no training state to continue")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        if saved["settings"] != settings:
            differ = [f"{k} {settings.get(k)!r} (the run has {v!r})" for k, v in saved["settings"].items()
                      if settings.get(k) != v]
            raise JukesepError(f"--resume continues the run as it was configured, but {'; '.join(differ)}")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        return int(saved["step"]), float(saved["minutes"])
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable training state ({str(exc).splitlines()[0][:160]})") from None


def _openunmix_loss(models: nn.ModuleDict, config: dict, tracks, length: int, batch: int, seed: int, device):
    """step → (MSE of each target's estimated magnitude spectrogram, summed over targets, {target: MSE})."""
    datasets = {t: ExcerptDataset(tracks, length, t, True, seed=seed, augment=Augment(stereo=True))
                for t in config["targets"]}
    window = torch.hann_window(config["n_fft"], device=device)

    def magnitude(x: torch.Tensor) -> torch.Tensor:
        """`Tensor[B x C x T]` → `Tensor[B x C x F x frames]`."""
        spec = torch.stft(x.reshape(-1, x.shape[-1]), config["n_fft"], config["hop"], window=window,
                          return_complex=True).abs()
        return spec.reshape(x.shape[0], x.shape[1], *spec.shape[-2:])

    def loss(step: int) -> tuple[torch.Tensor, dict]:
        terms = {}
        for target, ds in datasets.items():
            items = [ds[step * batch + i] for i in range(batch)]
            mix, tgt = (torch.stack([it[k] for it in items]).to(device) for k in ("mixture", "target"))
            terms[target] = torch.nn.functional.mse_loss(models[target](magnitude(mix)), magnitude(tgt))
        return sum(terms.values()), terms
    return loss


def _demucs_loss(model: nn.Module, tracks, length: int, batch: int, seed: int, device):
    """step → (L1 between the estimated and true stems of a batch of remixed excerpts, {})."""
    stems = ExcerptDataset(tracks, length, "vocals", True, seed=seed, augment=Augment(stereo=True))

    def loss(step: int) -> tuple[torch.Tensor, dict]:
        sources = torch.stack([_stereo_stems(stems, seed, step * batch + i) for i in range(batch)]).to(device)
        return torch.nn.functional.l1_loss(model(sources.sum(1)), sources), {}  # sources: [B x S x 2 x L]
    return loss


def _stereo_stems(dataset: ExcerptDataset, seed: int, index: int) -> torch.Tensor:
    """`[S x 2 x L]`: the four stems of one remixed excerpt (same augmentation as jukesep stage 2)."""
    rng = np.random.default_rng([seed, 1, index])
    songs = len(dataset.tracks)
    return torch.from_numpy(np.stack([dataset._read(rng, s, int(rng.integers(songs))) for s in STEMS]))


# -- inference -----------------------------------------------------------------------------------

def load(kind: str, path: Path, device: str = "cpu"):
    """An evaluation `Estimator` for a baseline file written by `train_peer`."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable baseline file ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(data, dict) or data.get("format") != "jukesep-baseline" or data.get("kind") != kind:
        raise CheckpointError(f"{path}: not a {kind} baseline written by `jukesep baselines train`")
    config = data["config"]
    dev = torch.device(device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if kind == "openunmix":
        unmix = import_openunmix()
        models = build_openunmix(config)
        for target, model in models.items():
            model.load_state_dict(data["state"][target])
        separator = unmix.Separator(models, niter=1, n_fft=config["n_fft"], n_hop=config["hop"],
                                    sample_rate=RATE).to(dev).eval()

        @torch.inference_mode()
        def estimate(mixture: np.ndarray, rate: int, references: dict) -> dict:
            out = separator(torch.from_numpy(_stereo(mixture))[None].to(dev))[0].cpu().numpy()
            return {t: _like(out[i], mixture) for i, t in enumerate(config["targets"]) if t in references}
        return estimate
    _, apply_model = import_demucs()
    model = build_demucs(config)
    model.load_state_dict(data["state"])
    model.to(dev).eval()

    @torch.inference_mode()
    def estimate(mixture: np.ndarray, rate: int, references: dict) -> dict:
        wav = torch.from_numpy(_stereo(mixture))
        ref = wav.mean(0)
        wav = (wav - ref.mean()) / (ref.std() + 1e-8)  # demucs's input normalisation
        out = apply_model(model, wav[None], shifts=1, split=True, overlap=0.25, device=dev, progress=False)[0]
        out = (out * (ref.std() + 1e-8) + ref.mean()).cpu().numpy()
        return {t: _like(out[i], mixture) for i, t in enumerate(config["targets"]) if t in references}
    return estimate


def _stereo(mixture: np.ndarray) -> np.ndarray:
    return np.repeat(mixture, 2, axis=0) if mixture.shape[0] == 1 else np.ascontiguousarray(mixture[:2])


def _like(estimate: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    return estimate[: mixture.shape[0]].astype(np.float32) if mixture.shape[0] <= 2 else estimate
