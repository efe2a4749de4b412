"""Copy a trained separator into the package as the default model, with its provenance.

    python scripts/ship_default_model.py SEPARATOR.pt RUNS_DIR TEST_SUMMARY.json [--notes "..."]

The metadata (`jukesep info default`) records the data, the per-stem training budget and
validation SDR (from RUNS_DIR/<stage>-<stem>/val_history.json), and the test-split SDR of the
evaluation summary. The model is small, so it stays in float32.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from jukesep.checkpoint import load_model, save_model

TARGET = Path(__file__).parents[1] / "jukesep" / "pretrained" / "default.pt"


def run_summary(run: Path) -> dict:
    """Steps, minutes, best validation SDR and the main settings of one training run folder."""
    history = json.loads((run / "val_history.json").read_text())
    config = json.loads((run / "config.json").read_text())
    return {"steps": history[-1]["step"], "minutes": history[-1]["minutes"],
            "val_sdr": round(max(h["sdr"] for h in history), 2), "init": config["init"],
            "batch": f"{config['batch_size']} x {config['excerpt']}", "lr": config["lr"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("separator", type=Path)
    parser.add_argument("runs", type=Path)
    parser.add_argument("summary", type=Path, help="summary.json of `jukesep evaluate` on the test split")
    parser.add_argument("--foundation", type=Path, help="the foundation run folder (transfer models)")
    parser.add_argument("--hardware", default="", help="where it was trained, e.g. '2-core CPU, 1 thread per run'")
    parser.add_argument("--data", help="how the training data was made (default: the evaluated folder's path)")
    parser.add_argument("--notes", default="")
    args = parser.parse_args()
    model, data = load_model(args.separator, expect_kind="separator")
    summary = json.loads(args.summary.read_text())
    training = {f"{stage}-{stem}": run_summary(args.runs / f"{stage}-{stem}")
                for stem in model.stem_names for stage in ("vqvae", "encoder")}
    if args.foundation:
        training["foundation"] = run_summary(args.foundation)
    table = summary["table"]
    meta = {
        "name": "default",
        "data": args.data or summary["data"],
        "test_sdr_mdx": {k: round(v["mdx_sdr_mean"], 2) for k, v in table.items()},
        "test_split": f"{summary['songs']} songs, {summary['seconds_audio'] / 60:.1f} min, "
                      f"{'mono' if summary['settings']['mono'] else 'stereo'}",
        "training": training,
        "budget": f"{sum(t['minutes'] for t in training.values()):.1f} min of training on {args.hardware or '?'}",
        "notes": args.notes,
    }
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    save_model(TARGET, "separator", model, meta)
    print(f"wrote {TARGET} ({TARGET.stat().st_size / 2**20:.2f} MiB)")


if __name__ == "__main__":
    main()
