"""Copy a trained separator into the package as the default model, with its provenance.

    python scripts/ship_default_model.py SEPARATOR.pt --run foundation=RUNS/foundation \\
        --run vqvae-vocals=RUNS/transfer/vqvae-vocals ... --run shared=RUNS/transfer/shared-output \\
        --score test=TEST_SUMMARY.json --score heldout=HELDOUT_SUMMARY.json --recipe "..." --hardware "..."

The metadata (`jukesep info default`) records the recipe, each training run's budget and best
validation SDR (from RUN/val_history.json and RUN/config.json), and the MDX SDR of each evaluation
summary given. The model is small, so it stays in float32.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from jukesep.checkpoint import load_model, save_model

TARGET = Path(__file__).parents[1] / "jukesep" / "pretrained" / "default.pt"


def run_summary(run: Path) -> dict:
    """Steps, minutes, best validation SDR and the main settings of one training run folder (a mask
    run's minutes include separating its training songs, RUN/stems.json)."""
    history = json.loads((run / "val_history.json").read_text())
    config = json.loads((run / "config.json").read_text())
    cache = json.loads((run / "stems.json").read_text())["minutes"] if (run / "stems.json").exists() else 0.0
    return {"stage": config["stage"], "steps": history[-1]["step"], "minutes": round(history[-1]["minutes"] + cache, 2),
            "val_sdr": round(max(h["sdr"] for h in history), 2), "init": config["init"],
            "batch": f"{config['batch_size']} x {config['excerpt']}", "lr": config["lr"],
            **({"stage2_loss": config["stage2_loss"]} if config["stage"] in ("encoder", "shared") else {})}


def score_summary(path: Path) -> dict:
    summary = json.loads(path.read_text())
    return {"mdx_sdr": {k: round(v["mdx_sdr_mean"], 2) for k, v in summary["table"].items()},
            "songs": summary["songs"], "minutes": round(summary["seconds_audio"] / 60, 1),
            "refine": summary["settings"].get("refine", "?")}


def pairs(values: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            raise SystemExit(f"{flag} {value!r}: expected NAME=PATH")
        out[name] = Path(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("separator", type=Path)
    parser.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER", help="a training run (repeat)")
    parser.add_argument("--score", action="append", default=[], metavar="SPLIT=SUMMARY",
                        help="summary.json of `jukesep evaluate` on a split (repeat)")
    parser.add_argument("--recipe", required=True, help="how it was made: the commands, in words")
    parser.add_argument("--data", required=True, help="what it was trained on")
    parser.add_argument("--hardware", default="", help="where it was trained, e.g. '2-core CPU, 1 thread per run'")
    parser.add_argument("--notes", default="")
    parser.add_argument("--keep-training", type=Path, metavar="MODEL.pt",
                        help="start from the training runs this model's metadata lists (e.g. the separator a "
                             "mask run froze, whose run folders are on another machine)")
    args = parser.parse_args()
    model, _ = load_model(args.separator, expect_kind="separator")
    training = load_model(args.keep_training)[1]["metadata"].get("training", {}) if args.keep_training else {}
    training.update({name: run_summary(path) for name, path in pairs(args.run, "--run").items()})
    meta = {
        "name": "default",
        "demo": "a demo model: small, trained for about an hour on a 2-core CPU on songs rendered from MIDI",
        "data": args.data,
        "recipe": args.recipe,
        "scores": {split: score_summary(path) for split, path in pairs(args.score, "--score").items()},
        "training": training,
        "budget": f"{sum(t['minutes'] for t in training.values()):.1f} min of training on {args.hardware or '?'}",
        "notes": args.notes,
    }
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    save_model(TARGET, "separator", model, meta)
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
