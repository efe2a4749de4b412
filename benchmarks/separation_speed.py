"""Separation speed of jukesep and two peer separators on the same input, on the current device.

    python benchmarks/separation_speed.py [--seconds 30] [--device cpu|cuda] [--threads N]
                                          [--repeat 1] [--systems ...] [--json out.json]

Prints, for each system, the wall time of one separation of a fixed synthetic stereo 44.1 kHz
excerpt into 4 stems and its speed in x real time (seconds of audio per second of wall time).
Every system is warmed up once on a short input before it is timed. All weights are untrained
(random): a separation costs the same with trained weights.

Systems (each as its own package runs it):
  jukesep      SeparatorModel of 4 default-size stems (width 64, depth 8) through `jukesep.Separator`
               (default segment, full receptive-field context, no overlap), float32; also with
               precision="bfloat16" (autocast), with narrower stems (width 32 and 16), and the
               size trained on CPU (width 16, depth 6, latent 32, 512 codes) in float32 and bfloat16;
  Open-Unmix   UMX-HQ (`openunmix.umxhq(pretrained=False)`: 4 targets, hidden 512, stereo, 1 Wiener
               EM iteration) through `openunmix.predict.separate`;
  HT-Demucs    `demucs.htdemucs.HTDemucs` with the configuration of demucs's released `htdemucs`
               model (4 sources, bottom_channels 512, dconv_mode 3, segment 7.8 s) through
               `demucs.apply.apply_model` with the defaults of `demucs.separate` (shifts 1,
               overlap 0.25), including its input normalisation.

The peers are optional; a missing one is reported and skipped. Install them into the same
environment WITHOUT their dependencies (their pinned torchaudio would replace your torch build;
none of the modules used here needs it):

    pip install --no-deps openunmix==1.3.0 demucs==4.1.0 einops julius

How the peers are imported without torchaudio (the import helpers of `jukesep.evaluate.peers`,
which the evaluator's baselines use too):
  * demucs: only `demucs.htdemucs` and `demucs.apply` are imported; they need einops, julius and
    tqdm (a jukesep dependency), never torchaudio.
  * openunmix: its package `__init__` (via `openunmix.utils`) and `openunmix.transforms` run
    `import torchaudio` at import time although the model, the torch STFT filterbank and the
    Wiener filter never use it (only file I/O and resampling do). As a last resort a stub
    `torchaudio` module stands in `sys.modules` while openunmix is imported, and only if
    torchaudio is not installed; the stub raises on any attribute access, so nothing can use it
    silently, and it is removed right after the import. No openunmix or demucs code is copied
    or patched.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Callable

import numpy as np
import torch

from jukesep import allocator
from jukesep.api import Separator, resolve_device
from jukesep.audio import write_audio
from jukesep.defaults import DEFAULT_REFINE, REFINES, STEMS
from jukesep.errors import JukesepError
from jukesep.evaluate.peers import INSTALL as PEER_INSTALL
from jukesep.evaluate.peers import import_demucs, import_openunmix
from jukesep.hardware import cpu_flags, cpu_model, simd_flags
from jukesep.models import SeparatorModel, VQVAEConfig

RATE = 44100
WARMUP_SECONDS = 1.0
SYSTEMS = ("jukesep-default", "jukesep", "jukesep-bf16",
           "jukesep-w32", "jukesep-w16", "jukesep-small", "jukesep-small-bf16",
           "openunmix", "htdemucs")

SeparateFn = Callable[[np.ndarray, str], dict]


class PeerMissing(Exception):
    pass


@dataclass
class System:
    key: str
    label: str
    params: int
    separate: SeparateFn  # (np.ndarray[2 x T] float32 at 44.1 kHz, the same as a float wav file) -> {stem: [2 x T]}
    notes: str = ""
    times: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # CPU cores other processes used meanwhile


# -- input -----------------------------------------------------------------------------------

def midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12)


def test_signal(seconds: float, seed: int = 0) -> np.ndarray:
    """A fixed, roughly musical stereo mixture `np.ndarray[2 x T]` at 44.1 kHz: 120 bpm drums
    (kick, snare, hi-hat), a plucked bass line, panned sustained chords with harmonics and a
    vibrato lead, all note choices drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * RATE))
    out = np.zeros((2, n))

    def add(start: float, wave: np.ndarray, pan: float = 0.0) -> None:
        i = int(start * RATE)
        if i >= n:
            return
        wave = wave[:n - i]
        out[0, i:i + len(wave)] += np.sqrt(0.5 * (1 - pan)) * wave
        out[1, i:i + len(wave)] += np.sqrt(0.5 * (1 + pan)) * wave

    def tone(freq: float, dur: float, decay: float, harmonics: int = 1, vibrato: float = 0.0) -> np.ndarray:
        t = np.arange(int(dur * RATE)) / RATE
        phase = 2 * np.pi * freq * t + vibrato * np.sin(2 * np.pi * 5.5 * t)
        wave = sum(np.sin(h * phase + rng.uniform(0, 2 * np.pi)) / h ** 1.5 for h in range(1, harmonics + 1))
        return wave * np.exp(-t / decay) * np.minimum(1.0, t / 0.005)

    def noise(dur: float, decay: float, bright: bool) -> np.ndarray:
        t = np.arange(int(dur * RATE)) / RATE
        burst = rng.standard_normal(len(t))
        if bright:
            burst = np.diff(burst, prepend=0.0)
        return burst * np.exp(-t / decay)

    def kick() -> np.ndarray:  # a sine sweeping down from 150 Hz to 50 Hz
        t = np.arange(int(0.3 * RATE)) / RATE
        return 0.5 * np.sin(2 * np.pi * (50 * t + 4 * (1 - np.exp(-t / 0.04)))) * np.exp(-t / 0.1)

    beat = 0.5  # 120 bpm
    progression = [57, 53, 48, 55]  # A minor, F, C, G roots (MIDI)
    scale = [0, 2, 3, 5, 7, 8, 10, 12]
    for bar_index, bar in enumerate(np.arange(0.0, seconds, 4 * beat)):
        root = progression[bar_index % len(progression)]
        third = 3 if bar_index % len(progression) == 0 else 4
        for interval, pan in ((0, -0.5), (third, 0.4), (7, -0.2)):
            add(bar, 0.08 * tone(midi_hz(root + interval), 4 * beat, 1.5, harmonics=6), pan)
        for b in range(4):
            start = bar + b * beat
            add(start, kick() if b % 2 == 0 else 0.25 * noise(0.25, 0.06, False) + 0.15 * tone(190, 0.25, 0.05))
            for half in (0.0, 0.5):
                add(start + half * beat, 0.06 * noise(0.08, 0.015, True), pan=0.3)
            add(start, 0.25 * tone(midi_hz(root - 12 + (7 if b == 3 else 0)), beat, 0.35, harmonics=3))
        for step in range(8):
            if rng.random() < 0.7:
                note = root + 12 + scale[rng.integers(len(scale))]
                add(bar + step * beat / 2, 0.1 * tone(midi_hz(note), beat, 0.6, harmonics=4, vibrato=0.3), 0.1)
    out += 1e-4 * rng.standard_normal(out.shape)
    return (0.7 * out / np.abs(out).max()).astype(np.float32)


