"""What each stage trains: its model, its loss and its validation.

- `AutoencoderTask` (foundation, stage 1): a VQ-VAE on one kind of audio, loss =
  lmix / l2 + stft_weight · multi-resolution STFT / spec + commit_weight · commitment, with l2 and
  spec the data's `Bandwidth` (as in Jukebox); codebook by EMA k-means.
- `EncoderTask` (stage 2): a new encoder maps the mixture onto the frozen stage-1 encoder's
  pre-quantisation embeddings of the clean stem; loss = lmix on the embeddings.
Validation reports the MDX SDR of what the stage would output at separation time.
"""
from __future__ import annotations

import torch
from torch import nn

from ..checkpoint import import_jukebox, load_model
from ..errors import JukesepError
from ..models import VQVAE, Encoder, VQVAEConfig
from .config import TrainConfig
from .losses import STFT_RESOLUTIONS, Bandwidth, lmix, multi_resolution_stft_loss, sdr

BANDWIDTH_EXAMPLES = 64


def pretrained_vqvae(init: str) -> VQVAE | None:
    """The VQ-VAE named by --init (None for scratch)."""
    if init == "scratch":
        return None
    kind, _, path = init.partition(":")
    if kind == "jukebox":
        return import_jukebox(path)
    model, _ = load_model(path, expect_kind="vqvae")
    return model


class AutoencoderTask:
    kind = "vqvae"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        base = pretrained_vqvae(cfg.init)
        self.model = VQVAE(base.cfg if base else cfg.model)
        if base is not None:
            self.model.load_state_dict(base.state_dict())
        self.frozen: list[nn.Module] = []
        self.bandwidth = Bandwidth()

    def calibrate(self, dataset) -> Bandwidth:
        """Measure the loss normalisers on the first training excerpts (the same on every rank)."""
        count = min(BANDWIDTH_EXAMPLES, len(dataset))
        examples = torch.stack([dataset[i]["target"] for i in range(count)])
        self.bandwidth = Bandwidth.measure(examples.reshape(-1, 1, examples.shape[-1]))
        return self.bandwidth

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch["target"]: `Tensor[B x 1 x T]` → (scalar loss, {term name: scalar})."""
        x = batch["target"]
        out = model(x)
        recon_loss = lmix(out.audio, x, self.cfg.linf_weight, self.cfg.linf_k) / self.bandwidth.l2
        spec_loss = multi_resolution_stft_loss(out.audio, x) / self.bandwidth.spec
        loss = recon_loss + self.cfg.stft_weight * spec_loss + self.cfg.commit_weight * out.commit_loss
        return loss, {"recon": recon_loss, "stft": spec_loss, "commit": out.commit_loss, **out.metrics}

    @torch.no_grad()
    def estimate(self, model: VQVAE, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["target"]
        x = x[..., : x.shape[-1] - x.shape[-1] % model.cfg.hop_length]
        return model.decode(model.encode(x)), x


class EncoderTask:
    kind = "encoder"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.teacher, _ = load_model(cfg.vqvae, expect_kind="vqvae")
        self.teacher.requires_grad_(False)
        base = pretrained_vqvae(cfg.init)
        if base is not None and base.cfg != self.teacher.cfg:
            raise JukesepError(f"--init model's config differs from the stage-1 VQ-VAE's ({cfg.vqvae})")
        if cfg.model not in (VQVAEConfig(), self.teacher.cfg):  # an architecture was asked for: not this one
            raise JukesepError(f"the model flags ask for {cfg.model}, but the stage-1 VQ-VAE {cfg.vqvae} "
                               f"is {self.teacher.cfg}; the encoder takes the stage-1 architecture")
        self.model = Encoder(self.teacher.cfg)
        if base is not None:
            self.model.load_state_dict(base.encoder.state_dict())
        self.frozen = [self.teacher]

    def calibrate(self, dataset) -> None:
        """The embedding loss needs no normaliser."""

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch["mixture"], batch["target"]: `Tensor[B x 1 x T]` → (scalar loss, {"embedding": loss})."""
        with torch.no_grad():
            target = self.teacher.encoder(batch["target"])
        loss = lmix(model(batch["mixture"]), target, self.cfg.linf_weight, self.cfg.linf_k)
        return loss, {"embedding": loss}

    @torch.no_grad()
    def estimate(self, model: Encoder, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        hop = model.cfg.hop_length
        mix, stem = (batch[k][..., : batch[k].shape[-1] - batch[k].shape[-1] % hop] for k in ("mixture", "target"))
        codes = self.teacher.quantizer.quantize(model(mix))
        return self.teacher.decode(codes), stem


def build_task(cfg: TrainConfig):
    task = EncoderTask(cfg) if cfg.stage == "encoder" else AutoencoderTask(cfg)
    check_excerpt(cfg.excerpt, task)
    return task


def check_excerpt(excerpt: int, task) -> None:
    """The model takes whole latent frames, and the STFT loss's reflection padding needs more than
    half its largest FFT: refused here, not by torch in the first step."""
    hop = task.model.cfg.hop_length
    if excerpt % hop:
        raise JukesepError(f"--excerpt {excerpt} (samples) must be a multiple of the model's hop length {hop}")
    shortest = max(n_fft for n_fft, _, _ in STFT_RESOLUTIONS) // 2 + 1
    if isinstance(task, AutoencoderTask) and excerpt < shortest:
        raise JukesepError(f"--excerpt {excerpt} (samples) is too short for the STFT loss: at least {shortest}")


@torch.no_grad()
def validate(task, model: nn.Module, items: list[dict], device: torch.device, batch_size: int = 8) -> dict:
    """Mean MDX SDR (dB) of the stage's output over the fixed validation excerpts."""
    model.eval()
    scores, example = [], None
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        batch = {k: torch.stack([it[k] for it in chunk]).to(device) for k in chunk[0]}
        estimate, reference = task.estimate(model, batch)
        scores.append(sdr(estimate, reference).cpu())
        if example is None:
            example = (estimate[0, 0].float().cpu(), reference[0, 0].float().cpu())
    model.train()
    return {"sdr": float(torch.cat(scores).mean()) if scores else float("nan"), "example": example}
