"""Peak memory of separating a 1-minute and a 10-minute song (memory must not grow with length).

    python benchmarks/separation_memory.py [--model PATH] [--device cpu|cuda] [--minutes 1 10] [--json out.json]

Each length runs in a fresh process; it reports peak RSS (and CUDA max allocated on a GPU) and the
separation speed. Without --model, a 4-stem separator of the default model's size with random
weights is used (the cost is the same as trained weights).
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from jukesep import Separator
from jukesep.models import SeparatorModel, VQVAEConfig
model_path, device = sys.argv[1], sys.argv[2]
minutes, width, depth = float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if model_path:
    sep = Separator.from_pretrained(model_path, device=device)
else:
    model = SeparatorModel({s: VQVAEConfig(width=width, depth=depth) for s in ("vocals", "drums", "bass", "other")})
    for stem in model.stems.values():
        stem.quantizer.k.normal_(0, 0.05)
    sep = Separator(model, device=device)
n = int(minutes * 60 * 44100)
t = np.arange(n, dtype=np.float32) / 44100
audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)]).astype(np.float32)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
out = sep.separate(audio, 44100)
seconds = time.perf_counter() - start
cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({"minutes": minutes, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mib": before / 1024, "cuda_max_allocated_mib": cuda,
                  "x_real_time": minutes * 60 / seconds, "stems": len(out)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="separator file (default: random weights, see --width)")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = []
    for minutes in args.minutes:
        run = subprocess.run([sys.executable, "-c", CHILD, args.model, args.device, str(minutes), str(args.width),
                              str(args.depth)], capture_output=True, text=True, check=True)
        rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
    print(f"{'song':>8}{'peak RSS MiB':>14}{'CUDA max MiB':>14}{'x real time':>13}")
    for r in rows:
        cuda = "–" if r["cuda_max_allocated_mib"] is None else f"{r['cuda_max_allocated_mib']:.0f}"
        print(f"{r['minutes']:>6.0f} m{r['peak_rss_mib']:>14.0f}{cuda:>14}{r['x_real_time']:>13.2f}")
    result = {"benchmark": "separation_memory", "date": time.strftime("%Y-%m-%d"), "machine": platform.processor()
              or platform.machine(), "device": args.device, "model": args.model or f"random width {args.width} "
              f"depth {args.depth}", "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
