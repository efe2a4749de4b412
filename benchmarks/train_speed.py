"""Stage-1 training speed at the paper's batch (4 x 393,216 samples) on the current device.

    python benchmarks/train_speed.py [--device cuda] [--bf16] [--compile] [--steps 5] [--json out.json]

Prints steps/s and seconds of audio per second for the paper-size VQ-VAE with the paper's loss
(lmix + multi-resolution STFT + commitment, EMA codebook), Adam with warm-up, grad clipping and
parameter EMA, through the training step `jukesep train vqvae` runs (`jukesep.train.step`).
Synthetic batches: data loading is not measured.
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from jukesep.api import resolve_device
from jukesep.models import VQVAEConfig
from jukesep.train.config import TrainConfig
from jukesep.train.step import ParamEMA, adam_with_warmup, train_step
from jukesep.train.tasks import AutoencoderTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--excerpt", type=int, default=393216)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up steps)")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()

    device = resolve_device(args.device)
    cfg = TrainConfig(data="-", stem="drums", batch_size=args.batch, excerpt=args.excerpt,
                      model=VQVAEConfig(width=args.width))
    task = AutoencoderTask(cfg)
    model = task.model.to(device).train()
    net = torch.compile(model) if args.compile else model
    optimizer, schedule = adam_with_warmup(model.parameters(), cfg.lr, cfg.warmup)
    ema = ParamEMA(model, cfg.param_ema)
    batch = {"target": 0.1 * torch.randn(args.batch, 1, args.excerpt, device=device)}

    def step() -> None:
        train_step(model, optimizer, lambda: task.loss(net, batch), bf16=args.bf16, clip=cfg.clip,
                   schedule=schedule, ema=ema)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / args.steps
    audio = args.batch * args.excerpt / 44100
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(), "torch": torch.__version__, "batch": args.batch, "excerpt": args.excerpt,
        "width": args.width, "bf16": args.bf16, "compile": args.compile, "seconds_per_step": seconds,
        "steps_per_second": 1 / seconds, "audio_seconds_per_second": audio / seconds,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"{'device':<28}{'batch':>14}{'bf16':>6}{'compile':>9}{'ms/step':>10}{'steps/s':>9}{'audio s/s':>11}")
    print(f"{result['device'][:27]:<28}{f'{args.batch}x{args.excerpt}':>14}{str(args.bf16):>6}"
          f"{str(args.compile):>9}{1000 * seconds:>10.1f}{1 / seconds:>9.3f}{audio / seconds:>11.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