# -- systems ---------------------------------------------------------------------------------

def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def jukesep_system(key: str, device: torch.device, width: int = 64, depth: int = 8,
                   precision: str = "float32", emb_width: int = 64, codebook_size: int = 2048) -> System:
    torch.manual_seed(0)
    config = VQVAEConfig(width=width, depth=depth, emb_width=emb_width, codebook_size=codebook_size)
    model = SeparatorModel({s: config for s in STEMS})
    for stem in model.stems.values():
        # A new model's codebook is all zeros (every latent would pick code 0); fill it like a
        # trained one so that the nearest-code search does real work.
        stem.quantizer.k.copy_(torch.randn_like(stem.quantizer.k))
    separator = Separator(model, device=device, precision=precision)
    label = f"jukesep w{width} d{depth} {'fp32' if precision == 'float32' else 'bf16 autocast'}"
    context = model.context_samples() / model.sample_rate
    # Through the product's one door: the file is decoded by `separate_file` (a few ms of the total).
    return System(key, label, n_params(model), lambda audio, path: separator.separate_file(path).stems,
                  notes=f"segment {separator.segment:g} s, context {context:.2f} s each side, overlap 0, "
                        f"precision {precision}")


def openunmix_system(device: torch.device) -> System:
    try:
        import_openunmix()  # imports the package with the torchaudio stub, see the module docstring
        import openunmix
        import openunmix.predict
    except (JukesepError, ImportError) as exc:
        raise PeerMissing(str(exc)) from None
    torch.manual_seed(0)
    separator = openunmix.umxhq(pretrained=False, device=device)  # niter=1, wiener_win_len=300
    separator.freeze()

    def separate(audio: np.ndarray, path: str) -> dict:
        with torch.no_grad():
            estimates = openunmix.predict.separate(torch.from_numpy(audio), rate=RATE,
                                                   separator=separator, device=device)
        return {name: est[0].cpu().numpy() for name, est in estimates.items()}

    return System("openunmix", "Open-Unmix UMX-HQ", n_params(separator), separate,
                  notes=f"openunmix {version('openunmix')}, niter {separator.niter}, "
                        f"wiener_win_len {separator.wiener_win_len}")


