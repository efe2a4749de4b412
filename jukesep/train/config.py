"""Training configuration: one frozen dataclass holding the model's `VQVAEConfig`, two presets, and
its JSON form (`RUN/config.json`). The command-line flags are generated from both dataclasses
(`flags.py`), so every field, the architecture's included, is a flag.

Flags, presets and `resume_config` use the *flat* view of a config: the training fields and the
model fields side by side ({"lr": ..., "width": ..., "down_t": ...}); no name occurs in both.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_write_text
from ..defaults import STEMS
from ..errors import JukesepError
from ..models import VQVAEConfig

STAGES = ("foundation", "vqvae", "encoder", "shared", "mask")
STAGE2_LOSSES = ("latent", "output", "both", "codes")
OUTPUT_LOSSES = ("output", "both")  # the stage-2 losses that decode the stems (STFT loss, bandwidths)
LR_DECAYS = ("none", "cosine")
STAGE2_DECODERS = ("frozen", "train")
MODEL_FIXED = ("input_channels", "sample_rate")  # set by the data (mono, 44.1 kHz), not by flags
RESUME_MAY_CHANGE = ("steps", "minutes", "bf16")  # the budget and the precision; the rest belongs to the run
AT_LEAST_ONE = ("steps", "head_width", "head_depth", "head_growth", "batch_size", "excerpt",
                "warmup", "val_excerpts", "linf_k", "log_every", "val_every",
                "ckpt_every")
MAX_MASK_EQ_DB = 24.0
NOT_NEGATIVE = ("minutes", "trunk_width", "stage2_commit", "clip", "stft_weight", "commit_weight", "linf_weight",
                "workers", "seed")


@dataclass(frozen=True)
class TrainConfig:
    stage: str = "vqvae"  # foundation | vqvae (stage 1) | encoder (stage 2) | shared (stage 2, one encoder) | mask
    data: str = ""  # corpus root in the MUSDB18-HQ layout (or MUSDB18 .stem.mp4 files)
    out: str = "runs/run"  # run folder: checkpoints, TensorBoard logs, resolved config
    stem: str = ""  # vqvae/encoder: the stem to learn
    # foundation:PATH: a jukesep VQ-VAE file. separator:PATH (shared stage): a whole trained
    # separator, trunk, heads, codebooks and decoders, to continue or fine-tune (its architecture)
    init: str = "scratch"  # scratch | jukebox:PATH (official vqvae.pth.tar) | foundation:PATH | separator:PATH
    vqvae: str = ""  # encoder stage: the stem's stage-1 VQ-VAE file; shared stage: a folder of vqvae-STEM/best.pt
    # The architecture of a scratch model. A pretrained --init, or the encoder stage's --vqvae,
    # brings its own; the run's config.json records the architecture actually trained.
    model: VQVAEConfig = field(default_factory=VQVAEConfig)
    # stage 2: what the mixture encoder learns from. latent (the paper): the stage-1 encoder's embedding
    # of the clean stem; output: the clean stem, decoded through the frozen codebook (straight-through)
    # and decoder, with the waveform + multi-resolution STFT loss; both: their sum; codes (beyond the
    # paper): cross-entropy of the stage-1 encoder's code of the clean stem, the logits being minus the
    # squared distances to the codebook's vectors (what separation picks is the nearest code)
    stage2_loss: str = "latent"  # stage 2: latent (paper) | output (via frozen decoder) | both | codes
    # The codebook is frozen in stage 2, so only this term keeps the latents near codes under the
    # output loss's straight-through gradients (at the autoencoder's 0.02 they drifted away: measured).
    stage2_commit: float = 1.0  # stage 2, output loss: weight of the commitment loss
    # Beyond the paper: with the output loss, the stems' decoders may learn too, end to end from the
    # mixture (they no longer reproduce the clean stems' codes alone); the codebooks stay frozen.
    stage2_decoders: str = "frozen"  # shared stage: frozen (paper) | train (with --stage2-loss output or both)
    # Beyond the paper: a trunk wider than the --init encoder it starts from; the encoder's trained
    # weights fill its first channels and the added ones start out unread (models/widen.py)
    trunk_width: int = 0  # shared stage: channels inside the shared encoder; 0 = the --init encoder's
    head_width: int = 32  # shared stage: channels of each stem's head (at the latent rate)
    head_depth: int = 8  # shared stage: residual blocks per head
    head_growth: int = 3  # shared stage: block i of a head has dilation head_growth ** i (its reach in frames)
    # Beyond the paper: a learned correction of the soft mask, trained on a frozen separator's stems
    mask_hidden: int = 256  # mask stage: units of each hidden layer of the learned mask
    mask_bins: int = 1024  # mask stage: STFT bins (of 2049) the learned mask corrects, from 0 Hz
    mask_layers: int = 2  # mask stage: hidden layers of the learned mask
    # 0: one MLP over each frame's bins; k: one rule shared by all bins, seeing k bins on each side
    mask_reach: int = 0  # mask stage: 0 (an MLP per frame) or k ≥ 1 (one rule for every bin, ±k bins)
    # timbres the training songs lack: each stem (and the separator's stem for it) gets a random EQ
    mask_eq: float = 0.0  # mask stage: most gain in dB (±) of each stem's random EQ per excerpt; 0 = off
    # optimisation (paper: batch 4 x 393,216, Adam 3e-4, 100 warm-up steps, clip 1.0, parameter EMA)
    steps: int = 80000  # optimisation steps in all, earlier ones of a resumed run included
    minutes: float = 0.0  # stop (and checkpoint) after this many minutes of wall time; 0 = no limit
    batch_size: int = 4  # examples per step (per process under torchrun)
    excerpt: int = 393216  # samples per example (8.9 s at 44.1 kHz)
    lr: float = 3e-4  # Adam learning rate after the warm-up
    warmup: int = 100  # steps of linear learning-rate warm-up
    # cosine: to 0 at the end of the budget (--steps or --minutes, whichever ends first; a resumed
    # run's budget is the minutes already trained plus the new --minutes)
    lr_decay: str = "none"  # after the warm-up: none (constant, paper) | cosine
    clip: float = 1.0  # max total gradient norm; 0 = no clipping
    param_ema: float = 0.999  # decay per step of the parameter EMA that is validated and saved
    # loss weights (paper)
    stft_weight: float = 1.0  # weight of the multi-resolution STFT loss (foundation, vqvae)
    commit_weight: float = 0.02  # weight of the commitment loss (foundation, vqvae)
    linf_weight: float = 0.02  # weight of lmix's mean of the linf_k largest squared errors
    linf_k: int = 2048  # lmix: largest squared errors (samples or embedding values) per example
    # data
    remix: bool = True  # Demucs-style remixing of stems across songs (stage 2), gain, channel swap
    workers: int = 2  # data-loading processes
    val_split: str = "valid"  # split of --data for validation and best-checkpoint selection
    val_excerpts: int = 4  # fixed excerpts per validation song
    # bookkeeping
    log_every: int = 10  # steps between TensorBoard logs of the training loss
    val_every: int = 1000  # steps between validations (each also saves train_state.pt)
    ckpt_every: int = 1000  # steps between saves of train_state.pt (each also validates)
    seed: int = 0  # seed of the initialisation and of the data
    device: str = "auto"  # auto | cpu | cuda | cuda:N (under torchrun: each rank's local GPU)
    bf16: bool = False  # bfloat16 autocast (GPU, or a CPU with avx512_bf16 or AMX; refused where emulated)
    compile: bool = False  # torch.compile the model (GPU)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise JukesepError(f"unknown stage {self.stage!r} (choose from {', '.join(STAGES)})")
        if self.stage in ("vqvae", "encoder") and not self.stem:
            raise JukesepError(f"the {self.stage} stage needs --stem")
        if self.stage in ("vqvae", "encoder") and self.stem not in STEMS:
            raise JukesepError(f"unknown stem {self.stem!r} (choose from {', '.join(STEMS)})")
        if self.stage == "encoder" and not self.vqvae:
            raise JukesepError("the encoder stage needs --vqvae, the stem's stage-1 VQ-VAE file")
        if self.stage == "shared" and not self.vqvae and not (self.init.startswith("separator:")
                                                              and self.stage2_loss == "output"):
            raise JukesepError("the shared stage needs --vqvae, a folder holding vqvae-<stem>/best.pt for each stem "
                               "(only --init separator:PATH with --stage2-loss output goes without)")
        if self.init.startswith("separator:") and self.stage not in ("shared", "mask"):
            raise JukesepError("--init separator:PATH is for the shared and mask stages")
        if self.stage == "mask" and not self.init.startswith("separator:"):
            raise JukesepError("the mask stage needs --init separator:PATH, the trained separator whose "
                               "stems it refines")
        if self.stage2_decoders not in STAGE2_DECODERS:
            raise JukesepError(f"--stage2-decoders must be one of {', '.join(STAGE2_DECODERS)}, "
                               f"not {self.stage2_decoders!r}")
        if self.stage2_decoders == "train" and (self.stage != "shared" or self.stage2_loss not in OUTPUT_LOSSES):
            raise JukesepError("--stage2-decoders train needs the shared stage and --stage2-loss output or both")
        if self.stage2_loss not in STAGE2_LOSSES:
            raise JukesepError(f"--stage2-loss must be one of {', '.join(STAGE2_LOSSES)}, not {self.stage2_loss!r}")
        if self.lr_decay not in LR_DECAYS:
            raise JukesepError(f"--lr-decay must be one of {', '.join(LR_DECAYS)}, not {self.lr_decay!r}")
        if not self.data:
            raise JukesepError("--data is required")
        if self.init != "scratch" and not self.init.startswith(("jukebox:", "foundation:", "separator:")):
            raise JukesepError(f"--init must be scratch, jukebox:PATH, foundation:PATH or separator:PATH, "
                               f"not {self.init!r}")
        self._check_numbers()
        if not isinstance(self.model, VQVAEConfig):
            raise JukesepError(f"TrainConfig.model must be a VQVAEConfig, not {type(self.model).__name__}")

    def _check_numbers(self) -> None:
        """Range checks, so a bad value is a one-line error now and not a traceback from torch or
        numpy (a negative seed or worker count, a NaN learning rate) after the run folder is made."""
        for name in AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise JukesepError(f"--{flag_name(name)} must be at least 1")
        for name in NOT_NEGATIVE:
            if not 0 <= getattr(self, name) < math.inf:
                raise JukesepError(f"--{flag_name(name)} must be a finite number ≥ 0, not {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise JukesepError(f"--lr must be a finite number > 0, not {self.lr}")
        if not 0 <= self.mask_eq <= MAX_MASK_EQ_DB:
            raise JukesepError(f"--mask-eq must be from 0 to {MAX_MASK_EQ_DB} (dB), not {self.mask_eq}")
        if not 0 <= self.param_ema <= 1:
            raise JukesepError(f"--param-ema must be from 0 to 1, not {self.param_ema}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Inverse of `to_dict`; also reads the flat form that older runs saved (width, depth,
        emb_width, codebook_size beside the training fields)."""
        data = dict(data)
        nested = data.pop("model", None) or {}
        return from_flat({**data, **nested})

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "model")
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(VQVAEConfig))

