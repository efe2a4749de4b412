"""Separation speed of the shipped default model against segment length and precision, measured
side by side in interleaved rounds (the machine's noise hits every setting alike).

    python benchmarks/segment_curve.py [--device cpu] [--seconds 30] [--rounds 3] [--json out.json]

Output is identical for every segment (the context is the model's whole receptive field); only the
speed changes. Prints x real time per setting (median over rounds) and the CPU's flags.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from jukesep import Separator
from jukesep.hardware import cpu_flags, cpu_model

RATE = 44100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--segments", type=float, nargs="+", default=[1.0, 2.0, 5.0, 10.0, 30.0])
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--json")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t = np.arange(int(args.seconds * RATE)) / RATE
    audio = np.stack([0.2 * np.sin(2 * np.pi * 220 * t), 0.2 * np.sin(2 * np.pi * 330 * t)])
    audio = (audio + 0.05 * rng.standard_normal(audio.shape)).astype(np.float32)
    settings = [(seg, prec) for prec in args.precisions for seg in args.segments]
    separators = {s: Separator.from_pretrained(device=args.device, segment=s[0], precision=s[1]) for s in settings}
    times = {s: [] for s in settings}
    for sep in separators.values():
        sep.separate(audio[:, :RATE * 3], RATE)  # warm-up
    for _ in range(args.rounds):
        for setting, sep in separators.items():
            start = time.perf_counter()
            sep.separate(audio, RATE)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times[setting].append(time.perf_counter() - start)
    flags = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx512_bf16", "amx", "avx2", "avx512f"))))
    print(f"{cpu_model()} ({flags}), {torch.get_num_threads()} threads, {args.seconds:g} s stereo, "
          f"median of {args.rounds} interleaved rounds")
    print(f"{'segment s':>10}" + "".join(f"{p:>12}" for p in args.precisions))
    for seg in args.segments:
        print(f"{seg:>10g}" + "".join(f"{args.seconds / statistics.median(times[(seg, p)]):>11.2f}x"
                                      for p in args.precisions))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"cpu": cpu_model(), "flags": flags, "threads": torch.get_num_threads(), "device": args.device,
                       "seconds": args.seconds, "x_real_time": {f"{s}s {p}": args.seconds / statistics.median(v)
                                                                for (s, p), v in times.items()},
                       "date": time.strftime("%Y-%m-%d")}, f, indent=2)


if __name__ == "__main__":
    main()
