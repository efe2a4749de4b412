"""`jukesep evaluate`: score a model or a baseline on a split of a MUSDB18(-HQ)-layout data set."""
from __future__ import annotations

from pathlib import Path

from ..defaults import DEFAULT_REFINE, REFINES
from ..errors import JukesepError


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a model or baseline (MDX SDR and BSSEval v4) and write a report")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("-m", "--model", help="separator file or shipped model name")
    what.add_argument("--baseline", help="irm | mix4 | openunmix:PATH | demucs:PATH")
    p.add_argument("--data", required=True, type=Path, help="data set root (MUSDB18-HQ layout or .stem.mp4)")
    p.add_argument("--split", default="test")
    p.add_argument("-o", "--out", type=Path, help="report folder (default: reports/<system>-<split>)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="songs scored in parallel")
    p.add_argument("--mono", action="store_true", help="score mono downmixes, as the paper did")
    p.add_argument("--no-bss", action="store_true", help="skip BSSEval v4 (museval is slow on long songs)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                   help="auto: bfloat16 where the hardware makes it faster, else float32")
    p.add_argument("--refine", choices=REFINES, default=DEFAULT_REFINE,
                   help=f"--model: refinement on the mixture's STFT (default: {DEFAULT_REFINE})")
    p.set_defaults(func=cmd_evaluate)


def estimator_for(args):
    """(system name, stems, estimator) for --model or --baseline."""
    from ..defaults import STEMS
    from .baselines import BUILTIN
    if args.model:
        from ..api import Separator, model_path
        separator = Separator.from_pretrained(args.model, device=args.device, precision=args.precision,
                                              refine=args.refine)
        stems = [s for s in STEMS if s in separator.stems]
        return model_path(args.model).stem, stems, separator
    kind, _, path = args.baseline.partition(":")
    if kind in BUILTIN and not path:
        return kind, list(STEMS), BUILTIN[kind]
    if kind in ("openunmix", "demucs") and path:
        from . import peers
        return f"{kind}-{Path(path).stem}", list(STEMS), peers.load(kind, Path(path), args.device)
    raise JukesepError(f"unknown baseline {args.baseline!r} (irm, mix4, openunmix:PATH or demucs:PATH)")


def cmd_evaluate(args) -> int:
    from .run import evaluate
    if args.jobs < 1:
        raise JukesepError("--jobs must be at least 1")
    system, stems, estimator = estimator_for(args)
    out = args.out or Path("reports") / f"{system}-{args.split}{'-mono' if args.mono else ''}"
    summary = evaluate(system, estimator, args.data, out, split=args.split, stems=stems, jobs=args.jobs,
                       mono=args.mono, bss=not args.no_bss)
    songs = f"{summary['songs']} {args.split} song" + ("" if summary["songs"] == 1 else "s")
    print(f"{system} on {songs} ({'mono' if args.mono else 'stereo'}):")
    print(f"{'stem':<10}{'MDX SDR mean':>14}{'median':>9}{'BSS SDR':>9}")
    for stem, row in summary["table"].items():
        cells = [row["mdx_sdr_mean"], row["mdx_sdr_median"], row["SDR_median"]]
        print(f"{stem:<10}" + "".join(f"{'–' if v is None else f'{v:.2f}':>{w}}" for v, w in zip(cells, (14, 9, 9))))
    print(f"report: {out / 'report.html'}")
    return 0
