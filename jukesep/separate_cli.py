"""`jukesep separate`: a thin shell over `Separator.separate_file_to` (block by block, flat memory).

Flags follow Demucs where the meaning is the same (-n/--name, -d/--device, --mp3, --mp3-bitrate,
--int24, --float32, --clip-mode, --shifts, --filename), so Demucs users' habits work.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from .audio import CLIP_MODES, FORMATS, MP3_BITRATES, check_output, list_audio_files
from .defaults import DEFAULT_MODEL, DEFAULT_REFINE, MAX_SHIFTS, REFINES
from .errors import JukesepError
from .progress import Progress

if TYPE_CHECKING:
    from .api import Separator

DEFAULT_TEMPLATE = "{track}/{stem}.{ext}"
TEMPLATE_FIELDS = ("track", "trackext", "folder", "stem", "ext")


def register(sub) -> None:
    sep = sub.add_parser("separate", help="separate songs into stems",
                         description="Separate songs (files or folders of them) into stems.")
    sep.add_argument("inputs", nargs="+", type=Path, help="audio files or folders of them")
    sep.add_argument("-o", "--out", type=Path, default=Path("separated"), help="output root (default: separated)")
    sep.add_argument("-m", "-n", "--model", "--name", dest="model", default=DEFAULT_MODEL,
                     help="separator file or shipped model name (default: the shipped default)")
    sep.add_argument("--filename", default=DEFAULT_TEMPLATE,
                     help="output path under OUT/<model>/, with {track} (file name without extension), "
                          "{trackext}, {folder} (the input's folder below the folder you named), {stem}, {ext} "
                          f"(default: {DEFAULT_TEMPLATE})")
    group = sep.add_mutually_exclusive_group()
    group.add_argument("--stems", help="comma-separated stems to compute (default: all of the model's)")
    group.add_argument("--two-stems", metavar="STEM", help="write STEM and no_STEM (= mixture − STEM)")
    fmt = sep.add_mutually_exclusive_group()
    fmt.add_argument("--format", choices=FORMATS, default="wav")
    fmt.add_argument("--mp3", dest="format", action="store_const", const="mp3", help="same as --format mp3")
    sep.add_argument("--mp3-bitrate", type=int, default=320, choices=MP3_BITRATES, metavar="KBPS",
                     help="mp3 bitrate in kbit/s (default 320)")
    bits = sep.add_mutually_exclusive_group()
    bits.add_argument("--bits", type=int, choices=(16, 24, 32), default=None,
                      help="wav/flac sample size; 32 = float wav (default 16; mp3 has none)")
    bits.add_argument("--int24", dest="bits", action="store_const", const=24, help="same as --bits 24")
    bits.add_argument("--float32", dest="bits", action="store_const", const=32, help="same as --bits 32")
    sep.add_argument("--clip", "--clip-mode", dest="clip", choices=CLIP_MODES, default="rescale",
                     help="values beyond full scale: rescale all of a song's stems by one gain (default), "
                          "clamp, or none (float wav only)")
    sep.add_argument("-d", "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    sep.add_argument("--segment", type=float, default=None,
                     help="seconds per chunk (default: the measured best for the device: 2 on CPU, 30 on GPU; a "
                          "stage of the model with a long reach takes longer chunks); memory grows with it, "
                          "not with the song")
    sep.add_argument("--context", type=float, default=None,
                     help="seconds of context per chunk side, at most, for each stage of the model "
                          "(default: each stage's full reach: output identical to whole-song output)")
    sep.add_argument("--overlap", type=float, default=0.0, help="fraction of a chunk cross-faded with the next")
    sep.add_argument("--shifts", type=int, default=0,
                     help=f"average N extra passes on randomly delayed input (0-{MAX_SHIFTS}; N times slower)")
    sep.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                     help="auto (default): bfloat16 on GPUs and CPUs with AVX512-BF16/AMX, where it is faster, "
                          "else float32; `jukesep info --system` shows the choice")
    sep.add_argument("--refine", choices=REFINES, default=DEFAULT_REFINE,
                     help=f"filter the mixture's STFT with the model's stems (default: {DEFAULT_REFINE}: the "
                          "model's learned mask if it has one, else softmask; all but none make the stems add "
                          "up to the mixture)")
    sep.add_argument("--sum-to-mixture", action="store_true",
                     help="share the residual among stems so they add up to the mixture")
    sep.add_argument("-j", "--jobs", type=int, default=1, help="songs separated in parallel")
    sep.set_defaults(func=cmd_separate)


# -- inputs and outputs, all decided before any work -----------------------------------------------

def collect_inputs(inputs: list[Path]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """([(file, the folder it was found under or its own folder)], problems)."""
    files, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = list_audio_files(item)
            files += [(path, item) for path in found]
            if not found:
                problems.append(f"{item}: folder holds no audio files")
        elif item.exists():
            files.append((item, item.parent))
        else:
            problems.append(f"{item}: no such file or folder")
    return files, problems


def output_paths(template: str, path: Path, root: Path, stems: list[str], ext: str) -> dict[str, Path]:
    """{stem: relative output path} for one input from the --filename template."""
    folder = path.parent.relative_to(root).as_posix() if path.parent != root else ""
    values = {"track": path.stem, "trackext": path.name, "folder": folder, "ext": ext}
    out = {}
    for stem in stems:
        try:
            name = template.format(**values, stem=stem)
        except (KeyError, IndexError, ValueError) as exc:
            raise JukesepError(f"--filename {template!r}: unknown or malformed field {exc} "
                               f"(use {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)})") from None
        relative = Path(os.path.normpath(name.lstrip("/")))
        if relative.is_absolute() or ".." in relative.parts or relative == Path("."):
            raise JukesepError(f"--filename {template!r} gives {name!r}, which is outside the output folder")
        out[stem] = relative
    return out


def plan_outputs(files: list[tuple[Path, Path]], template: str, stems: list[str], ext: str) -> dict[Path, dict]:
    """{input: {stem: relative path}}; refuses templates that would make two outputs collide."""
    if "{stem}" not in template:
        raise JukesepError(f"--filename {template!r} has no {{stem}}: every stem would go to the same file")
    plan, owner = {}, {}
    for path, root in files:
        plan[path] = output_paths(template, path, root, stems, ext)
        for target in plan[path].values():
            if target in owner and owner[target] != path:
                raise JukesepError(f"{owner[target]} and {path} would both be written to {target}; "
                                   "use --filename '{folder}/{track}/{stem}.{ext}' to keep folders apart")
            owner[target] = path
    return plan


def ensure_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise JukesepError(f"output folder {folder} is not writable ({exc.strerror or exc})") from None


def output_bits(fmt: str, bits: int | None) -> int:
    if fmt == "mp3" and bits is not None:
        raise JukesepError("--bits/--int24/--float32 do not apply to mp3 (it has no sample size); drop it")
    return 16 if bits is None else bits


def stem_names(separator: Separator, args) -> list[str]:
    """The names of the files each song gets (checks the stem choice)."""
    stems = [s.strip() for s in args.stems.split(",") if s.strip()] if args.stems else None
    chosen = separator.resolve_stems(stems, args.two_stems)
    return chosen + [f"no_{args.two_stems}"] if args.two_stems else chosen


# -- the command -----------------------------------------------------------------------------------

class _Stopped(Exception):
    """Raised from a worker's progress callback once Ctrl-C has asked every song to stop."""


