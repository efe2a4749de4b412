"""What each stage trains: its model, its loss and its validation.

- `AutoencoderTask` (foundation, stage 1): a VQ-VAE on one kind of audio, loss =
  lmix / l2 + stft_weight · multi-resolution STFT / spec + commit_weight · commitment, with l2 and
  spec the data's `Bandwidth` (as in Jukebox); codebook by EMA k-means.
- `EncoderTask` (stage 2): a new encoder maps the mixture onto the frozen stage-1 encoder's
  pre-quantisation embeddings of the clean stem; loss = lmix on the embeddings (`--stage2-loss
  latent`, the paper), or the autoencoder's waveform + STFT loss on the stem decoded through the
  frozen codebook (straight-through) and decoder (`output`), or both; or (`codes`, beyond the paper)
  the cross-entropy of the clean stem's stage-1 code, over minus the distances to the codebook.
- `SharedTask` (stage 2, shared layout): one mixture encoder (from the foundation encoder, which
  --trunk-width may widen) and a head per stem, with the frozen stage-1 codebooks and decoders of
  all four stems; the same losses, summed over stems. Its result is a whole separator.
- `MaskTask` (beyond the paper): a learned mask (models/mask.py) on the mixture's STFT, fed by a
  frozen trained separator's stems; loss = L1 between the masked mixture's and the clean stems'
  complex STFTs. Its result is that separator with the mask.
Validation reports the MDX SDR of what the stage would output at separation time.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import distrib
from ..checkpoint import import_jukebox, load_model
from ..data.datasets import SILENT_RMS
from ..defaults import STEMS
from ..errors import JukesepError
from ..models import VQVAE, Encoder, HeadConfig, SeparatorModel, VQVAEConfig
from ..models.config import MaskConfig
from ..models.fast import FastEncoder
from ..models.widen import widen_encoder
from ..refine import N_FFT, spectrogram, waveform
from .config import OUTPUT_LOSSES, TrainConfig
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


def audio_loss(estimate: torch.Tensor, target: torch.Tensor, bandwidth: Bandwidth, cfg: TrainConfig) -> dict:
    """The autoencoder's loss terms on audio, `Tensor[B x 1 x T]` pair → {"recon", "stft"} (each
    divided by the data's `Bandwidth`, as in Jukebox)."""
    return {"recon": lmix(estimate, target, cfg.linf_weight, cfg.linf_k) / bandwidth.l2,
            "stft": multi_resolution_stft_loss(estimate, target) / bandwidth.spec}


def measure_bandwidths(dataset, stems: int | None = None) -> list[Bandwidth]:
    """Loss normalisers from the first training excerpts (the same on every rank): one for the
    targets, or one per stem when the targets are `[S x 1 x L]`."""
    count = min(BANDWIDTH_EXAMPLES, len(dataset))
    examples = torch.stack([dataset[i]["target"] for i in range(count)])
    if stems is None:
        return [Bandwidth.measure(examples.reshape(-1, 1, examples.shape[-1]))]
    return [Bandwidth.measure(examples[:, s]) for s in range(stems)]


class Task:
    """What the stages' tasks share: the architecture a run records, and the module that DDP wraps
    (the trained model itself, unless a task says otherwise)."""
    model: nn.Module

    @property
    def arch(self) -> VQVAEConfig:
        return self.model.cfg

    def training_module(self, model: nn.Module) -> nn.Module:
        return model


