"""`jukesep train ...` and `jukesep bundle`: argument parsing only; the work is in loop/bundle."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..defaults import STEMS
from ..errors import JukesepError
from . import flags
from .config import TRAIN_FIELDS, TrainConfig, flag_name, load_saved, resume_config

ALL_OUT = "runs/all"  # `train all`'s default run folder
MASK_FLAGS = tuple(name for name in TRAIN_FIELDS if name.startswith("mask_"))
HEAD_FLAGS = tuple(name for name in TRAIN_FIELDS if name.startswith(("head_", "trunk_")))
NO_MASK = dict.fromkeys(MASK_FLAGS, "only the mask stage learns a mask")
NO_HEADS = dict.fromkeys(HEAD_FLAGS, "only the shared stage builds a trunk and heads")
UNUSED = {  # stage: {flag a stage would ignore: why}
    "foundation": {"stem": "it learns from all audio (mixtures and stems)",
                   "vqvae": "only the encoder stage takes a stage-1 VQ-VAE", **NO_MASK, **NO_HEADS},
    "vqvae": {"vqvae": "only the encoder stage takes a stage-1 VQ-VAE (stage 1 starts from --init)",
              **NO_MASK, **NO_HEADS},
    "encoder": {**NO_MASK, **NO_HEADS},
    "shared": {"stem": "it trains every stem at once", **NO_MASK},
    "mask": {"stem": "it refines every stem at once", "vqvae": "it starts from the separator of --init",
             **dict.fromkeys(HEAD_FLAGS, "its trunk and heads are those of the separator of --init")},
    "all": {"stem": "see --stems", "vqvae": "it trains its own", **NO_MASK, **NO_HEADS},
}


def register(sub) -> None:
    parser = sub.add_parser("train", help="train the foundation VQ-VAE, stage 1, stage 2, or all")
    stages = parser.add_subparsers(dest="stage", required=True)
    for stage, text in (("foundation", "pretrain a level-0 VQ-VAE on all audio (mixtures and stems)"),
                        ("vqvae", "stage 1: fine-tune a VQ-VAE on one stem"),
                        ("encoder", "stage 2: train a mixture encoder for one stem"),
                        ("shared", "stage 2, shared layout: one mixture encoder and a head per stem, "
                                   "writes a whole separator (RUN/best.pt)"),
                        ("mask", "beyond the paper: learn a mask on the mixture's STFT from a trained "
                                 "separator's stems (--init separator:PATH); writes the separator with it")):
        p = stages.add_parser(stage, help=text, add_help=False)
        _add_flags(p, stage)
        p.set_defaults(func=cmd_train_stage, fixed_stage=stage)
    p = stages.add_parser("all", help="stage 1 and 2 for every stem, then bundle RUN/separator.pt", add_help=False)
    _add_flags(p, "all", defaults={"out": ALL_OUT}, texts={
        "out": "run folder: RUN/vqvae-STEM and RUN/encoder-STEM (one run each), then RUN/separator.pt"})
    p.add_argument("--stems", default=",".join(STEMS), help="comma-separated stems (default: all four)")
    p.set_defaults(func=cmd_train_all)

    b = sub.add_parser("bundle", help="assemble trained stems into one separator file")
    b.add_argument("out", type=Path, help="separator file to write")
    b.add_argument("--run", type=Path, help="a `train all` run folder (takes each stem's best files)")
    b.add_argument("--stem", action="append", default=[], metavar="NAME=VQVAE,ENCODER",
                   help="a stem from explicit files (repeatable)")
    b.set_defaults(func=cmd_bundle)


def _config(args, **fixed) -> tuple[TrainConfig, bool]:
    """The run's config and whether to resume. `fixed`: values set by the command, not by flags."""
    out = fixed.get("out") or getattr(args, "out", TrainConfig.out)
    saved = Path(out) / "config.json"
    if args.resume and saved.exists():
        # The run's own config wins (only the budget may change); its files are where they now lie.
        moved = {"out": str(out), **({"vqvae": fixed["vqvae"]} if "vqvae" in fixed else {})}
        wanted = {k: v for k, v in {**flags.given_values(args), **fixed}.items() if k not in moved}
        return resume_config(load_saved(saved), wanted, moved), True
    return flags.from_arguments(args, **fixed), args.resume


def _report(result: dict) -> None:
    if result["val_sdr"] is None:
        return  # not rank 0
    print(f"trained {result['steps']} steps; validation SDR {result['val_sdr']:.2f} dB "
          f"(best {result['best_sdr']:.2f} dB) → {result['best']}")
    print(f"stopped: {result['stopped']}")


def _add_flags(parser, stage: str, **options) -> None:
    """The stage's flags; those it would ignore are hidden, and an error when given (`_check_unused`)."""
    unused = UNUSED[stage]
    flags.add_arguments(parser, skip=("stage", *unused), **options)
    for name in unused:
        parser.add_argument(f"--{flag_name(name)}", dest=f"unused_{name}", help=argparse.SUPPRESS)


def _check_unused(args, stage: str) -> None:
    for name, why in UNUSED[stage].items():
        if getattr(args, f"unused_{name}", None) is not None:
            raise JukesepError(f"train {stage} takes no --{flag_name(name)}: {why}")


def cmd_train_stage(args) -> int:
    _check_unused(args, args.fixed_stage)
    from .loop import train
    cfg, resume = _config(args, stage=args.fixed_stage)
    _report(train(cfg, resume))
    return 0


def cmd_train_all(args) -> int:
    _check_unused(args, "all")
    from .. import distrib
    from .bundle import bundle, parts_from_run
    from .loop import STATE_FILE, train
    stems = [s.strip() for s in args.stems.split(",") if s.strip()]
    unknown = [s for s in stems if s not in STEMS]
    if not stems:
        raise JukesepError(f"--stems names no stem (choose from {', '.join(STEMS)})")
    if unknown:
        raise JukesepError(f"unknown stem {unknown[0]!r} (choose from {', '.join(STEMS)})")
    root = Path(args.out)
    for stem in stems:
        for stage in ("vqvae", "encoder"):
            out = root / f"{stage}-{stem}"
            if (out / "last.pt").exists():
                continue  # finished in an earlier invocation
            fixed = dict(stage=stage, stem=stem, out=str(out))
            if stage == "encoder":
                fixed["vqvae"] = str(root / f"vqvae-{stem}" / "best.pt")
            args.resume = (out / STATE_FILE).exists()
            cfg, resume = _config(args, **fixed)
            _report(train(cfg, resume))
    if distrib.rank() == 0:
        model = bundle(root / "separator.pt", parts_from_run(root, stems), {"run": str(root)})
        print(f"wrote {root / 'separator.pt'} with stems {', '.join(model.stem_names)}")
    return 0


def cmd_bundle(args) -> int:
    from .bundle import bundle, parts_from_run
    parts = parts_from_run(args.run) if args.run else {}
    for item in args.stem:
        name, _, files = item.partition("=")
        paths = files.split(",")
        if name not in STEMS or len(paths) != 2:
            raise JukesepError(f"--stem {item!r}: expected NAME=VQVAE.pt,ENCODER.pt with NAME one of {STEMS}")
        parts[name] = (Path(paths[0]), Path(paths[1]))
    if not parts:
        raise JukesepError("nothing to bundle: give --run RUN or --stem NAME=VQVAE,ENCODER")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model = bundle(args.out, parts)
    print(f"wrote {args.out} with stems {', '.join(model.stem_names)}")
    return 0
