"""Command line: a thin shell over `Separator` and the checkpoint functions."""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm import tqdm

from . import __version__, distrib
from .api import DEFAULT_MODEL, Separator
from .audio import CLIP_MODES, FORMATS, check_output, list_audio_files, write_stems
from .checkpoint import import_jukebox, read_checkpoint
from .corpus import cli as corpus_cli
from .errors import JukesepError
from .evaluate import cli as evaluate_cli
from .evaluate import peers_cli
from .train import cli as train_cli
from .web import cli as web_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jukesep", description="Music source separation with Jukebox's VQ-VAE.")
    parser.add_argument("--version", action="version", version=f"jukesep {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    sep = sub.add_parser("separate", help="separate songs into stems")
    sep.add_argument("inputs", nargs="+", type=Path, help="audio files or folders of them")
    sep.add_argument("-o", "--out", type=Path, default=Path("separated"), help="output root (default: separated)")
    sep.add_argument("-m", "--model", default=DEFAULT_MODEL, help="separator file or shipped model name")
    group = sep.add_mutually_exclusive_group()
    group.add_argument("--stems", help="comma-separated stems to compute (default: all of the model's)")
    group.add_argument("--two-stems", metavar="STEM", help="write STEM and no_STEM (= mixture − STEM)")
    sep.add_argument("--format", choices=FORMATS, default="wav")
    sep.add_argument("--bits", type=int, choices=(16, 24, 32), default=None,
                     help="wav/flac sample size; 32 = float wav (default 16; mp3 has none)")
    sep.add_argument("--clip", choices=CLIP_MODES, default="rescale",
                     help="values beyond full scale: rescale all of a song's stems by one gain (default), "
                          "clamp, or none (float wav only)")
    sep.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sep.add_argument("--segment", type=float, default=10.0, help="seconds per chunk (memory use grows with it)")
    sep.add_argument("--context", type=float, default=None,
                     help="seconds of context per chunk side (default: the model's receptive field)")
    sep.add_argument("--overlap", type=float, default=0.0, help="fraction of a chunk cross-faded with the next")
    sep.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                     help="bfloat16 is faster on GPUs and recent CPUs (default float32)")
    sep.add_argument("--sum-to-mixture", action="store_true",
                     help="share the residual among stems so they add up to the mixture")
    sep.add_argument("-j", "--jobs", type=int, default=1, help="songs separated in parallel")
    sep.set_defaults(func=cmd_separate)

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model", help="model file or shipped model name")
    info.set_defaults(func=cmd_info)

    imp = sub.add_parser("import-jukebox", help="convert an official Jukebox vqvae.pth.tar (level 0)")
    imp.add_argument("source", type=Path)
    imp.add_argument("out", type=Path)
    imp.set_defaults(func=cmd_import)

    train_cli.register(sub)
    corpus_cli.register(sub)
    evaluate_cli.register(sub)
    peers_cli.register(sub)
    web_cli.register(sub)
    return parser


def collect_inputs(inputs: list[Path]) -> tuple[list[Path], list[str]]:
    files, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = list_audio_files(item)
            files += found
            if not found:
                problems.append(f"{item}: folder holds no audio files")
        elif item.exists():
            files.append(item)
        else:
            problems.append(f"{item}: no such file or folder")
    return files, problems


def ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise JukesepError(f"output folder {folder} is not writable ({exc.strerror or exc})") from None


class _Stopped(Exception):
    """Raised from a worker's progress callback once Ctrl-C has asked every song to stop."""


def output_bits(fmt: str, bits: int | None) -> int:
    if fmt == "mp3" and bits is not None:
        raise JukesepError("--bits does not apply to mp3 (it has no sample size); drop it")
    return 16 if bits is None else bits