class AutoencoderTask(Task):
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
        self.bandwidth = measure_bandwidths(dataset)[0]
        return self.bandwidth

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch["target"]: `Tensor[B x 1 x T]` → (scalar loss, {term name: scalar})."""
        x = batch["target"]
        out = model(x)
        terms = audio_loss(out.audio, x, self.bandwidth, self.cfg)
        loss = terms["recon"] + self.cfg.stft_weight * terms["stft"] + self.cfg.commit_weight * out.commit_loss
        return loss, {**terms, "commit": out.commit_loss, **out.metrics}

    @torch.no_grad()
    def estimate(self, model: VQVAE, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch["target"]
        x = x[..., : x.shape[-1] - x.shape[-1] % model.cfg.hop_length]
        return model.decode(model.encode(x)), x


class EncoderTask(Task):
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
        self.teacher_encoder = FastEncoder(self.teacher.encoder).requires_grad_(False)  # see SharedTask
        self.frozen = [self.teacher, self.teacher_encoder]
        self.bandwidth = Bandwidth()

    def calibrate(self, dataset) -> Bandwidth | None:
        """The output loss's normalisers (the embedding loss needs none)."""
        if self.cfg.stage2_loss not in OUTPUT_LOSSES:
            return None
        self.bandwidth = measure_bandwidths(dataset)[0]
        return self.bandwidth

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch["mixture"], batch["target"]: `Tensor[B x 1 x T]` → (scalar loss, {term name: scalar})."""
        latents = model(batch["mixture"])
        return stage2_loss(self.cfg, latents, batch["target"], self.teacher_encoder, self.teacher.quantizer,
                           self.teacher.decoder, self.bandwidth)

    @torch.no_grad()
    def estimate(self, model: Encoder, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        hop = model.cfg.hop_length
        mix, stem = (batch[k][..., : batch[k].shape[-1] - batch[k].shape[-1] % hop] for k in ("mixture", "target"))
        codes = self.teacher.quantizer.quantize(model(mix))
        return self.teacher.decode(codes), stem


def stage2_loss(cfg: TrainConfig, latents: torch.Tensor, target: torch.Tensor, teacher: nn.Module | None,
                quantizer: nn.Module, decoder: nn.Module, bandwidth: Bandwidth,
                decoded: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, dict]:
    """One stem's stage-2 loss. latents: the mixture encoder's `Tensor[B x E x F]`; target: the clean
    stem `Tensor[B x 1 x T]`; teacher, quantizer, decoder: the stem's stage-1 parts (teacher: None
    without the latent loss); decoded: (nearest embeddings, audio) when the caller's module already
    decoded `latents` (`straight_through`), else done here."""
    terms, loss = {}, latents.new_zeros(())
    if cfg.stage2_loss in ("latent", "both", "codes"):
        with torch.no_grad(), torch.autocast(target.device.type, enabled=False):  # float32 targets under --bf16
            wanted = teacher(target.float())
    if cfg.stage2_loss in ("latent", "both"):
        terms["embedding"] = lmix(latents, wanted, cfg.linf_weight, cfg.linf_k)
        loss = loss + terms["embedding"]
    if cfg.stage2_loss == "codes":
        with torch.no_grad():
            wanted = quantizer.quantize(wanted)
        terms["codes"] = F.cross_entropy(code_logits(latents, quantizer.k), wanted.reshape(-1))
        loss = loss + terms["codes"]
    if cfg.stage2_loss in OUTPUT_LOSSES:
        if decoded is None:
            passed, nearest = straight_through(latents, quantizer)
            decoded = nearest, decoder(passed)
        nearest, audio = decoded
        terms["commit"] = (latents - nearest).pow(2).mean()
        terms.update(audio_loss(audio, target, bandwidth, cfg))
        loss = loss + terms["recon"] + cfg.stft_weight * terms["stft"] + cfg.stage2_commit * terms["commit"]
    return loss, terms


def code_logits(latents: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Latents `Tensor[B x E x F]`, codebook `Tensor[K x E]` → `Tensor[B*F x K]`: minus each frame's squared
    distance to each code, up to a constant per frame (which a softmax ignores), so the largest is the
    nearest code. One matrix product on frames as rows (3-4x faster than a [B x K x F] layout)."""
    rows = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
    codebook = codebook.to(latents.dtype)
    return torch.addmm(-codebook.pow(2).sum(1), rows, codebook.t(), alpha=2.0)