PRESETS: dict[str, dict] = {  # flat values
    "paper": {},  # the dataclass defaults are the paper's values
    # Short excerpts and frequent evaluation: a CPU run that shows learning within minutes.
    "small": dict(excerpt=16384, batch_size=4, steps=2000, warmup=50, log_every=5, val_every=100,
                  ckpt_every=100, val_excerpts=2, workers=1, linf_k=512),
}
DEFAULT_PRESET = "paper"


def flag_name(name: str) -> str:
    return name.replace("_", "-")


def flat(cfg: TrainConfig) -> dict:
    """{training field: value} and {model field: value} in one mapping."""
    return {**{name: getattr(cfg, name) for name in TRAIN_FIELDS}, **cfg.model.to_dict()}


def from_flat(values: dict) -> TrainConfig:
    """A TrainConfig from flat values (missing ones take the defaults)."""
    unknown = sorted(set(values) - set(TRAIN_FIELDS) - set(MODEL_FIELDS))
    if unknown:
        raise JukesepError(f"unknown training config fields: {', '.join(unknown)}")
    try:
        model = VQVAEConfig(**{k: v for k, v in values.items() if k in MODEL_FIELDS})
    except ValueError as exc:  # the model config's own range checks
        raise JukesepError(str(exc)) from None
    return TrainConfig(model=model, **{k: v for k, v in values.items() if k in TRAIN_FIELDS})


