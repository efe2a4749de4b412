"""A probe for issue #16's backend choice: the shipped default model's fast form exported to ONNX
and run by ONNX Runtime on CPU, against PyTorch in float32 and with bfloat16 weights, on one batch
of 4 stereo chunks of 2 s through the whole `forward` (`Separator` itself runs the model's stages
one chunk at a time).

    pip install onnxruntime onnx onnxscript && python benchmarks/onnxruntime_probe.py

Not a project dependency: it reports figures to decide whether an optional backend pays off.
"""
from __future__ import annotations

import statistics
import tempfile
import time

import numpy as np
import torch

from jukesep import Separator
from jukesep.hardware import cpu_flags, cpu_model


def main(rounds: int = 5) -> None:
    import onnxruntime as ort
    sep = Separator.from_pretrained(device="cpu", precision="float32")
    fast, fast_bf16 = sep.model.fast(), sep.model.fast(torch.bfloat16)
    context = -(-sep.model.context_samples() // 8) * 8
    x = torch.randn(4, 2, int(2.0 * sep.sample_rate) // 8 * 8 + 2 * context)
    with tempfile.TemporaryDirectory() as folder:
        torch.onnx.export(fast, (x,), f"{folder}/model.onnx", dynamo=True, opset_version=18)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(f"{folder}/model.onnx", options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    runs = {"torch float32": lambda: fast(x), "torch bfloat16 weights": lambda: fast_bf16(x),
            "onnxruntime float32": lambda: session.run(None, {name: x.numpy()})}
    times = {label: [] for label in runs}
    with torch.inference_mode():
        reference = fast(x).numpy()
        differs = float(np.abs(session.run(None, {name: x.numpy()})[0] - reference).max())
        for _ in range(rounds):  # interleaved rounds
            for label, run in runs.items():
                start = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - start)
    flags = " ".join(sorted(f for f in cpu_flags() if f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16")))
    print(f"{cpu_model()} ({flags}), {torch.get_num_threads()} threads; largest output difference "
          f"onnxruntime vs torch: {differs:.3g} (near-tie code choices)")
    for label, values in times.items():
        print(f"{label:<26}{1000 * statistics.median(values):>9.1f} ms per batch")


if __name__ == "__main__":
    main()
