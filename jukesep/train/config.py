"""Training configuration: one frozen dataclass, two presets, every field a command-line flag."""
from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import JukesepError
from ..models import VQVAEConfig

STAGES = ("foundation", "vqvae", "encoder")

@dataclass(frozen=True)
class TrainConfig:
    stage: str = "vqvae"  # foundation | vqvae (stage 1) | encoder (stage 2)
    data: str = ""  # corpus root in the MUSDB18-HQ layout (or MUSDB18 .stem.mp4 files)
    out: str = "runs/run"  # run folder: checkpoints, TensorBoard logs, resolved config
    stem: str = ""  # vqvae/encoder: the stem to learn
    init: str = "scratch"  # scratch | jukebox:PATH (official vqvae.pth.tar) | foundation:PATH (jukesep VQ-VAE file)
    vqvae: str = ""  # encoder stage: the stem's stage-1 VQ-VAE file
    # model size, used when init=scratch (a pretrained init brings its own config)
    width: int = 64
    depth: int = 8
    emb_width: int = 64
    codebook_size: int = 2048
    # optimisation (paper: batch 4 x 393,216, Adam 3e-4, 100 warm-up steps, clip 1.0, parameter EMA)
    steps: int = 80000
    minutes: float = 0.0  # stop (and checkpoint) after this much wall time; 0 = no limit
    batch_size: int = 4
    excerpt: int = 393216  # samples per example (8.9 s at 44.1 kHz)
    lr: float = 3e-4
    warmup: int = 100
    clip: float = 1.0
    param_ema: float = 0.999  # decay of the parameter EMA that is validated and saved
    # loss weights (paper)
    stft_weight: float = 1.0
    commit_weight: float = 0.02
    linf_weight: float = 0.02
    linf_k: int = 2048
    # data
    remix: bool = True  # Demucs-style remixing of stems across songs (stage 2), gain, channel swap
    workers: int = 2
    val_split: str = "valid"
    val_excerpts: int = 4  # fixed excerpts per validation song
    # bookkeeping
    log_every: int = 10
    val_every: int = 1000
    ckpt_every: int = 1000
    seed: int = 0
    device: str = "auto"
    bf16: bool = False  # bfloat16 autocast (GPU)
    compile: bool = False  # torch.compile the model (GPU)

    def __post_init__(self):
        if self.stage not in STAGES:
            raise JukesepError(f"unknown stage {self.stage!r} (choose from {', '.join(STAGES)})")
        if self.stage != "foundation" and not self.stem:
            raise JukesepError(f"the {self.stage} stage needs --stem")
        if self.stage == "encoder" and not self.vqvae:
            raise JukesepError("the encoder stage needs --vqvae, the stem's stage-1 VQ-VAE file")
        if not self.data:
            raise JukesepError("--data is required")
        if self.init != "scratch" and not self.init.startswith(("jukebox:", "foundation:")):
            raise JukesepError(f"--init must be scratch, jukebox:PATH or foundation:PATH, not {self.init!r}")
        for name in ("steps", "batch_size", "excerpt", "log_every", "val_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise JukesepError(f"--{name.replace('_', '-')} must be at least 1")

    def model_config(self) -> VQVAEConfig:
        return VQVAEConfig(width=self.width, depth=self.depth, emb_width=self.emb_width,
                           codebook_size=self.codebook_size)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

PRESETS: dict[str, dict] = {
    "paper": {},  # the dataclass defaults are the paper's values
    # Short excerpts and frequent evaluation: a CPU run that shows learning within minutes.
    "small": dict(excerpt=16384, batch_size=4, steps=2000, warmup=50, log_every=5, val_every=100,
                  ckpt_every=100, val_excerpts=2, workers=1, linf_k=512),
}

def add_arguments(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> None:
    """One flag per TrainConfig field (default None = take the preset's value)."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            kind = {"int": int, "float": float}.get(f.type, str)
            parser.add_argument(flag, type=kind, default=None, help=f"default {f.default!r}")

def from_arguments(args: argparse.Namespace, **fixed) -> TrainConfig:
    values = dict(PRESETS[args.preset])
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = given
    values.update(fixed)
    return TrainConfig(**values)

def load_saved(path: Path, **changes) -> TrainConfig:
    data = json.loads(path.read_text())
    data.update({k: v for k, v in changes.items() if v is not None})
    return TrainConfig(**data)
