"""A synthetic training corpus in the MUSDB18-HQ layout, made the way Slakh2100 was: multitrack MIDI
rendered stem by stem with sampled instruments (FluidSynth + GM soundfonts), vocals sung by pysinsy
when installed.

    OUT/corpus.json                        seed, song length, generator (checked when resuming)
    OUT/{train,valid,test}/<song>/{vocals,drums,bass,other,mixture}.wav   44.1 kHz stereo float32
    OUT/{train,valid,test}/<song>/meta.json
    OUT/heldout/<song>/...                 optional: only timbres (a font and its drum kits) that the
                                           other splits never use, to test generalisation

mixture.wav is the float32 sum of the stored stems. A song is a pure function of (seed, split,
index): same seed → identical bytes. Splits never share material: procedural songs draw from
seed streams keyed by split, and each music21 chorale belongs to one split by a hash of its name.
"""
from __future__ import annotations

import json
import math
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_text
from ..audio import read_audio
from ..errors import JukesepError
from .compose import STEMS, chorale_paths, material_split
from .render import HELDOUT_FONT, RATE, Tools, render_song, song_complete

SPLITS = ("train", "valid", "test")
HELDOUT = "heldout"  # the held-out-timbre split
GENERATOR = "jukesep.corpus 2"
CHORALE_SHARE = 0.3  # share of songs arranged from a music21 chorale (when music21 is installed)

__all__ = ["render_corpus", "corpus_stats", "plan_corpus", "SPLITS", "STEMS"]


def split_counts(n: int, fractions) -> list[int]:
    fractions = [max(0.0, float(f)) for f in fractions]
    if len(fractions) != 3 or sum(fractions) <= 0:
        raise JukesepError("splits must be three non-negative fractions (train, valid, test), not all zero")
    total = sum(fractions)
    counts = [int(math.floor(n * f / total)) for f in fractions]
    wanted = [i for i, f in enumerate(fractions) if f > 0]
    for i in wanted:  # every split asked for gets a song when there are enough
        if counts[i] == 0 and n >= len(wanted):
            counts[i] = 1
    while sum(counts) > n:
        counts[int(np.argmax(counts))] -= 1
    order = sorted(wanted, key=lambda i: -(n * fractions[i] / total - math.floor(n * fractions[i] / total)))
    k = 0
    while sum(counts) < n:
        counts[order[k % len(order)]] += 1
        k += 1
    return counts


def plan_corpus(out_dir, minutes: float, seed: int = 0, song_seconds: float = 60.0,
                splits=(0.8, 0.1, 0.1), sf2_dirs=None, heldout_minutes: float = 0.0,
                heldout_fonts=(HELDOUT_FONT,)) -> list[dict]:
    """The jobs (one per song) of a corpus, without rendering anything. `heldout_minutes` more of
    songs go to the held-out-timbre split, rendered with `heldout_fonts` only (which the other
    splits then never use); `minutes` may be 0 when there are held-out minutes."""
    if not 0 <= heldout_minutes < math.inf:
        raise JukesepError(f"--heldout-minutes must be a finite number ≥ 0, got {heldout_minutes}")
    if not (minutes > 0 or minutes == 0 < heldout_minutes) or math.isinf(minutes):
        raise JukesepError(f"--minutes must be positive (or 0 with --heldout-minutes), got {minutes}")
    if not 2 <= song_seconds <= 1200:
        raise JukesepError(f"--song-seconds must be between 2 and 1200, got {song_seconds}")
    out = Path(out_dir)
    n = max(1, math.ceil(minutes * 60 / song_seconds - 1e-9)) if minutes > 0 else 0
    fonts = sorted(set(heldout_fonts))
    counts = split_counts(n, splits)
    works = chorale_paths()
    by_split = {k: [w for w in works if material_split(w) == k] for k in range(3)}
    jobs = []
    for k, (split, count) in enumerate(zip(SPLITS, counts)):
        for i in range(count):
            name = f"{split}-{seed:04d}-{i:05d}"
            pick = np.random.default_rng(np.random.SeedSequence([seed, k, i, 1]))
            if by_split[k] and pick.random() < CHORALE_SHARE:
                material = {"kind": "music21", "work": str(pick.choice(by_split[k])),
                            "split_rule": "sha1(work) bucket → split (80/10/10)"}
            else:
                material = {"kind": "procedural", "id": f"procedural/seed{seed}/{split}/{i}",
                            "split_rule": "seed stream keyed by (seed, split, index)"}
            jobs.append({"name": name, "split": split, "folder": str(out / split / name), "seed": seed,
                         "entropy": [int(seed), k, i], "song_seconds": float(song_seconds),
                         "material": material, "sf2_dirs": sf2_dirs, "generator": GENERATOR,
                         "heldout_fonts": fonts})
    heldout = math.ceil(heldout_minutes * 60 / song_seconds - 1e-9) if heldout_minutes > 0 else 0
    for i in range(heldout):  # procedural material from its own seed stream (split index 3)
        name = f"{HELDOUT}-{seed:04d}-{i:05d}"
        jobs.append({"name": name, "split": HELDOUT, "folder": str(out / HELDOUT / name),
                     "seed": seed, "entropy": [int(seed), 3, i], "song_seconds": float(song_seconds),
                     "material": {"kind": "procedural", "id": f"procedural/seed{seed}/{HELDOUT}/{i}",
                                  "split_rule": "seed stream keyed by (seed, split, index)"},
                     "sf2_dirs": sf2_dirs, "generator": GENERATOR, "heldout": True, "heldout_fonts": fonts})
    return jobs