def cmd_separate(args) -> int:
    args.bits = output_bits(args.format, args.bits)
    check_output(args.format, args.bits, args.clip)  # every option is checked before any work
    if args.jobs < 1:
        raise JukesepError("--jobs must be at least 1")
    files, problems = collect_inputs(args.inputs)
    for problem in problems:
        tqdm.write(f"jukesep: skipped {problem}", file=sys.stderr)
    separator = Separator.from_pretrained(args.model, device=args.device, segment=args.segment,
                                          context=args.context, overlap=args.overlap, precision=args.precision,
                                          sum_to_mixture=args.sum_to_mixture)
    stems = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    separator.resolve_stems(stems, args.two_stems)
    root = args.out / separator.name
    ensure_writable(root)
    if args.jobs > 1:  # share the cores between parallel songs instead of oversubscribing
        torch.set_num_threads(max(1, torch.get_num_threads() // args.jobs))

    slots, lock, stop = list(range(1, args.jobs + 1)), threading.Lock(), threading.Event()
    overall = tqdm(total=len(files), desc="songs", unit="song", position=0, disable=None)

    def run(path: Path) -> str | None:
        with lock:
            slot = slots.pop()
        bar = tqdm(total=1, desc=path.name[:30], unit="chunk", position=slot, leave=False, disable=None)

        def progress(done, total):
            if stop.is_set():
                raise _Stopped()
            bar.total, bar.n = total, done
            bar.refresh()

        try:
            separate_one(separator, path, root, stems, args, progress)
            overall.update(1)
            return None
        except JukesepError as exc:
            overall.update(1)
            return str(exc)
        except MemoryError:
            overall.update(1)
            return f"{path}: out of memory; try a smaller --segment"
        finally:
            bar.close()
            with lock:
                slots.append(slot)

    errors: list[str | None] = []
    try:
        if args.jobs == 1:  # in the main thread, so Ctrl-C stops the separation between two operations
            for path in files:
                errors.append(run(path))
                report(errors[-1])
        else:
            run_parallel(run, files, args.jobs, stop, errors)
    except (KeyboardInterrupt, _Stopped):
        overall.close()
        done = errors.count(None)
        print(f"jukesep: interrupted; {done} of {len(files) + len(problems)} inputs were separated into {root}, "
              "the song in progress was not written", file=sys.stderr)
        return 130
    overall.close()
    failures = len(problems) + sum(e is not None for e in errors)
    print(f"separated {errors.count(None)} of {len(files) + len(problems)} inputs into {root}", file=sys.stderr)
    return 1 if failures else 0


def report(error: str | None) -> None:
    if error:
        tqdm.write(f"jukesep: skipped {error}", file=sys.stderr)


def run_parallel(run, files: list[Path], jobs: int, stop: threading.Event, errors: list) -> None:
    """Songs on `jobs` threads. On Ctrl-C every song stops at its next chunk and nothing of it is
    written; a second Ctrl-C quits at once."""
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for error in pool.map(run, files):
            errors.append(error)
            report(error)
    except KeyboardInterrupt:
        stop.set()
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        print("jukesep: stopping (Ctrl-C again to quit at once)", file=sys.stderr)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def separate_one(separator: Separator, path: Path, root: Path, stems, args, progress) -> None:
    result = separator.separate_file(path, stems, args.two_stems, progress)
    song_dir = root / path.stem
    try:
        song_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JukesepError(f"cannot create {song_dir} ({exc.strerror or exc})") from None
    gain = write_stems({song_dir / f"{name}.{args.format}": est for name, est in result.stems.items()},
                       result.rate, args.format, args.bits, args.clip)
    if gain < 1.0:
        tqdm.write(f"jukesep: {path.name}: the stems exceed full scale; all were lowered by "
                   f"{-20 * math.log10(gain):.1f} dB to fit (--bits 32 --clip none keeps their level)", file=sys.stderr)


def cmd_info(args) -> int:
    from .api import model_path
    path = model_path(args.model)
    data = read_checkpoint(path)
    state = data["state"]
    print(f"file:     {path} ({path.stat().st_size / 2**20:.1f} MiB)")
    print(f"kind:     {data['kind']} (format version {data['format_version']})")
    print(f"params:   {sum(t.numel() for t in state.values() if t.is_floating_point()):,}")
    configs = data["config"].get("stems", {"(model)": data["config"]})
    if data["kind"] == "separator":
        print(f"stems:    {', '.join(configs)}")
    for name, cfg in configs.items():
        print(f"config {name}: " + ", ".join(f"{k}={v}" for k, v in cfg.items()))
    _print_tree(data["metadata"])
    return 0


def _print_tree(values: dict, indent: str = "") -> None:
    for key, value in values.items():
        if isinstance(value, dict) and value:
            print(f"{indent}{key}:")
            _print_tree(value, indent + "  ")
        else:
            print(f"{indent}{key}: {value}")


def cmd_import(args) -> int:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model = import_jukebox(args.source, args.out)
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: Jukebox level-0 VQ-VAE, {n:,} parameters, codebook "
          f"{tuple(model.quantizer.k.shape)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except JukesepError as exc:
        print(f"jukesep: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"jukesep: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jukesep: interrupted", file=sys.stderr)
        return 130
    finally:
        distrib.close()


if __name__ == "__main__":
    sys.exit(main())
