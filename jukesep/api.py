"""`Separator`: the one separation entry point. The CLI, the web worker, the evaluator and the
benchmarks all call it. It is a thin audio shell around `SeparatorModel`:

    decode → check → resample → chunk → model → refine → fit length
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import torch

from . import chunking
from .audio import check_audio, fit_length, read_audio, resample, to_float
from .checkpoint import load_model
from .defaults import DEFAULT_MODEL, DEFAULT_REFINE, MAX_SHIFTS
from .errors import CheckpointError, InvalidAudioError, JukesepError, TooShortAudioError
from .hardware import choose_precision, require_native_bf16
from .models import SeparatorModel
from .refine import check_refine, refine

PRETRAINED_DIR = Path(__file__).parent / "pretrained"
ProgressFn = Callable[[int, int], None]
PRECISIONS = ("auto", "float32", "bfloat16")
SEGMENT_RANGE = (0.01, 3600.0)  # seconds: tinier chunks would spend minutes recomputing context
MAX_CONTEXT = 60.0  # seconds per side
CPU_SEGMENT, GPU_SEGMENT = 2.0, 30.0  # seconds (see default_segment)
# A stage's chunks are at least this many times its one-sided context. Measured with the default
# model (long-reach heads; 3 interleaved rounds, 1 thread): 4x 4.43, 8x 4.79, 16x 4.75 x real time.
CONTEXT_SHARE = 16
CPU_BATCH = 1  # chunks per model call on CPU (see batch_for)
GPU_BATCH_SECONDS = 1200.0  # mono audio per model call on a GPU (activations ~ 1 GB per minute at width 64)
MAX_SHIFT_SECONDS = 0.5


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


def resolve_refine(mode: str, model: SeparatorModel) -> str:
    """The refinement `mode` means for `model` ("auto" resolved; "learned" checked)."""
    if mode == "auto":
        return "learned" if model.mask is not None else "softmask"
    if mode == "learned" and model.mask is None:
        raise JukesepError("refine learned needs a model with a learned mask (this one has none; "
                           "train one with `jukesep train mask`), or choose softmask, wiener or none")
    return mode


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
    names = ", ".join(sorted(p.stem for p in PRETRAINED_DIR.glob("*.pt"))) or "none"
    raise CheckpointError(f"{name_or_path}: no such model file or shipped model name (shipped: {names})")


def model_name(path: Path, metadata: dict) -> str:
    """What a model is called (its output folder): the name in its metadata, else the run it was
    bundled from (`train all` writes RUN/separator.pt), else its file name."""
    name = metadata.get("name") or (Path(str(metadata["run"])).name if metadata.get("run") else path.stem)
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name)).strip("._") or path.stem


def default_segment(device: torch.device) -> float:
    """Seconds per chunk, from measured speed curves (benchmarks/segment_curve.py, docs/RESULTS.md):
    on CPU short chunks stay in cache (2 s ran 1.4x faster than 10 s for the default model), on a GPU
    long ones mean fewer launches (30 s: 1.3x faster than 10 s). A stage of the model with a long
    reach lengthens its own chunks (`Separator._plan`)."""
    return GPU_SEGMENT if device.type == "cuda" else CPU_SEGMENT


class Separation(NamedTuple):
    """What `Separator.separate_file` returns."""
    stems: dict[str, np.ndarray]  # name → `np.ndarray[C x T]` at `rate`, the mixture's shape
    rate: int  # the file's sample rate
    mixture: np.ndarray  # the decoded file, `np.ndarray[C x T]`


def _check_number(name: str, value: float, low: float, high: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        raise JukesepError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")


class Separator:
    """Separates audio into stems with a `SeparatorModel`.

    segment: seconds of output per chunk (memory grows with it, not with the song); None picks the
        measured best for the device (`default_segment`);
    context: seconds of context on each side of a chunk, at most, for each of the model's stages
        (None = each stage's full reach, which makes chunked output identical to whole-signal output);
    overlap: fraction of a segment cross-faded with the next one (useful when `context` is cut);
    precision: "auto" (bfloat16 where the hardware makes it fast: CUDA GPUs, CPUs with AVX512-BF16 or
        AMX; float32 elsewhere), "float32" or "bfloat16" (refused elsewhere; code choice stays float32);
    refine: "none", "softmask" or "wiener": filter the mixture's STFT with the model's stems as
        power estimates (norbert; see refine.py), so that the stems add up to the mixture;
        "learned": the soft mask corrected by the model's learned mask (it runs all stems, at the
        model's rate); "auto": "learned" when the model has a learned mask, else "softmask";
    sum_to_mixture: add an equal share of (mixture − Σ stems) to every stem so they sum back to
        the mixture; off by default because that residual is other stems' bleed and model error;
    shifts: average this many extra passes, each on the input delayed by a random 0–0.5 s (Demucs'
        test-time augmentation; each costs one more separation; 0 = one plain pass);
    batch: chunks per model call (None: 1 on CPU, as many as fit a budget on a GPU).
    """

    def __init__(self, model: SeparatorModel, name: str = "custom", metadata: dict | None = None,
                 device: str | torch.device = "auto", segment: float | None = None, context: float | None = None,
                 overlap: float = 0.0, precision: str = "auto", sum_to_mixture: bool = False, shifts: int = 0,
                 batch: int | None = None, refine: str = DEFAULT_REFINE):
        self.refine = resolve_refine(check_refine(refine), model)
        self.device = resolve_device(device)
        if segment is None:
            segment = default_segment(self.device)
        _check_number("segment", segment, *SEGMENT_RANGE)
        if context is not None:
            _check_number("context", context, 0.0, MAX_CONTEXT)
        _check_number("overlap", overlap, 0.0, 0.5)
        if not isinstance(shifts, int) or not 0 <= shifts <= MAX_SHIFTS:
            raise JukesepError(f"shifts must be an integer from 0 to {MAX_SHIFTS}, got {shifts!r}")
        if precision not in PRECISIONS:
            raise JukesepError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = choose_precision(self.device, precision)
        if self.precision == "bfloat16":
            require_native_bf16(self.device, "precision bfloat16", "use float32 or auto")
        self.model = model.to(self.device).eval()
        # The channels-last twin runs the same weights much faster on CPU and CUDA (models/fast.py);
        # in bfloat16 it holds bf16 weights, which saves autocast's cast of every weight at every call.
        self.use_fast = self.device.type in ("cpu", "cuda")
        bf16 = torch.bfloat16 if self.precision == "bfloat16" else None
        self.runner = self.model.fast(bf16) if self.use_fast else self.model
        self.name, self.metadata = name, dict(metadata or {})
        self.segment, self.context, self.overlap = segment, context, overlap
        self.sum_to_mixture, self.shifts = sum_to_mixture, shifts
        if batch is not None and (not isinstance(batch, int) or batch < 1):
            raise JukesepError(f"batch must be a positive integer or None, got {batch!r}")
        self.batch = batch

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = DEFAULT_MODEL, **options) -> "Separator":
        path = model_path(name_or_path)
        model, data = load_model(path, expect_kind="separator")
        return cls(model, name=model_name(path, data["metadata"]), metadata=data["metadata"], **options)

    @property
    def stems(self) -> list[str]:
        return self.model.stem_names

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    # -- checks: each rule lives here once ---------------------------------------------------------

    def resolve_stems(self, stems: list[str] | None = None, two_stems: str | None = None) -> list[str]:
        """The stems to compute: `stems` (all when None), or the one of `two_stems`.
        Raises JukesepError for names the model lacks or combinations that cannot work."""
        if two_stems is not None:
            if stems is not None:
                raise JukesepError("choose stems or two_stems, not both")
            if self.sum_to_mixture:
                raise JukesepError("two_stems already sums to the mixture; drop sum_to_mixture")
            stems = [two_stems]
        if stems is None:
            return self.stems
        unknown = [s for s in stems if s not in self.stems]
        if unknown or not stems:
            raise JukesepError(f"stem {', '.join(unknown) or '(none)'} not in this model "
                               f"(it has {', '.join(self.stems)})")
        if len(set(stems)) != len(stems):
            raise JukesepError(f"stem names repeat: {', '.join(stems)}")
        if self.sum_to_mixture and set(stems) != set(self.stems):
            raise JukesepError("sum_to_mixture needs all stems; the residual would include the missing ones")
        return list(stems)

    def min_samples(self, rate: int) -> int:
        """The shortest input, in samples at `rate`, that holds one latent frame of the model."""
        return -(-self.model.hop_length() * rate // self.sample_rate)

    def check(self, audio: np.ndarray, rate: int, name: str = "audio") -> None:
        """Raise an `AudioError` subclass for audio that cannot be separated (`np.ndarray[C x T]`)."""
        check_audio(audio, rate, name)
        self.check_length(audio.shape[1], rate, name)

    def check_header(self, info, name: str = "audio") -> None:
        """What a file's header (`audio.AudioInfo`) can decide before decoding — channels, rate, too
        short — by the same rules as `check`, run on a stand-in of the header's shape (a read-only
        view of one value: no memory, whatever channel count a broken header claims)."""
        needed = self.min_samples(info.rate) if info.rate > 0 else 1
        self.check(np.broadcast_to(np.float32(1), (info.channels, min(info.frames, needed))), info.rate, name)

    def check_length(self, frames: int, rate: int, name: str = "audio") -> None:
        """TooShortAudioError for fewer than `min_samples(rate)` frames."""
        if frames < self.min_samples(rate):
            raise TooShortAudioError(f"{name}: too short to separate ({frames} samples at {rate} Hz; "
                                     f"at least {self.min_samples(rate)} are needed)")

    # -- separation ----------------------------------------------------------------------------------

    def separate_file(self, path, stems: list[str] | None = None, two_stems: str | None = None,
                      progress: ProgressFn | None = None, max_samples: int | None = None) -> Separation:
        """Decode `path`, check it and separate it at the file's own rate and length.
        `max_samples` bounds what may be decoded (all channels together; TooLongAudioError past it)."""
        stems = self.resolve_stems(stems, two_stems)
        audio, rate = read_audio(path, check=False, max_samples=max_samples)
        self.check(audio, rate, str(path))
        return Separation(self._separate(audio, rate, stems, two_stems, progress), rate, audio)

    def separate_file_to(self, path, targets: dict, fmt: str = "wav", bits: int = 16, clip: str = "rescale",
                         bitrate: int = 320, stems: list[str] | None = None, two_stems: str | None = None,
                         progress: ProgressFn | None = None, max_samples: int | None = None):
        """Separate `path` straight into files, block by block: memory stays flat in the song's
        length, and the output equals `separate_file`'s. `targets`: {name: file} for the names
        `separate_file` would return (and "mixture" for a copy of the input); all are written
        together or not at all. `progress(done, total)` counts seconds of audio. Returns
        `streaming.Written` (rate, frames, the clip gain, peaks)."""
        from .streaming import separate_to_files
        return separate_to_files(self, path, {name: Path(p) for name, p in targets.items()}, fmt, bits, clip,
                                 bitrate, stems, two_stems, progress, max_samples)

    def separate(self, audio, sample_rate: int, stems: list[str] | None = None, two_stems: str | None = None,
                 progress: ProgressFn | None = None) -> dict:
        """Separate `audio` (`[C x T]` or `[T]`, numpy or torch, any rate and channel count; integer
        PCM is scaled to [-1, 1) as soundfile reads it).

        Returns {stem: audio} as float32 of the input's type, shape and sample rate; with
        `two_stems="vocals"`, {"vocals", "no_vocals"} where no_vocals = mixture − vocals.
        `progress(done, total)` is called when the model starts (0 done) and after every chunk.
        """
        stems = self.resolve_stems(stems, two_stems)
        is_torch = isinstance(audio, torch.Tensor)
        if is_torch:
            audio_cpu = audio.detach().cpu()
            array = to_float((audio_cpu.float() if audio_cpu.is_floating_point() else audio_cpu).numpy())
        else:
            array = to_float(audio)
        squeeze = array.ndim == 1
        array = array[None] if squeeze else array
        if not isinstance(sample_rate, (int, np.integer)):
            raise InvalidAudioError(f"sample rate must be an integer, got {sample_rate!r}")
        self.check(array, int(sample_rate))
        result = self._separate(array, int(sample_rate), stems, two_stems, progress)
        result = {name: a[0] if squeeze else a for name, a in result.items()}
        if is_torch:
            return {name: torch.from_numpy(a).to(audio.device) for name, a in result.items()}
        return result

    def _separate(self, audio: np.ndarray, rate: int, stems: list[str], two_stems: str | None,
                  progress: ProgressFn | None, same_size: bool = False) -> dict[str, np.ndarray]:
        """Checked `np.ndarray[C x T]` at `rate` → {stem: `np.ndarray[C x T]`} at `rate`, refined.
        same_size: model calls of a few fixed shapes, for one block of a longer song (`_plan`).
        The learned mask refines all stems at the model's rate, the other modes at `rate`."""
        signal = resample(audio, rate, self.sample_rate)
        learned = self.refine == "learned"
        computed = self.stems if learned else stems
        estimates = self._run_model(torch.from_numpy(signal), computed, progress, same_size)
        if learned:
            model_rate = dict(zip(computed, estimates.numpy()))
            refine(signal, model_rate, "learned", self.sample_rate, net=self.model.mask)
            estimates = np.stack([model_rate[name] for name in stems])
        result = {name: fit_length(resample(np.asarray(estimates[i]), self.sample_rate, rate), audio.shape[1])
                  for i, name in enumerate(stems)}
        return self._refine(audio, result, rate, two_stems)

    def _run_model(self, signal: torch.Tensor, stems: list[str], progress: ProgressFn | None,
                   same_size: bool = False) -> torch.Tensor:
        """`Tensor[C x T]` at the model's rate → `Tensor[S x C x T]`: one plain pass, or the mean of
        `shifts` passes over randomly delayed copies (seeded: the same input gives the same output)."""
        if not self.shifts:
            return self._run_chunks(signal, stems, progress, same_size)
        rng = np.random.default_rng(0)
        total = torch.zeros(len(stems), *signal.shape)
        for i in range(self.shifts):
            delay = int(rng.integers(0, int(MAX_SHIFT_SECONDS * self.sample_rate)))
            def report(done, count, i=i):
                if progress is not None:
                    progress(i * count + done, self.shifts * count)
            shifted = torch.nn.functional.pad(signal, (delay, 0))
            total += self._run_chunks(shifted, stems, report, same_size)[..., delay:]
        return total / self.shifts

    @torch.inference_mode()
    def _run_chunks(self, signal: torch.Tensor, stems: list[str], progress: ProgressFn | None,
                    same_size: bool = False) -> torch.Tensor:
        """`Tensor[C x T]` at the model's rate → `Tensor[S x C x T]`: each of the model's stages in
        turn over the whole signal, chunk by chunk, each chunk with the context that stage needs."""
        model = self.runner.select(stems)
        hop, length = model.hop_length(), signal.shape[1]
        x = torch.nn.functional.pad(signal, (0, -length % hop))
        frames = x.shape[1] // hop
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                  enabled=self.precision == "bfloat16" and not self.use_fast)
        # On a GPU the song, its stems and everything between stay on the device (pinned transfers).
        where = self.device if self.device.type == "cuda" else torch.device("cpu")
        if where.type == "cuda":
            x = x.pin_memory().to(where, non_blocking=True)
        stages = model.stages()
        offsets = [0]
        for stage in stages:
            offsets.append(offsets[-1] + stage.cost * frames)
        for i, stage in enumerate(stages):
            last = i == len(stages) - 1
            chunks = self._plan(stage, frames, last, same_size)

            def process(windows: torch.Tensor, run=stage.run) -> torch.Tensor:
                with autocast:
                    return run(windows.to(self.device)).to(where)

            def report(done: int, _: int, stage=stage, base=offsets[i]) -> None:
                if progress is not None and (done or not base):  # the first stage's 0 only
                    progress(base + stage.cost * done, offsets[-1])

            span = chunks[0].window_stop - chunks[0].window_start
            x = chunking.overlap_add(x, chunks, process, stage.inp, stage.out,
                                     self.batch_for(span * hop, signal.shape[0]), where, report)
        out = x.float()[..., :length].contiguous()
        if where.type != "cuda":
            return out
        host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)  # a pinned copy back is faster
        host.copy_(out, non_blocking=True)
        torch.cuda.synchronize(where)
        return host

    def context_samples(self) -> int:
        """Samples at the model's rate that a chunked separation reads beyond a piece of audio, on
        each side, to separate it as it does (the stages' contexts added up)."""
        return sum(self._context_frames(stage) for stage in self.model.stages()) * self.model.hop_length()

    def _context_frames(self, stage) -> int:
        if self.context is None:
            return stage.reach
        return min(stage.reach, math.ceil(self.context * self.sample_rate / self.model.hop_length()))

    def _plan(self, stage, frames: int, last: bool, same_size: bool = False) -> list[chunking.Chunk]:
        """A stage's chunks over `frames` latent frames: `segment` long, or `CONTEXT_SHARE` times the
        stage's context when that is longer (each chunk recomputes its context), with the stage's full
        reach as context, or `context` when that is shorter; only the last stage (audio out)
        cross-fades `overlap`. same_size: `plan_chunks`'s; streaming asks it for every block but a
        song's last, so a long song's blocks reuse the first's kernel shapes (flat memory) and a
        song's end is not re-computed (no waste on short songs)."""
        hop, rate = self.runner.hop_length(), self.sample_rate
        context = self._context_frames(stage)
        segment = max(int(self.segment * rate) // hop, CONTEXT_SHARE * context, 1)
        overlap = int(self.overlap * self.segment * rate) // hop if last else 0
        return chunking.plan_chunks(frames, segment, context, overlap, 1, same_size)

    def batch_for(self, window: int, channels: int) -> int:
        """Chunks per model call: `batch` when set; else `CPU_BATCH` on CPU (measured with the default
        model in interleaved rounds: 4 chunks per call were 1.9x slower in float32 and no faster in
        bfloat16) and, on a GPU, as many as `GPU_BATCH_SECONDS` of mono audio allow."""
        if self.batch is not None:
            return self.batch
        if self.device.type != "cuda":
            return CPU_BATCH
        return max(1, int(GPU_BATCH_SECONDS * self.sample_rate) // (window * channels))

    def _refine(self, mixture: np.ndarray, stems: dict[str, np.ndarray], rate: int, two_stems: str | None) -> dict:
        if self.refine != "learned":  # (that one is done at the model's rate)
            stems = refine(mixture, stems, self.refine, rate, complete=len(stems) == len(self.stems))
        if two_stems is not None:
            return {two_stems: stems[two_stems], f"no_{two_stems}": mixture - stems[two_stems]}
        if self.sum_to_mixture:
            share = (mixture - sum(stems.values())) / len(stems)
            return {name: est + share for name, est in stems.items()}
        return stems