def htdemucs_system(device: torch.device) -> System:
    try:
        HTDemucs, apply_model = import_demucs()
    except JukesepError as exc:
        raise PeerMissing(str(exc)) from None
    torch.manual_seed(0)
    # The released `htdemucs` model's constructor arguments (4 sources, 7.8 s training segment).
    model = HTDemucs(sources=["drums", "bass", "other", "vocals"], audio_channels=2, samplerate=RATE,
                     bottom_channels=512, dconv_mode=3, segment=Fraction(39, 5)).eval()
    shifts, overlap = 1, 0.25  # demucs.separate's defaults

    def separate(audio: np.ndarray, path: str) -> dict:
        random.seed(0)  # apply_model draws its time shift from `random`
        wav = torch.from_numpy(audio)
        ref = wav.mean(0)
        wav = (wav - ref.mean()) / ref.std()  # as demucs.separate / demucs.api do
        with torch.no_grad():
            sources = apply_model(model, wav[None], device=device, shifts=shifts, split=True, overlap=overlap,
                                  progress=False)[0]
        sources = sources * ref.std() + ref.mean()
        return {name: s.cpu().numpy() for name, s in zip(model.sources, sources)}

    return System("htdemucs", "HT-Demucs (htdemucs config)", n_params(model), separate,
                  notes=f"demucs {version('demucs')}, segment {float(model.segment)} s, shifts {shifts}, "
                        f"overlap {overlap}")


def default_system(key: str, device: torch.device) -> System:
    """The shipped default model, as `jukesep separate` runs it (precision auto, batch auto)."""
    separator = Separator.from_pretrained(device=device)
    return System(key, f"jukesep default ({separator.precision})", n_params(separator.model),
                  lambda audio, path: separator.separate_file(path).stems,
                  notes=f"shipped model, precision {separator.precision}, "
                        f"batch {separator.batch or 'auto'}")


def model_system(spec: str, device: torch.device) -> System:
    """--model LABEL=PATH[:REFINE]: a model file or shipped name, as `jukesep separate` runs it (its
    default refinement unless REFINE is given)."""
    label, _, rest = spec.partition("=")
    path, _, refine = rest.rpartition(":") if rest.rpartition(":")[2] in REFINES else (rest, "", "")
    separator = Separator.from_pretrained(path, device=device, refine=refine or DEFAULT_REFINE)
    return System(f"model:{label}", f"jukesep {label} ({separator.precision}, refine {separator.refine})",
                  n_params(separator.model), lambda audio, p: separator.separate_file(p).stems,
                  notes=f"{path}, precision {separator.precision}, refine {separator.refine}")


def build(key: str, device: torch.device) -> System:
    if key.startswith("model:"):
        return model_system(key.removeprefix("model:"), device)
    if key == "jukesep-default":
        return default_system(key, device)
    if key == "jukesep":
        return jukesep_system(key, device)
    if key == "jukesep-bf16":
        return jukesep_system(key, device, precision="bfloat16")
    if key == "jukesep-w32":
        return jukesep_system(key, device, width=32)
    if key == "jukesep-w16":
        return jukesep_system(key, device, width=16)
    if key in ("jukesep-small", "jukesep-small-bf16"):  # the size trained on CPU (docs/RESULTS.md)
        return jukesep_system(key, device, width=16, depth=6, emb_width=32, codebook_size=512,
                              precision="bfloat16" if key.endswith("bf16") else "float32")
    if key == "openunmix":
        return openunmix_system(device)
    if key == "htdemucs":
        return htdemucs_system(device)
    raise ValueError(key)


# -- measurement -----------------------------------------------------------------------------

