"""`jukesep baselines train openunmix|demucs`: peers trained on the same data with the same budget."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import JukesepError


def register(sub) -> None:
    p = sub.add_parser("baselines", help="train peer models (Open-Unmix, HT-Demucs) as baselines")
    which = p.add_subparsers(dest="baseline_command", required=True)
    t = which.add_parser("train", help="train a peer on a corpus for a step or minute budget")
    t.add_argument("kind", choices=("openunmix", "demucs"))
    t.add_argument("--data", required=True, type=Path)
    t.add_argument("--out", required=True, type=Path, help="baseline file to write")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--minutes", type=float, default=0.0, help="wall-time budget (0 = steps only)")
    t.add_argument("--batch-size", type=int, default=4)
    t.add_argument("--excerpt-seconds", type=float, default=4.0, help="seconds per example (Open-Unmix; default: 4)")
    # the old name, kept working; hidden since `jukesep train --excerpt` counts samples
    t.add_argument("--excerpt", type=float, dest="excerpt_seconds", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--config", default="{}", help='model size as JSON, e.g. \'{"hidden": 128}\'')
    t.add_argument("--device", default="cpu")
    t.add_argument("--resume", action="store_true",
                   help="continue from OUT.train_state.pt (same flags; --steps counts all steps, --minutes this call)")
    t.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from .peers import train_peer
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as exc:
        raise JukesepError(f"--config is not valid JSON ({exc})") from None
    _check_budget(args)
    result = train_peer(args.kind, args.data, args.out, args.steps, args.minutes, args.batch_size,
                        args.excerpt_seconds, args.lr, config=config, device=args.device, resume=args.resume)
    print(f"trained {args.kind} for {result['steps']} steps ({result['minutes']} min; {result['stopped']}) "
          f"→ {args.out}")
    return 0


def _check_budget(args) -> None:
    """One-line errors for values that would otherwise fail inside torch after the data is read."""
    if args.steps < 1 or args.batch_size < 1:
        raise JukesepError("--steps and --batch-size must be at least 1")
    if not 0 <= args.minutes < float("inf"):
        raise JukesepError(f"--minutes must be a finite number ≥ 0, not {args.minutes}")
    if not 0 < args.excerpt_seconds < float("inf"):
        raise JukesepError(f"--excerpt-seconds must be a number of seconds > 0, not {args.excerpt_seconds}")