def _check_config(out: Path, config: dict) -> None:
    path = out / "corpus.json"
    if path.exists():
        old = json.loads(path.read_text())
        old.setdefault("heldout_fonts", [HELDOUT_FONT])  # corpora made before the choice existed
        for key in ("seed", "song_seconds", "generator", "heldout_fonts"):
            if old.get(key) != config[key]:
                raise JukesepError(f"{out} holds a corpus made with {key}={old.get(key)!r}, not {config[key]!r}; "
                                   "use another folder or the same settings")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(config, indent=1))


def render_corpus(out_dir, minutes: float, seed: int = 0, jobs: int = 1, song_seconds: float = 60.0,
                  splits=(0.8, 0.1, 0.1), progress: bool = True, sf2_dirs=None,
                  heldout_minutes: float = 0.0, heldout_fonts=(HELDOUT_FONT,)) -> dict:
    """Render about `minutes` of songs into `out_dir` (resumable: complete songs are skipped).
    Returns a summary: songs per split, rendered/skipped counts, wall time and speed."""
    tools = Tools(sf2_dirs, heldout_fonts)  # fail early, with the package to install
    if heldout_minutes > 0:
        tools.check_heldout()  # not after the other splits have rendered
    out = Path(out_dir)
    plan = plan_corpus(out, minutes, seed, song_seconds, splits, sf2_dirs, heldout_minutes, heldout_fonts)
    _check_config(out, {"seed": int(seed), "song_seconds": float(song_seconds), "generator": GENERATOR,
                        "sample_rate": RATE, "stems": list(STEMS), "heldout_fonts": sorted(set(heldout_fonts))})
    for split in (*SPLITS, HELDOUT):  # leftovers of interrupted runs
        for tmp in (out / split).glob(".tmp-*") if (out / split).is_dir() else []:
            shutil.rmtree(tmp, ignore_errors=True)
    todo = [j for j in plan if not song_complete(Path(j["folder"]))]
    start = time.perf_counter()
    results = []
    from tqdm import tqdm
    bar = tqdm(total=len(plan), initial=len(plan) - len(todo), unit="song", desc="corpus", disable=not progress)
    try:
        if jobs <= 1 or len(todo) <= 1:
            for job in todo:
                results.append(render_song(job))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=min(jobs, len(todo))) as pool:
                futures = [pool.submit(render_song, job) for job in todo]
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
    finally:
        bar.close()
    wall = time.perf_counter() - start
    rendered = [r for r in results if not r.get("skipped")]
    audio_min = len(rendered) * song_seconds / 60
    return {
        "out_dir": str(out), "seed": seed, "songs": len(plan),
        "per_split": {s: n for s in (*SPLITS, HELDOUT) if (n := sum(j["split"] == s for j in plan)) or s in SPLITS},
        "rendered": len(rendered), "skipped": len(plan) - len(rendered),
        "rendered_names": sorted(r["name"] for r in rendered),
        "minutes_rendered": round(audio_min, 3), "wall_seconds": round(wall, 2),
        "speed_x_realtime": round(audio_min * 60 / wall, 2) if rendered and wall > 0 else None,
        "vocals_engine": "pysinsy" if tools.singer else "fluidsynth GM voice",
        "soundfonts": tools.paths,
    }


def corpus_stats(corpus_dir, silence_db: float = -60.0) -> dict:
    """Minutes per split, per-stem loudness (dBFS RMS over the whole split) and silence ratio
    (share of 100 ms frames below `silence_db`), and the largest |mixture − Σ stems|."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise JukesepError(f"{root}: no such folder")
    result = {"splits": {}, "max_mixture_error": 0.0, "songs": 0, "incomplete": []}
    for split in SPLITS + ((HELDOUT,) if (root / HELDOUT).is_dir() else ()):
        folder = root / split
        songs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if folder.is_dir() else []
        energy = {s: 0.0 for s in STEMS}
        silent = {s: 0 for s in STEMS}
        frames = samples = 0
        for song in songs:
            if not song_complete(song):
                result["incomplete"].append(str(song))
                continue
            data = {}
            for s in STEMS + ("mixture",):
                audio, rate = read_audio(song / f"{s}.wav", check=False)
                data[s] = audio.astype(np.float64)
            err = float(np.max(np.abs(data["mixture"] - sum(data[s] for s in STEMS)))) if data["mixture"].size else 0.0
            result["max_mixture_error"] = max(result["max_mixture_error"], err)
            length = data["mixture"].shape[1]
            samples += length
            hop = rate // 10
            nf = length // hop
            frames += nf
            for s in STEMS:
                x = data[s]
                energy[s] += float(np.sum(x ** 2)) / x.shape[0]
                if nf:
                    fr = (x[:, :nf * hop] ** 2).mean(axis=0).reshape(nf, hop).mean(axis=1)
                    silent[s] += int(np.sum(fr < 10 ** (silence_db / 10)))
            result["songs"] += 1
        result["splits"][split] = {
            "songs": len(songs), "minutes": round(samples / RATE / 60, 3),
            "stems": {s: {"rms_dbfs": round(10 * np.log10(energy[s] / samples), 2) if samples and energy[s] > 0
                          else None,
                          "silence_ratio": round(silent[s] / frames, 4) if frames else None} for s in STEMS},
        }
    return result