def load_saved(path: Path) -> TrainConfig:
    """The config.json of a run (either format)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise JukesepError(f"{path}: cannot read the run's config ({exc})") from None
    return TrainConfig.from_dict(data)


def resume_config(saved: TrainConfig, wanted: dict, moved: dict) -> TrainConfig:
    """The saved run's config with a new budget or precision (RESUME_MAY_CHANGE in `wanted`) and the run's new
    location (`moved`: out, and the stage-1 file of a `train all` run).

    Any other flat value in `wanted` that differs from the run's is refused: a resumed run goes on
    as it was configured, and silently ignoring a flag would hide that.
    """
    old = flat(saved)
    differ = [f"--{flag_name(k)} {v!r} (the run has {old[k]!r})" for k, v in wanted.items()
              if k not in RESUME_MAY_CHANGE and k in old and v != old[k]]
    if differ:
        raise JukesepError(f"--resume continues {moved.get('out', saved.out)} as it was "
                           f"configured; only {', '.join('--' + flag_name(k) for k in RESUME_MAY_CHANGE)} may change, "
                           f"but {'; '.join(differ)}. "
                           "Start a new run (another --out) to change them.")
    budget = {k: wanted[k] for k in RESUME_MAY_CHANGE if k in wanted}
    return from_flat({**old, **budget, **moved})
