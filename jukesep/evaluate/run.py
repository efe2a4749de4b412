"""`evaluate`: separate every song of a split, score each stem, write per-song JSON, a summary and a
report. Songs already scored with the same settings are reused, so an interrupted run resumes."""
from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..api import Separator
from ..atomic import atomic_write_bytes
from ..data import find_tracks
from ..data.tracks import Track
from ..defaults import STEMS
from ..progress import Progress
from .baselines import Estimator
from .metrics import bss_eval, mdx_sdr


def _separate_track(separator: Separator, track: Track, stems) -> tuple[np.ndarray, dict]:
    """(mixture `[2 x T]`, {stem: estimate `[2 x T]`}) of one song, through the one separation
    path: the separator decodes the song's mixture file (a .stem.mp4's first stream) itself."""
    result = separator.separate_file(track.mixture_file, stems=list(stems))
    return track.conform(result.mixture), {s: track.conform(a) for s, a in result.stems.items()}


def evaluate(system: str, estimator: Estimator | Separator, data, out, split: str = "test", stems=STEMS,
             jobs: int = 1, mono: bool = False, bss: bool = True, progress: bool = True) -> dict:
    """Score `estimator` (a jukesep `Separator`, or a baseline `Estimator`) on every song of
    `split`; returns the summary (also written to `out`)."""
    out = Path(out)
    (out / "songs").mkdir(parents=True, exist_ok=True)
    tracks = find_tracks(data, split)
    settings = {"system": system, "split": split, "mono": mono, "bss": bss, "stems": list(stems),
                "refine": getattr(estimator, "refine", None)}
    example = {}

    def run(track: Track) -> dict:
        path = out / "songs" / f"{track.name}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("settings") == settings:
                return saved
        started = time.monotonic()
        references = {s: track.read(s) for s in stems}
        if isinstance(estimator, Separator):
            mixture, estimates = _separate_track(estimator, track, stems)
        else:
            mixture = track.read("mixture")
            estimates = estimator(mixture, track.rate, references)
        seconds = time.monotonic() - started
        if track is tracks[0]:
            example.update(mixture=mixture, references=references, estimates=estimates, rate=track.rate,
                           song=track.name)
        if mono:
            references = {s: a.mean(0, keepdims=True) for s, a in references.items()}
            estimates = {s: estimates[s].mean(0, keepdims=True) for s in stems}
        scores = {s: {"mdx_sdr": mdx_sdr(references[s], estimates[s])} for s in stems}
        if bss:
            for s, values in bss_eval(references, {s: estimates[s] for s in stems}, track.rate).items():
                scores[s].update(values)
        result = {"song": track.name, "settings": settings, "seconds_audio": track.length / track.rate,
                  "seconds_separation": seconds, "scores": scores}
        atomic_write_bytes(path, json.dumps(result, indent=1).encode())
        return result

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        with Progress(len(tracks), f"evaluate {system}", "song", enabled=progress) as bar:
            results = []
            for result in pool.map(run, tracks):
                results.append(result)
                bar.update(1)
    summary = summarize(results, settings, str(data))
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=1).encode())
    from .report import write_report
    write_report(out, summary, results, example)
    return summary


def _stat(values: list, fn) -> float | None:
    values = [v for v in values if v is not None and np.isfinite(v)]
    return float(fn(values)) if values else None


def summarize(results: list[dict], settings: dict, data: str) -> dict:
    stems = settings["stems"]
    table = {}
    for stem in stems + ["average"]:
        if stem == "average":
            per_song = {m: [_stat([r["scores"][s].get(m) for s in stems], statistics.mean) for r in results]
                        for m in ("mdx_sdr", "SDR", "SIR", "ISR", "SAR")}
        else:
            per_song = {m: [r["scores"][stem].get(m) for r in results] for m in ("mdx_sdr", "SDR", "SIR", "ISR", "SAR")}
        table[stem] = {
            "mdx_sdr_mean": _stat(per_song["mdx_sdr"], statistics.mean),
            "mdx_sdr_median": _stat(per_song["mdx_sdr"], statistics.median),
            **{f"{m}_median": _stat(per_song[m], statistics.median) for m in ("SDR", "SIR", "ISR", "SAR")},
        }
    audio = sum(r["seconds_audio"] for r in results)
    work = sum(r["seconds_separation"] for r in results)
    return {"settings": settings, "data": data, "songs": len(results), "seconds_audio": audio,
            "x_real_time": audio / work if work else None, "table": table,
            "date": time.strftime("%Y-%m-%d %H:%M")}