def version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes of the machine have used since boot (Linux), else None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_output(system: System, audio: np.ndarray, out: dict) -> None:
    assert sorted(out) == sorted(STEMS), (system.key, sorted(out))
    for name, est in out.items():
        assert est.shape == audio.shape, (system.key, name, est.shape, audio.shape)
        assert np.isfinite(est).all(), (system.key, name, "non-finite output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="input length in seconds (default 30)")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeat", type=int, default=1, help="timed runs per system; the median is reported")
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS), metavar="SYSTEM",
                        help=f"subset to run, from: {' '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=PATH[:REFINE]",
                        help="also time this model file or shipped name, with this refinement (repeatable), "
                             "e.g. --model new=default:softmask --model old=old.pt")
    parser.add_argument("--json", help="write machine info and results to this file")
    args = parser.parse_args()
    allocator.switch()  # every system runs under the malloc the jukesep command uses (JUKESEP_MALLOC=system: glibc's)
    args.systems = list(args.systems) + [f"model:{spec}" for spec in args.model]
    if args.seconds < 2 * WARMUP_SECONDS or args.repeat < 1:
        parser.error(f"--seconds must be at least {2 * WARMUP_SECONDS} and --repeat at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
    except JukesepError as exc:
        parser.error(str(exc))

    audio = test_signal(args.seconds)
    warmup = np.ascontiguousarray(audio[:, :int(WARMUP_SECONDS * RATE)])
    folder = tempfile.TemporaryDirectory(prefix="jukesep-bench-")
    audio_file, warmup_file = f"{folder.name}/input.wav", f"{folder.name}/warmup.wav"
    write_audio(audio_file, audio, RATE, bits=32, clip="none")
    write_audio(warmup_file, warmup, RATE, bits=32, clip="none")
    machine = {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "avx512_bf16": "avx512_bf16" in cpu_flags(), "cpu_flags": simd_flags(), "torch": torch.__version__,
        # an emulated smaller CPU: oneDNN's, PyTorch's and MKL's instruction caps, when set
        "isa_caps": {name: os.environ[name] for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                         "MKL_ENABLE_INSTRUCTIONS") if os.environ.get(name)},
        "python": platform.python_version(), "malloc": allocator.active(),
        "device": args.device, "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "platform": platform.platform(),
    }
    load_start = load_average()
    where = machine["gpu"] or f"{machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} threads"
    print(f"input {args.seconds:g} s stereo {RATE} Hz; device {args.device} ({where}); torch {torch.__version__}")
    if load_start and device.type == "cpu" and load_start[0] > 0.5 * (os.cpu_count() or 1):
        print(f"warning: load average {load_start[0]} before the run: other processes share the CPU, "
              "timings will be pessimistic")

    done: list[System] = []
    skipped: dict[str, str] = {}
    for key in args.systems:  # build and warm up every system first ...
        try:
            system = build(key, device)
            check_output(system, warmup, system.separate(warmup, warmup_file))
            done.append(system)
        except PeerMissing as exc:
            skipped[key] = str(exc)
            hint = "" if PEER_INSTALL in str(exc) else f"; install with: {PEER_INSTALL}"
            print(f"skipped {key}: {exc}{hint}", flush=True)
        except Exception as exc:  # e.g. bf16 autocast unsupported here: report, keep going
            skipped[key] = f"failed: {type(exc).__name__}: {exc}"
            print(f"skipped {key}: failed with {type(exc).__name__}: {exc}", flush=True)
    for round_ in range(args.repeat):  # ... then time them in interleaved rounds: noise hits all alike
        for system in done:
            sync(device)
            busy, own, start = busy_cpu_seconds(), time.process_time(), time.perf_counter()
            out = system.separate(audio, audio_file)
            sync(device)
            wall = time.perf_counter() - start
            system.times.append(wall)
            if busy is not None:  # contention check: CPU time of other processes meanwhile
                system.others.append(max(0.0, busy_cpu_seconds() - busy - (time.process_time() - own)) / wall)
            check_output(system, audio, out)
            del out
            print(f"  round {round_ + 1}: {system.label}: {wall:.1f} s ({args.seconds / wall:.3f}x real time)",
                  flush=True)
    load_end = load_average()
    contended = [s.label for s in done if s.others and max(s.others) > 0.2]

    print()
    print(f"{'system':<30}{'params':>9}{'wall s':>9}{'x real time':>13}")
    for system in done:
        seconds = statistics.median(system.times)
        print(f"{system.label:<30}{system.params / 1e6:>8.1f}M{seconds:>9.1f}{args.seconds / seconds:>13.3f}")
    for key in skipped:
        print(f"{key:<30}{'skipped':>31}")
    if contended:
        print(f"warning: other processes used over 0.2 CPU cores while timing {', '.join(contended)}; "
              "those figures are pessimistic")

    if args.json:
        result = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine, "load_average": {"start": load_start, "end": load_end},
            "seconds": args.seconds, "sample_rate": RATE, "channels": 2, "repeat": args.repeat,
            "warmup_seconds": WARMUP_SECONDS, "versions": {p: version(p) for p in ("jukesep", "openunmix", "demucs")},
            "results": [{"key": s.key, "label": s.label, "params": s.params, "notes": s.notes,
                         "seconds": statistics.median(s.times), "all_seconds": s.times,
                         "x_real_time": args.seconds / statistics.median(s.times),
                         "other_processes_cpu_cores": s.others} for s in done],
            "skipped": skipped,
        }
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
