#!/usr/bin/env bash
# The device check for a lent GPU machine (see README "Speed"): correctness of the CUDA path, then
# separation speed of the shipped default model, the paper-size model and HT-Demucs on one long
# song in one run. Wheels for what the machine's image lacks travel in .whl (soundfile, soxr, PyAV,
# demucs...). Writes $OUT/gpu_speed.json and $OUT/gpu.log.
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'bf16', torch.cuda.is_bf16_supported())"
  python3 -m pytest -q -p no:cacheprovider tests/test_separator.py -k "cuda or batched" -m "gpu or not gpu"
  python3 benchmarks/separation_speed.py --device cuda --seconds "${SECONDS_OF_AUDIO:-600}" --repeat 3 \
      --systems jukesep-default jukesep htdemucs --json "$OUT/gpu_speed.json"
} 2>&1 | tee "$OUT/gpu.log"