def cmd_separate(args) -> int:
    args.bits = output_bits(args.format, args.bits)
    check_output(args.format, args.bits, args.clip, bitrate=args.mp3_bitrate)  # every check before any work
    if args.jobs < 1:
        raise JukesepError("--jobs must be at least 1")
    files, problems = collect_inputs(args.inputs)
    from .api import Separator
    separator = Separator.from_pretrained(args.model, device=args.device, segment=args.segment,
                                          context=args.context, overlap=args.overlap, precision=args.precision,
                                          sum_to_mixture=args.sum_to_mixture, shifts=args.shifts,
                                          refine=args.refine)
    plan = plan_outputs(files, args.filename, stem_names(separator, args), args.format)
    root = args.out / separator.name
    ensure_writable(root)
    for problem in problems:
        print(f"jukesep: skipped {problem}", file=sys.stderr)
    if args.jobs > 1:  # share the cores between parallel songs instead of oversubscribing
        import torch
        torch.set_num_threads(max(1, torch.get_num_threads() // args.jobs))
    songs = Progress(len(plan), "songs", "song")
    stop, errors = threading.Event(), []
    run = song_runner(separator, plan, root, args, stop, songs)
    try:
        if args.jobs == 1:  # in the main thread, so Ctrl-C stops the separation between two operations
            for path in plan:
                errors.append(run(path))
                report(errors[-1], songs)
        else:
            run_parallel(run, list(plan), args.jobs, stop, errors, songs)
    except (KeyboardInterrupt, _Stopped):
        songs.close()
        print(f"jukesep: interrupted; {errors.count(None)} of {len(plan) + len(problems)} inputs were separated "
              f"into {root}, the song in progress was not written", file=sys.stderr)
        return 130
    songs.close()
    print(f"separated {errors.count(None)} of {len(plan) + len(problems)} inputs into {root}", file=sys.stderr)
    return 1 if problems or any(errors) else 0


def song_runner(separator: Separator, plan: dict, root: Path, args, stop: threading.Event, songs: Progress):
    """A function separating one input into its planned files; returns None or a one-line error."""
    slots, lock = list(range(1, args.jobs + 1)), threading.Lock()

    def run(path: Path) -> str | None:
        with lock:
            slot = slots.pop()
        chunks = Progress(None, path.name[:30], "s", position=slot, leave=False, enabled=args.jobs == 1)

        def progress(done, total):
            if stop.is_set():
                raise _Stopped()
            chunks.set(done, total)

        try:
            separate_one(separator, path, {s: root / p for s, p in plan[path].items()}, args, progress, songs)
            return None
        except JukesepError as exc:
            return str(exc)
        except MemoryError:
            return f"{path}: out of memory; try a smaller --segment"
        finally:
            chunks.close()
            with lock:
                slots.append(slot)
            songs.update(1)

    return run


def report(error: str | None, songs: Progress) -> None:
    if error:
        songs.write(f"jukesep: skipped {error}")


def run_parallel(run, files: list[Path], jobs: int, stop: threading.Event, errors: list, songs: Progress) -> None:
    """Songs on `jobs` threads. On Ctrl-C every song stops at its next chunk and nothing of it is
    written; a second Ctrl-C quits at once."""
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        for error in pool.map(run, files):
            errors.append(error)
            report(error, songs)
    except KeyboardInterrupt:
        stop.set()
        signal.signal(signal.SIGINT, lambda *_: os._exit(130))
        print("jukesep: stopping (Ctrl-C again to quit at once)", file=sys.stderr)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()


def separate_one(separator: Separator, path: Path, targets: dict[str, Path], args, progress, songs) -> None:
    stems = None if args.two_stems else list(targets)
    written = separator.separate_file_to(path, targets, args.format, args.bits, args.clip, args.mp3_bitrate, stems,
                                         args.two_stems, progress)
    if written.gain < 1.0:
        songs.write(f"jukesep: {path.name}: the stems exceed full scale; all were lowered by "
                    f"{-20 * math.log10(written.gain):.1f} dB to fit (--bits 32 --clip none keeps their level)")


def looks_like_input(word: str) -> bool:
    """`jukesep song.mp3` (Demucs' habit) means `jukesep separate song.mp3`."""
    return not word.startswith("-") and (os.path.exists(word) or Path(word).suffix != "")

