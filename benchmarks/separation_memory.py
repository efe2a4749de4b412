"""Peak memory of separating a 1-minute and a 10-minute song (memory must not grow with length).

    python benchmarks/separation_memory.py [--model PATH] [--device cpu|cuda] [--minutes 1 10] [--json out.json]

Each length is written to a float wav first, then separated in a fresh process through
`Separator.separate_file_to` (decoding and writing included, as `jukesep separate` does); it reports peak RSS
(and CUDA max allocated on a GPU) and the
separation speed. Without --model, a 4-stem separator of the default model's size with random
weights is used (the cost is the same as trained weights).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from jukesep.hardware import cpu_model

CHILD = r"""
import json, resource, sys, time
from jukesep import allocator
allocator.switch()  # as the jukesep command does (JUKESEP_MALLOC=system: glibc's malloc)
import numpy as np, torch
from jukesep import Separator
from jukesep.models import SeparatorModel, VQVAEConfig
model_path, device, song = sys.argv[1], sys.argv[2], sys.argv[3]
minutes, width, depth = float(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
if model_path:
    sep = Separator.from_pretrained(model_path, device=device)
else:
    model = SeparatorModel({s: VQVAEConfig(width=width, depth=depth) for s in ("vocals", "drums", "bass", "other")})
    for stem in model.stems.values():
        stem.quantizer.k.normal_(0, 0.05)
    sep = Separator(model, device=device)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
folder = song.removesuffix(".wav")  # inside the parent's temporary folder, removed with it
out = sep.separate_file_to(song, {s: f"{folder}/{s}.wav" for s in sep.stems}).peaks
seconds = time.perf_counter() - start
cuda = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None
print(json.dumps({"minutes": minutes, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rss_before_mib": before / 1024, "cuda_max_allocated_mib": cuda,
                  "x_real_time": minutes * 60 / seconds, "stems": len(out), "malloc": allocator.active()}))
"""


def write_test_song(path: Path, minutes: float, rate: int = 44100) -> None:
    """Two tones, stereo float wav, written a minute at a time (the parent never holds the song)."""
    with sf.SoundFile(str(path), "w", rate, 2, subtype="FLOAT") as f:
        for start in range(0, int(minutes * 60 * rate), 60 * rate):
            t = np.arange(start, min(start + 60 * rate, int(minutes * 60 * rate))) / rate
            f.write(np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 330 * t)], 1))


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
    with tempfile.TemporaryDirectory(prefix="jukesep-memory-") as folder:
        for minutes in args.minutes:
            song = Path(folder) / f"{minutes:g}min.wav"
            write_test_song(song, minutes)
            run = subprocess.run([sys.executable, "-c", CHILD, args.model, args.device, str(song), str(minutes),
                                  str(args.width), str(args.depth)], capture_output=True, text=True, check=True)
            rows.append(json.loads(run.stdout.strip().splitlines()[-1]))
            song.unlink()
    print(f"{'song':>8}{'peak RSS MiB':>14}{'CUDA max MiB':>14}{'x real time':>13}  malloc")
    for r in rows:
        cuda = "–" if r["cuda_max_allocated_mib"] is None else f"{r['cuda_max_allocated_mib']:.0f}"
        print(f"{r['minutes']:>6.0f} m{r['peak_rss_mib']:>14.0f}{cuda:>14}{r['x_real_time']:>13.2f}  {r['malloc']}")
    result = {"benchmark": "separation_memory", "date": time.strftime("%Y-%m-%d"), "machine": cpu_model(),
              "threads": os.environ.get("OMP_NUM_THREADS", "all cores"), "device": args.device,
              "model": args.model or f"random width {args.width} depth {args.depth}", "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
