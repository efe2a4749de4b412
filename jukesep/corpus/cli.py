"""`jukesep corpus render|stats`: register(subparsers) adds the sub-command to jukesep's parser."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import JukesepError
from .render import HELDOUT_FONT, SOUNDFONTS


def register(subparsers) -> argparse.ArgumentParser:
    corpus = subparsers.add_parser("corpus", help="render or inspect a synthetic MUSDB18-style training corpus")
    sub = corpus.add_subparsers(dest="corpus_command", required=True)

    render = sub.add_parser("render", help="render MIDI-made songs stem by stem (resumable)")
    render.add_argument("out", type=Path, help="output folder (train/valid/test inside)")
    render.add_argument("--minutes", type=float, required=True,
                        help="minutes of audio to make in the train, valid and test splits (0: a held-out split only)")
    render.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
    render.add_argument("-j", "--jobs", type=int, default=1, help="songs rendered in parallel")
    render.add_argument("--song-seconds", type=float, default=60.0, help="length of each song (default 60)")
    render.add_argument("--heldout-minutes", type=float, default=0.0,
                        help="minutes more in a heldout/ split rendered only with timbres the other splits never "
                             "use (needs opl3-soundfont; default 0)")
    render.add_argument("--heldout-fonts", default=HELDOUT_FONT, metavar="NAME[,NAME...]",
                        help=f"the soundfonts (and drum kits) of the heldout/ split, which the other splits then "
                             f"never use (default {HELDOUT_FONT}, which never trains; "
                             f"one of {', '.join(SOUNDFONTS)})")
    render.set_defaults(func=cmd_render)

    stats = sub.add_parser("stats", help="minutes, stem loudness and silence, mixture check")
    stats.add_argument("dir", type=Path)
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(func=cmd_stats)
    return corpus


def cmd_render(args) -> int:
    from . import render_corpus
    if args.jobs < 1:
        raise JukesepError(f"--jobs must be at least 1, got {args.jobs}")
    summary = render_corpus(args.out, args.minutes, seed=args.seed, jobs=args.jobs, song_seconds=args.song_seconds,
                            heldout_minutes=args.heldout_minutes,
                            heldout_fonts=[f.strip() for f in args.heldout_fonts.split(",") if f.strip()])
    speed = summary["speed_x_realtime"]
    print(f"{summary['songs']} songs in {args.out} ({summary['rendered']} rendered, {summary['skipped']} "
          f"already there; {', '.join(f'{k} {v}' for k, v in summary['per_split'].items())}); "
          f"{summary['wall_seconds']} s" + (f", {speed}x real time" if speed else ""))
    return 0


def cmd_stats(args) -> int:
    from . import STEMS, corpus_stats
    stats = corpus_stats(args.dir)
    if args.json:
        print(json.dumps(stats, indent=1))
        return 0
    print(f"{args.dir}: {plural(stats['songs'], 'complete song')}; largest |mixture − Σ stems| "
          f"{stats['max_mixture_error']:.2g}")
    print(f"{'split':<7}{'songs':>6}{'minutes':>9}  " + "".join(f"{s + ' dBFS/silent':>20}" for s in STEMS))
    for split, row in stats["splits"].items():
        cells = "".join(f"{cell(row['stems'][s]):>20}" for s in STEMS)
        print(f"{split:<7}{row['songs']:>6}{row['minutes']:>9.1f}  {cells}")
    for song in stats["incomplete"]:
        print(f"incomplete (rerun `jukesep corpus render` to finish it): {song}")
    return 0


def cell(stem: dict) -> str:
    level = "–" if stem["rms_dbfs"] is None else f"{stem['rms_dbfs']:.1f}"
    silent = "–" if stem["silence_ratio"] is None else f"{100 * stem['silence_ratio']:.0f}%"
    return f"{level} / {silent}"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")
