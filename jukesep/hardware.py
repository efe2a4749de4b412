"""What the machine can do, for choices made by measurement rather than by guess: the CPU's model
and flags, whether bfloat16 is fast here, and a summary for `jukesep info --system`."""
from __future__ import annotations

import os
import platform
from functools import lru_cache

from . import allocator
from .errors import JukesepError

BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # without one of these, bf16 on CPU is emulated (slower)
ISA_LIMIT_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # oneDNN's cap on the instructions it uses
BF16_ISAS = ("BF16", "AMX", "FP16", "AVX10", "ALL", "DEFAULT")  # names of oneDNN caps that keep bf16 native


def _cpuinfo_field(name: str) -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(name):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def cpu_model() -> str:
    return _cpuinfo_field("model name") or platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    return frozenset((_cpuinfo_field("flags") or "").split())


def isa_limit() -> str | None:
    """oneDNN's instruction-set cap from the environment (e.g. "AVX2"), or None."""
    for name in ISA_LIMIT_VARIABLES:
        if os.environ.get(name):
            return os.environ[name].upper()
    return None


def simd_flags() -> str:
    """The CPU flags that decide kernel speed (vector width, bf16, AMX), e.g. "avx2 avx512f ..."."""
    return " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "amx", "fma", "sse4")))) or "unknown"


def fast_bf16(device) -> bool:
    """bfloat16 pays off on CUDA GPUs that support it and CPUs with AVX512-BF16 or AMX; on
    others (e.g. AVX2 only) autocast emulates it and is many times slower than float32."""
    import torch
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        limit = isa_limit()  # capped below AVX512-BF16, oneDNN emulates bf16 whatever the CPU has
        if limit is not None and not any(name in limit for name in BF16_ISAS):
            return False
        return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)
    return False


def require_native_bf16(device, what: str, instead: str) -> None:
    """Refuse `what` (a bfloat16 setting) where bfloat16 is emulated: there oneDNN's fused bf16 kernels
    raise, and the rest runs many times slower than float32 (11x per training step, AVX2-only CPU)."""
    if not fast_bf16(device):
        where = f"this CPU ({simd_flags()})" if device.type == "cpu" else str(device)
        raise JukesepError(f"{what} needs native bfloat16 (a CUDA GPU that has it, or a CPU with avx512_bf16 or "
                           f"AMX); {where} emulates it: {instead}")


def choose_precision(device, requested: str = "auto") -> str:
    """"auto" → "bfloat16" where it is fast (`fast_bf16`), else "float32"; others as given."""
    if requested != "auto":
        return requested
    return "bfloat16" if fast_bf16(device) else "float32"


def describe(device) -> dict:
    """The facts `jukesep info --system` prints."""
    import torch
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch threads": torch.get_num_threads(),
           "cpu flags": simd_flags() + (f" (oneDNN capped at {isa_limit()})" if isa_limit() else ""),
           "torch": torch.__version__, "device": str(device),
           "precision (auto)": choose_precision(device), "malloc": allocator.describe()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out
