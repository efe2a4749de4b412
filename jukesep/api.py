"""`Separator`: the one separation entry point. The CLI, the web app and the evaluator call it."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import soxr
import torch

from . import chunking
from .audio import read_audio, validate_audio
from .checkpoint import load_model
from .errors import AudioError, CheckpointError, JukesepError
from .models import SeparatorModel
from .models.fast import FastStem

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
DEFAULT_MODEL = "default"
ProgressFn = Callable[[int, int], None]
PRECISIONS = ("float32", "bfloat16")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist."""
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise JukesepError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise JukesepError(f"device {name} requested but this torch sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise JukesepError(f"device {name} requested but MPS is not available")
    return dev


def model_path(name_or_path: str | os.PathLike) -> Path:
    """A file path as given, or the file of a model shipped in the package."""
    path = Path(name_or_path)
    if path.suffix or os.sep in str(name_or_path) or path.exists():
        return path
    shipped = PRETRAINED_DIR / f"{name_or_path}.pt"
    if shipped.exists():
        return shipped
    if str(name_or_path) == DEFAULT_MODEL:
        raise CheckpointError(f"no trained default model in this installation ({shipped} is missing); "
                              "reinstall jukesep or pass a separator file with --model PATH")
    raise CheckpointError(f"{name_or_path}: no such model file or shipped model name")


class Separator:
    """Separates audio into stems with a bundle of per-stem models.

    segment: seconds of output per chunk (memory grows with it, not with the song);
    context: seconds of input added on each side of a chunk (None = the model's full receptive
        field, which makes chunked output identical to whole-signal output);
    overlap: fraction of a segment cross-faded with the next one (useful when `context` is cut);
    precision: "float32" or "bfloat16" (autocast; about 1.8x faster on CPUs with AVX512-BF16 and on
        GPUs; code choice stays float32);
    sum_to_mixture: add an equal share of (mixture − Σ stems) to every stem so they sum back to
        the mixture; off by default because that residual is other stems' bleed and model error.
    """

    def __init__(self, model: SeparatorModel, name: str = "custom", metadata: dict | None = None,
                 device: str | torch.device = "auto", segment: float = 10.0, context: float | None = None,
                 overlap: float = 0.0, precision: str = "float32", sum_to_mixture: bool = False):
        if segment <= 0:
            raise JukesepError(f"segment must be positive, got {segment}")
        if context is not None and context < 0:
            raise JukesepError(f"context must be non-negative, got {context}")
        if not 0.0 <= overlap <= 0.5:
            raise JukesepError(f"overlap must be between 0 and 0.5, got {overlap}")
        if precision not in PRECISIONS:
            raise JukesepError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.device = resolve_device(device)
        self.precision = precision
        self.model = model.to(self.device).eval()
        # 2-D channels-last twins run the same weights much faster on CPU and CUDA (see models/fast.py)
        fast = self.device.type in ("cpu", "cuda")
        self.runners = {name: (FastStem(stem) if fast else stem).eval() for name, stem in self.model.stems.items()}
        self.name, self.metadata = name, dict(metadata or {})
        self.segment, self.context, self.overlap = segment, context, overlap
        self.sum_to_mixture = sum_to_mixture

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, **options) -> "Separator":
        path = model_path(name_or_path)
        model, data = load_model(path, expect_kind="separator")
        return cls(model, name=path.stem, metadata=data["metadata"], **options)

    @property
    def stems(self) -> list[str]:
        return self.model.stem_names

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    def separate_file(self, path, stems: list[str] | None = None,
                      progress: ProgressFn | None = None) -> tuple[dict[str, np.ndarray], int]:
        """Decode `path` and separate it. Returns ({stem: `np.ndarray[C x T]`}, sample rate of the file)."""
        audio, rate = read_audio(path)
        return self.separate(audio, rate, stems, progress), rate

    def separate(self, audio, sample_rate: int, stems: list[str] | None = None,
                 progress: ProgressFn | None = None) -> dict:
        """Separate `audio` (`[C x T]` or `[T]`, numpy or torch, any rate and channel count).

        Returns {stem: audio} of the same type, shape and sample rate as the input.
        `progress(done, total)` is called after every chunk of every stem.
        """
        is_torch = isinstance(audio, torch.Tensor)
        array = audio.detach().cpu().float().numpy() if is_torch else np.asarray(audio, dtype=np.float32)
        squeeze = array.ndim == 1
        array = array[None] if squeeze else array
        validate_audio(array, int(sample_rate))
        stems = self.check_stems(stems)
        result = self._separate_array(array, int(sample_rate), stems, progress)
        if not is_torch:
            return {name: a[0] if squeeze else a for name, a in result.items()}
        return {name: torch.from_numpy(a[0] if squeeze else a).to(audio.device) for name, a in result.items()}

    def check_stems(self, stems: list[str] | None) -> list[str]:
        """The stems to compute (all when None); raises JukesepError for names the model lacks."""
        if stems is None:
            return self.stems
        unknown = [s for s in stems if s not in self.stems]
        if unknown or not stems:
            raise JukesepError(f"stem {', '.join(unknown) or '(none)'} not in this model "
                               f"(it has {', '.join(self.stems)})")
        if self.sum_to_mixture and set(stems) != set(self.stems):
            raise JukesepError("sum_to_mixture needs all stems; the residual would include the missing ones")
        return list(stems)

    def _separate_array(self, audio: np.ndarray, rate: int, stems: list[str],
                        progress: ProgressFn | None) -> dict[str, np.ndarray]:
        channels, length = audio.shape
        model_rate, hop = self.sample_rate, self.model.hop_length()
        signal = resample(audio, rate, model_rate)
        if signal.shape[1] < hop:
            raise AudioError(f"audio too short: {length} samples at {rate} Hz; at least "
                             f"{-(-hop * rate // model_rate)} are needed")
        padded = torch.zeros(channels, -(-signal.shape[1] // hop) * hop)
        padded[:, :signal.shape[1]] = torch.from_numpy(signal)
        context = self.model.context_samples() if self.context is None else int(self.context * model_rate)
        segment = int(self.segment * model_rate)
        chunks = chunking.plan_chunks(padded.shape[1], segment, context, int(self.overlap * segment), hop)
        outputs = {name: torch.zeros_like(padded) for name in stems}
        total, done = len(chunks) * len(stems), 0

        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16")

        @torch.inference_mode()
        def process(window: torch.Tensor):
            nonlocal done
            batch = window.to(self.device).unsqueeze(1)  # channels as a batch of mono signals
            for name in stems:
                with autocast:
                    estimate = self.runners[name](batch)
                yield name, estimate.squeeze(1).float().cpu()
                done += 1
                if progress is not None:
                    progress(done, total)

        chunking.overlap_add(padded, chunks, process, outputs)
        result = {}
        for name in stems:
            estimate = outputs.pop(name)[:, :signal.shape[1]].numpy()
            result[name] = fit_length(resample(estimate, model_rate, rate), length)
        if self.sum_to_mixture:
            share = (audio - sum(result.values())) / len(result)
            result = {name: est + share for name, est in result.items()}
        return result


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """`np.ndarray[C x T]` → `np.ndarray[C x T']` at `rate_out` (soxr, high quality)."""
    if rate_in == rate_out:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad `np.ndarray[C x T]` to exactly `length` samples."""
    if audio.shape[1] >= length:
        return np.ascontiguousarray(audio[:, :length])
    return np.pad(audio, ((0, 0), (0, length - audio.shape[1])))