def straight_through(latents: torch.Tensor, quantizer: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """`Tensor[B x E x F]` → (the nearest codes' embeddings with the latents' gradients, for the
    decoder; the nearest embeddings, no gradient)."""
    with torch.no_grad():
        nearest = quantizer.dequantize(quantizer.quantize(latents)).to(latents.dtype)
    return latents + (nearest - latents).detach(), nearest


class SharedLatents(nn.Module):
    """What DDP wraps in the shared stage: mixture `Tensor[B x 1 x T]` → per-stem head latents
    `Tensor[B x S x E x F]` (one E for all stems); with `decode` (the decoders learn too), also their
    nearest codes' embeddings (same shape) and the stems decoded through them, `Tensor[B x S x 1 x T]`,
    so that DDP sees the decoders' gradients."""

    def __init__(self, model: SeparatorModel, decode: bool = False):
        super().__init__()
        self.model, self.decode = model, decode

    def forward(self, mixture: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.model.trunk(mixture)
        latents = torch.stack([stem.head(z) for stem in self.model.stems.values()], dim=1)
        if not self.decode:
            return latents
        nearest, audio = [], []
        for i, stem in enumerate(self.model.stems.values()):
            passed, near = straight_through(latents[:, i], stem.quantizer)
            nearest.append(near)
            audio.append(stem.decoder(passed))
        return latents, torch.stack(nearest, dim=1), torch.stack(audio, dim=1)


class SharedTask(Task):
    kind = "separator"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        needs_teachers = cfg.stage2_loss != "output"  # latent, both, codes
        stage1 = stage1_models(cfg.vqvae) if cfg.vqvae else {}
        if cfg.init.startswith("separator:"):
            self.model = self._trained_separator(cfg, stage1)
        else:
            self.model = self._new_separator(cfg, stage1)
        for part in self.model.stems.values():
            part.quantizer.requires_grad_(False)
            part.decoder.requires_grad_(cfg.stage2_decoders == "train")
        # the stage-1 encoders give the latent targets, without autograd: their inference form is exact
        # and a third faster on CPU (a sixth off each latent-loss step)
        self.teachers = nn.ModuleList([FastEncoder(stage1[stem].encoder).requires_grad_(False) for stem in STEMS]) \
            if needs_teachers else None
        self.frozen = [self.teachers] if needs_teachers else []
        self.bandwidths = [Bandwidth()] * len(STEMS)

    @staticmethod
    def _new_separator(cfg: TrainConfig, stage1: dict[str, VQVAE]) -> SeparatorModel:
        """A trunk from --init (or scratch), new heads, and the stage-1 codebooks and decoders."""
        configs = {stem: m.cfg for stem, m in stage1.items()}
        if len({c.emb_width for c in configs.values()}) != 1:
            raise JukesepError("the shared stage needs stage-1 VQ-VAEs of one latent width")
        base = pretrained_vqvae(cfg.init)
        trunk = base.cfg if base is not None else next(iter(configs.values()))
        if cfg.trunk_width:
            trunk = dataclasses.replace(trunk, width=cfg.trunk_width)
        if cfg.model not in (VQVAEConfig(), trunk):  # an architecture was asked for: not this one
            raise JukesepError(f"the model flags ask for {cfg.model}, but the shared encoder takes the "
                               f"architecture of {'--init' if base is not None else 'the stage-1 VQ-VAEs'}: {trunk}")
        try:
            model = SeparatorModel(configs, trunk=trunk, head=asked_head(cfg))
        except (ValueError, JukesepError) as exc:
            raise JukesepError(f"shared stage: {exc}") from None
        if base is not None:
            model.trunk.load_state_dict(widen_encoder(base.encoder, trunk.width).state_dict())
        for stem, vqvae in stage1.items():
            model.stems[stem].quantizer.load_state_dict(vqvae.quantizer.state_dict())
            model.stems[stem].decoder.load_state_dict(vqvae.decoder.state_dict())
        return model

    @staticmethod
    def _trained_separator(cfg: TrainConfig, stage1: dict[str, VQVAE]) -> SeparatorModel:
        """The separator of --init separator:PATH, checked against the stage-1 models (if any)."""
        path = cfg.init.partition(":")[2]
        model, _ = load_model(path, expect_kind="separator")
        if model.trunk is None or list(model.stems) != list(STEMS):
            raise JukesepError(f"--init {cfg.init}: not a shared-layout separator of the stems {', '.join(STEMS)}")
        if cfg.model not in (VQVAEConfig(), model.trunk.cfg):
            raise JukesepError(f"the model flags ask for {cfg.model}, but --init {cfg.init} has {model.trunk.cfg}")
        if cfg.trunk_width not in (0, model.trunk.cfg.width):
            raise JukesepError(f"--trunk-width {cfg.trunk_width}, but --init {cfg.init}'s trunk is "
                               f"{model.trunk.cfg.width} wide")
        asked = asked_head(cfg)
        if asked not in (HeadConfig(), model.head_config):
            raise JukesepError(f"the head flags ask for {asked}, but --init {cfg.init} has {model.head_config}")
        for stem, vqvae in stage1.items():
            if vqvae.cfg != model.configs[stem]:
                raise JukesepError(f"--vqvae {cfg.vqvae}: the {stem} VQ-VAE differs from --init {cfg.init}'s")
        return model

    @property
    def arch(self) -> VQVAEConfig:
        return self.model.trunk.cfg

    def training_module(self, model: SeparatorModel) -> nn.Module:
        return SharedLatents(model, decode=self.cfg.stage2_decoders == "train")

    def calibrate(self, dataset) -> Bandwidth | None:
        if self.cfg.stage2_loss not in OUTPUT_LOSSES:
            return None
        self.bandwidths = measure_bandwidths(dataset, len(STEMS))
        return self.bandwidths[0]

    def loss(self, net: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch["mixture"]: `Tensor[B x 1 x T]`, batch["target"]: `Tensor[B x S x 1 x T]` → (scalar
        loss: the sum over stems, {stem/term: scalar})."""
        out = net(batch["mixture"])
        latents, decoded = (out[0], out[1:]) if isinstance(out, tuple) else (out, None)
        total, logs = latents.new_zeros(()), {}
        for i, (stem, part) in enumerate(self.model.stems.items()):
            loss, terms = stage2_loss(self.cfg, latents[:, i], batch["target"][:, i],
                                      None if self.teachers is None else self.teachers[i], part.quantizer,
                                      part.decoder, self.bandwidths[i],
                                      None if decoded is None else (decoded[0][:, i], decoded[1][:, i]))
            total = total + loss
            logs.update({f"{stem}/{k}": v for k, v in terms.items()})
        return total, logs

    @torch.no_grad()
    def estimate(self, model: SeparatorModel, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Every audible (example, stem) pair: `Tensor[N x 1 x T]` estimates and references."""
        hop = model.hop_length()
        mix = batch["mixture"][..., : batch["mixture"].shape[-1] - batch["mixture"].shape[-1] % hop]
        stems = batch["target"][..., : mix.shape[-1]]
        return audible_pairs(model(mix), stems)  # [B x S x 1 x T]


class MaskTask(Task):
    kind = "separator"

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        path = cfg.init.partition(":")[2]
        base, _ = load_model(path, expect_kind="separator")
        if list(base.stems) != list(STEMS):
            raise JukesepError(f"--init {cfg.init}: not a separator of the stems {', '.join(STEMS)}")
        self.model = base
        if cfg.model not in (VQVAEConfig(), self.arch):
            raise JukesepError(f"the model flags ask for {cfg.model}, but --init {cfg.init} has {self.arch}")
        try:
            asked = MaskConfig(hidden=cfg.mask_hidden, bins=cfg.mask_bins, layers=cfg.mask_layers,
                               reach=cfg.mask_reach)
        except ValueError as exc:  # "MaskConfig.bins must be ..." → "--mask-bins must be ..."
            raise JukesepError(str(exc).replace("MaskConfig.", "--mask-")) from None
        if base.mask_config not in (None, asked):
            raise JukesepError(f"--init {cfg.init} has a learned mask {base.mask_config}; the flags ask for {asked}")
        if base.mask is None:  # else: continue its own mask
            self.model = base.with_mask(asked)
        for name, part in self.model.named_children():
            part.requires_grad_(name == "mask")
        self.runner = base.fast()  # the frozen separator's stems: its fast twin, no gradients
        self.frozen: list[nn.Module] = [self.runner]  # (the loop moves it to the training device)
        self.init_file = Path(path)

    @property
    def arch(self) -> VQVAEConfig:
        return self.model.trunk_config or next(iter(self.model.configs.values()))

    def training_module(self, model: SeparatorModel) -> nn.Module:
        return model.mask

    def calibrate(self, dataset) -> None:
        """Separate the training songs once (`mask_data`), each rank its share; then all wait."""
        from ..api import Separator
        frozen = SeparatorModel.from_stems(dict(self.model.stems), self.model.trunk)  # shared weights, no mask
        device = next(self.model.mask.parameters()).device
        separator = Separator(frozen, precision="float32", refine="none", device=device)
        minutes = dataset.fill(separator, self.init_file, distrib.rank(), distrib.world_size())
        if distrib.rank() == 0:
            print(f"the separator's stems of {len(dataset.tracks)} training songs are in {dataset.folder} "
                  f"({minutes:.1f} min this time; not counted in --minutes)", flush=True)
        distrib.barrier()
        return None

    @torch.no_grad()
    def _spectra(self, mixture: torch.Tensor, stems: torch.Tensor | None = None, bins: int | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, int]:
        """mixture `Tensor[B x 1 x T]`, the separator's stems `Tensor[B x S x 1 x T]` (None: computed
        here) → (the mixture's STFT `Tensor[B x F x K]`, the stems' power `Tensor[B x S x F x K]`
        over K frames, the length used: T down to whole latent frames); F: the first `bins` (None: all)."""
        length = mixture.shape[-1] - mixture.shape[-1] % self.runner.hop_length()
        mixture = mixture[..., :length]
        stems = self.runner(mixture) if stems is None else stems[..., :length]
        parts = torch.view_as_real(spectrogram(stems[:, :, 0])[:, :, :bins])
        return spectrogram(mixture[:, 0])[:, :bins], parts.square().sum(-1), length

    def loss(self, net: nn.Module, batch: dict) -> tuple[torch.Tensor, dict]:
        """batch["mixture"]: `Tensor[B x 1 x T]`, batch["target"] and batch["estimate"] (the
        separator's stems): `Tensor[B x S x 1 x T]`, optional batch["eq"]: gains `Tensor[B x S x F]`
        on each stem's STFT bins → (scalar loss, {"spec_l1": the same}), on the bins the mask corrects
        (above them it is the soft mask, which nothing here changes)."""
        bins = self.model.mask_config.bins
        mixture, power, length = self._spectra(batch["mixture"], batch["estimate"], bins)
        with torch.no_grad():
            wanted = spectrogram(batch["target"][:, :, 0, :length])[:, :, :bins]  # [B x S x bins x K]
            if "eq" in batch:  # each stem and its estimate get the EQ; the mixture the difference
                gains = batch["eq"][:, :, :bins, None]
                mixture = mixture + ((gains - 1) * wanted).sum(1)
                wanted, power = wanted * gains, power * gains.square()
        wanted = torch.view_as_real(wanted)
        share = net(mixture, power)
        error = (share.unsqueeze(-1) * torch.view_as_real(mixture).unsqueeze(1) - wanted).abs().mean()
        loss = error / wanted.abs().mean().clamp_min(1e-8)
        return loss, {"spec_l1": loss.detach()}

    @torch.no_grad()
    def estimate(self, model: SeparatorModel, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Every audible (example, stem) pair: `Tensor[N x 1 x T]` estimates and references."""
        mixture, power, length = self._spectra(batch["mixture"])
        estimate = waveform(model.mask(mixture, power) * mixture[:, None], length).unsqueeze(2)  # [B x S x 1 x T]
        return audible_pairs(estimate, batch["target"][..., :length])


def audible_pairs(estimate: torch.Tensor, stems: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`Tensor[B x S x 1 x T]` estimates and clean stems → the (example, stem) pairs whose stem is
    audible, `Tensor[N x 1 x T]` each."""
    audible = stems.pow(2).mean(dim=(-2, -1)).sqrt() > SILENT_RMS
    return estimate[audible], stems[audible]


def asked_head(cfg: TrainConfig) -> HeadConfig:
    """The head the flags ask for."""
    try:
        return HeadConfig(width=cfg.head_width, depth=cfg.head_depth, dilation_growth_rate=cfg.head_growth)
    except ValueError as exc:
        raise JukesepError(f"shared stage: {exc}") from None


def stage1_models(folder: str) -> dict[str, VQVAE]:
    """{stem: its stage-1 VQ-VAE} from FOLDER/vqvae-STEM/best.pt."""
    stage1 = {}
    for stem in STEMS:
        path = Path(folder) / f"vqvae-{stem}" / "best.pt"
        if not path.is_file():
            raise JukesepError(f"--vqvae {folder}: no stage-1 model {path} (train it with "
                               f"`jukesep train vqvae --stem {stem} --out {path.parent}`)")
        stage1[stem], _ = load_model(path, expect_kind="vqvae")
    return stage1


def build_task(cfg: TrainConfig):
    task = {"encoder": EncoderTask, "shared": SharedTask, "mask": MaskTask}.get(cfg.stage, AutoencoderTask)(cfg)
    check_excerpt(cfg.excerpt, task)
    return task


def check_excerpt(excerpt: int, task) -> None:
    """The model takes whole latent frames, and the STFT loss's reflection padding needs more than
    half its largest FFT: refused here, not by torch in the first step."""
    hop = task.arch.hop_length
    if excerpt % hop:
        raise JukesepError(f"--excerpt {excerpt} (samples) must be a multiple of the model's hop length {hop}")
    shortest = max(n_fft for n_fft, _, _ in STFT_RESOLUTIONS) // 2 + 1
    if isinstance(task, MaskTask):
        shortest = N_FFT
    if (isinstance(task, (AutoencoderTask, MaskTask)) or task.cfg.stage2_loss in OUTPUT_LOSSES) and excerpt < shortest:
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
        if example is None and estimate.shape[0]:  # a batch may have no audible stem
            example = (estimate[0, 0].float().cpu(), reference[0, 0].float().cpu())
    model.train()
    scores = torch.cat(scores) if scores else torch.zeros(0)
    return {"sdr": float(scores.mean()) if scores.numel() else float("nan"), "example": example}
