"""The ceiling stage 2 cannot pass: each stem's stage-1 VQ-VAE reconstructing the clean stem (encode,
quantise, decode), scored like a separation (MDX SDR per song, mean over songs), per split.

    python benchmarks/vqvae_ceiling.py RUN_FOLDER DATA [--splits test heldout] [--json out.json]

RUN_FOLDER holds vqvae-<stem>/best.pt (scripts/train_default_model.sh's RUNS/transfer). A separator
decodes each stem through that stem's codebook and decoder, so no mixture encoder can do better than
the stem's own encoder does here; a split where this ceiling is low is one the codebooks cannot express.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from jukesep.checkpoint import load_model
from jukesep.data.tracks import find_tracks
from jukesep.defaults import STEMS
from jukesep.evaluate.metrics import mdx_sdr


@torch.inference_mode()
def reconstruct(model, audio: np.ndarray) -> np.ndarray:
    """`np.ndarray[C x T]` → the VQ-VAE's reconstruction `[C x T]`, each channel on its own (mono models)."""
    hop = model.cfg.hop_length
    length = audio.shape[-1]
    x = torch.from_numpy(np.ascontiguousarray(audio))[:, None]  # [C x 1 x T]
    x = torch.nn.functional.pad(x, (0, -length % hop))
    return model.decode(model.encode(x))[:, 0, :length].numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--splits", nargs="+", default=["test", "heldout"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    models = {s: load_model(args.runs / f"vqvae-{s}" / "best.pt", expect_kind="vqvae")[0] for s in STEMS}
    result = {"runs": str(args.runs), "data": str(args.data), "mdx_sdr": {}}
    for split in args.splits:
        tracks = find_tracks(args.data, split)
        scores = {s: [mdx_sdr(ref, reconstruct(models[s], ref)) for ref in (t.read(s) for t in tracks)]
                  for s in STEMS}
        means = {s: float(np.mean(v)) for s, v in scores.items()}
        means["average"] = float(np.mean(list(means.values())))
        result["mdx_sdr"][split] = {k: round(v, 2) for k, v in means.items()}
        print(f"{split} ({len(tracks)} songs): " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()) + " dB")
        if args.json:  # after each split: a run stopped later keeps what it measured
            args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
