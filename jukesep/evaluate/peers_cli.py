"""`jukesep baselines train openunmix|demucs`: peers trained on the same data with the same budget."""
from __future__ import annotations

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
    t.add_argument("--excerpt", type=float, default=4.0, help="seconds per example (Open-Unmix)")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--config", default="{}", help='model size as JSON, e.g. \'{"hidden": 128}\'')
    t.add_argument("--device", default="cpu")
    t.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from .peers import train_peer
    try:
        config = json.loads(args.config)
    except json.JSONDecodeError as exc:
        raise JukesepError(f"--config is not valid JSON ({exc})") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = train_peer(args.kind, args.data, args.out, args.steps, args.minutes, args.batch_size, args.excerpt,
                        args.lr, config=config, device=args.device)
    print(f"trained {args.kind} for {result['steps']} steps ({result['minutes']} min) → {args.out}")
    return 0
