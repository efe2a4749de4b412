"""Generate docs/RESULTS.md (and its plots) from the JSON the benchmarks and evaluations wrote.
Nothing in RESULTS.md is typed by hand except the notes it includes: rerun this after rerunning a benchmark.

    python benchmarks/make_results.py [--results benchmarks/results] [--out docs/RESULTS.md]

Reads, when present (a section is left out when its files are absent):
  notes.json                    {"title": ..., "lines": [...], "peer_minutes": {"openunmix": 48}}: what was run
  quality/<system>-<split>.json summary.json of `jukesep evaluate` (split read from settings.split)
  quality/<round>/*.json        an earlier round of scores (another machine or corpus render), tabled
                                apart under notes.json's "rounds": {"<round>": {"title": ..., "default": ARM,
                                "peer": the Open-Unmix system it is measured against (default openunmix)}}
  curves/<run>.json             val_history.json of training runs: foundation, {transfer,scratch}-vqvae-<stem>,
                                {transfer,scratch}-shared-output-context, transfer-shared-{output,latent,both},
                                transfer-{paper,per-stem-output}-encoder-<stem>
  cpu_speed.json                benchmarks/separation_speed.py --repeat N --json: the latest interleaved
                                CPU run (its table, with the machine's CPU flags, comes first in the
                                performance section)
  performance.md                a hand-written section, included verbatim
  separation_speed.json         benchmarks/separation_speed.py --json   (older measurements)
  separation_memory.json        benchmarks/separation_memory.py --json  (older measurements)
  train_speed.json              benchmarks/train_speed.py --json        (older measurements)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

STEMS = ["vocals", "drums", "bass", "other"]
SPLITS = ["test", "heldout", "valid"]
PEERS = ["irm", "openunmix", "wide-openunmix"]
FLOOR = "mix4"
# The shipped default and its scratch twin, unless notes.json names others ("default", "scratch").
DEFAULT, SCRATCH = "transfer-shared-latent-lr3", "scratch-shared-latent"
# Later arms on the end-to-end round's foundation and stage 1: {arm: its stage-2 run (curve name)}
E2E_LATER = {**{f"e2e-trunk-w{w}": f"e2e-transfer-shared-latent-lr3-w16-trunk-w{w}" for w in (24, 32)},
             **{f"e2e-codes-lr{r}": f"e2e-transfer-shared-codes-lr{r}-w16" for r in (3, 1)},
             "e2e-bf16": "e2e-transfer-shared-latent-lr3-w16-bf16"}
ARMS = ["transfer-shared-latent-lr3", "transfer-shared-latent-lr3-unrefined", "transfer-shared-latent-lr3-run1",
        "previous-default",
        "shared-output", "shared-output-unrefined", "transfer-shared-short", "transfer-paper",
        "transfer-per-stem-output", "transfer-shared-latent", "transfer-shared-latent-lr03",
        "transfer-shared-latent-lr10", "transfer-shared-latent-lr3-cosine", "transfer-shared-latent-lr10-cosine",
        "transfer-shared-latent-lr3-w16", "transfer-shared-latent-lr3-w64", "transfer-shared-latent-lr3-longer",
        "rebalanced-8-2-32", "tilted-4-1-40", "tilted-4-1-40-w16", "e2e-control", "e2e-control-100", "e2e-control-180",
        "e2e-end-to-end", *E2E_LATER, "e2e-shipped-default", "avx2-control", "avx2-fast-targets", "wide-default",
        "tilted-4-1-40-w16-mask", "tilted-4-1-40-w16-mask-eq",
        "tilted-4-1-40-w16-local-mask",
        "transfer-shared-both", "transfer-shared-long",
        "scratch-shared-output", "scratch-shared-latent"]
REFINES = ["refine-none", "refine-softmask", "refine-wiener"]
DESCRIPTIONS = {
    "irm": "ideal ratio mask (oracle)",
    "openunmix": "Open-Unmix, same data and wall time",
    "mix4": "mixture / 4 (floor)",
    "wide-openunmix": "Open-Unmix trained on the wide corpus for the same wall time",
    "wide-default": "the default's recipe (tilted-4-1-40-w16) trained on the wide corpus: the first corpus's 192 "
                    "training songs and 384 more rendered with 4 melodic GM fonts (2 before)",
    "shared-output": "shared encoder, output loss, long-reach heads, transfer (the previous default)",
    "shared-output-unrefined": "the previous default, not refined",
    "transfer-shared-short": "shared encoder, output loss, short-reach heads, transfer",
    "transfer-paper": "paper: encoder per stem, latent loss",
    "transfer-per-stem-output": "encoder per stem, output loss, transfer",
    "transfer-shared-latent": "shared encoder, latent loss, transfer",
    "transfer-shared-both": "shared encoder, latent + output loss, transfer",
    "transfer-shared-latent-lr3": "shared encoder, latent loss, long-reach heads, transfer, lr 3e-3 (the previous "
                                  "default)",
    "transfer-shared-latent-lr3-unrefined": "the previous default, not refined",
    "transfer-shared-latent-lr3-run1": "the previous default's recipe, first run (its checkpoint was lost with its "
                                       "machine)",
    "transfer-shared-latent-lr03": "shared encoder, latent loss, transfer, learning rate 3e-4",
    "transfer-shared-latent-lr10": "shared encoder, latent loss, transfer, learning rate 1e-2",
    "transfer-shared-latent-lr3-cosine": "the previous default, learning rate decayed to 0 on a cosine over its 20 min",
    "transfer-shared-latent-lr10-cosine": "the same from a peak of 1e-2",
    "transfer-shared-latent-lr3-w16": "the previous default with heads 16 channels wide (32)",
    "transfer-shared-latent-lr3-w64": "the previous default with heads 64 channels wide (32)",
    "transfer-shared-latent-lr3-longer": "the previous default's run continued to 40 min of stage 2 (20 more)",
    "rebalanced-8-2-32": "the previous default's recipe, its 48 min split 8 (foundation) + 4 x 2 (stage 1) + 32 "
                         "(stage 2) (the default before this one)",
    "tilted-4-1-40": "the same recipe split 4 (foundation) + 4 x 1 (stage 1) + 40 (stage 2)",
    "tilted-4-1-40-w16": "the same split, heads 16 channels wide (32) (default)",
    "e2e-control": "the default's recipe (tilted-4-1-40-w16) trained again on this round's corpus, its 40 min of "
                   "stage 2 as 20 + 20 (a resumed run)",
    "e2e-control-100": "e2e-control's stage 2 continued for 60 more minutes on two threads, alone (100 min of "
                       "stage 2): the learned-mask arms' equal-time control (they spent 22.6 + 40 min on two threads "
                       "after the same 48)",
    "e2e-control-180": "e2e-control-100's stage 2 continued for 80 more minutes on one thread, beside Open-Unmix's "
                       "training (180 min of stage 2)",
    "e2e-end-to-end": "the same to 20 min of stage 2, then 20 min with the output loss training the stems' decoders "
                      "too (--stage2-decoders train, learning rate 3e-4)",
    "e2e-trunk-w24": "e2e-control's foundation and stage 1, then its 40 min of stage 2 with the shared encoder widened "
                     "from the foundation's 16 channels to 24 (--trunk-width 24; beyond the paper)",
    "e2e-trunk-w32": "the same, 32 channels wide (--trunk-width 32)",
    "e2e-codes-lr3": "e2e-control's foundation and stage 1, then its 40 min of stage 2 with the codes loss "
                     "(cross-entropy of the clean stems' stage-1 codes; --stage2-loss codes; beyond the paper)",
    "e2e-codes-lr1": "the same at learning rate 1e-3 (3e-3)",
    "e2e-bf16": "e2e-control's foundation and stage 1, then its 40 min of stage 2 under bfloat16 autocast (--bf16; "
                "the CPU's avx512_bf16)",
    "avx2-control": "the default's recipe (4 + 4 x 1 + 40 min) on an AVX2-only CPU, its stage 2 from the code "
                    "before the faster latent targets (commit a2029b7), beside avx2-fast-targets",
    "avx2-fast-targets": "the same foundation and stage 1, then 40 min of stage 2 with the latent targets from the "
                         "stage-1 encoders' inference form (the same targets, a third less time)",
    "e2e-shipped-default": "the shipped default (trained on the Xeon's render), scored on this round's corpus",
    "transfer-shared-long": "the previous default trained on 4x longer excerpts (1.5 s, batch 1)",
    "tilted-4-1-40-w16-mask": "tilted-4-1-40-w16 (frozen) + a learned mask on the mixture's STFT (`jukesep train "
                              "mask`, an MLP over each frame's bins; beyond the paper); its wall time includes "
                              "separating the training songs once",
    "tilted-4-1-40-w16-mask-eq": "the same MLP trained with a random EQ of ±12 dB per stem, applied to the stem, "
                                 "its estimate and the mixture (--mask-eq 12: timbres the training songs lack)",
    "tilted-4-1-40-w16-local-mask": "the same with one rule shared by all bins, each seeing ±3 bins of the stems' "
                                    "levels relative to the mixture's (--mask-reach 3)",
    "scratch-shared-output": "shared encoder, output loss, long-reach heads, from scratch (random init)",
    "scratch-shared-latent": "shared encoder, latent loss, long-reach heads, learning rate 3e-3, from scratch",
    "previous-default": "the default before that (shared-output of the ablation round), on this round's corpus",
    "refine-none": "no refinement",
    "refine-softmask": "soft mask",
    "refine-wiener": "Wiener filter",
}
SPLIT_NOTES = {"heldout": "held-out timbres: a SoundFont and drum kits that training never uses"}
# Stage-2 runs (curve names) of each jukesep arm; per-stem arms train one encoder per stem.
STAGE2 = {
    "shared-output": ["transfer-shared-output-context"],
    "transfer-shared-short": ["transfer-shared-output"],
    "transfer-paper": [f"transfer-paper-encoder-{s}" for s in STEMS],
    "transfer-per-stem-output": [f"transfer-per-stem-output-encoder-{s}" for s in STEMS],
    "transfer-shared-latent": ["transfer-shared-latent"],
    "transfer-shared-both": ["transfer-shared-both"],
    "transfer-shared-latent-lr3": ["transfer-shared-latent-lr3"],
    "transfer-shared-latent-lr03": ["transfer-shared-latent-lr03"],
    "transfer-shared-latent-lr10": ["transfer-shared-latent-lr10"],
    "transfer-shared-long": ["transfer-shared-long"],
    **{f"transfer-shared-latent-{arm}": [f"transfer-shared-latent-{arm}"]
       for arm in ("lr3-cosine", "lr10-cosine", "lr3-w16", "lr3-w64", "lr3-longer")},
    "rebalanced-8-2-32": ["rebalance-transfer-shared-latent-lr3"],
    "tilted-4-1-40": ["tilt-transfer-shared-latent-lr3"],
    "tilted-4-1-40-w16": ["tilt-transfer-shared-latent-lr3-w16"],
    "e2e-control": ["e2e-transfer-shared-latent-lr3-w16-longer"],
    "e2e-control-100": ["e2e-transfer-shared-latent-lr3-w16-longer100"],
    "e2e-control-180": ["e2e-transfer-shared-latent-lr3-w16-longer180"],
    "e2e-end-to-end": ["e2e-transfer-shared-latent-lr3-w16", "e2e-transfer-shared-latent-lr3-w16-e2e"],
    **{arm: [run] for arm, run in E2E_LATER.items()},
    "wide-default": ["wide-transfer-shared-latent-lr3-w16"],
    "avx2-control": ["avx2-transfer-shared-latent-lr3-w16-plain"],
    "avx2-fast-targets": ["avx2-transfer-shared-latent-lr3-w16"],
    "scratch-shared-output": ["scratch-shared-output-context"],
    "scratch-shared-latent": ["scratch-shared-latent"],
}
SEQUENTIAL = {"e2e-end-to-end"}  # arms whose stage-2 runs ran one after the other, each from the last's model
SAME_MODEL = {"shared-output-unrefined": "shared-output", "previous-default": "shared-output",
              "transfer-shared-latent-lr3-unrefined": "transfer-shared-latent-lr3"}
TRANSFER_ARMS = [a for a in STAGE2 if not a.startswith("scratch-")]
# Arms that add a learned mask to another arm's frozen separator: {arm: (that arm, the mask run's curve)};
# notes.json "cache_minutes" {arm: minutes} gives the time the mask stage spent separating its training songs.
LEARNED_MASK = {"tilted-4-1-40-w16-mask": ("tilted-4-1-40-w16", "tilt-transfer-shared-latent-lr3-w16-mask"),
                "tilted-4-1-40-w16-mask-eq": ("tilted-4-1-40-w16", "tilt-transfer-shared-latent-lr3-w16-mask-eq"),
                "tilted-4-1-40-w16-local-mask": ("tilted-4-1-40-w16", "tilt-transfer-shared-latent-lr3-w16-local-mask")}
# Arms with their own foundation and stage 1 (curve-name prefix of those runs); the others share the main ones.
OWN_PIPELINE = {"rebalanced-8-2-32": "rebalance-", "tilted-4-1-40": "tilt-", "tilted-4-1-40-w16": "tilt-",
                **dict.fromkeys(["e2e-control", "e2e-control-100", "e2e-control-180", "e2e-end-to-end", *E2E_LATER],
                                "e2e-"),
                "wide-default": "wide-",
                **dict.fromkeys(["avx2-control", "avx2-fast-targets"], "avx2-")}


def stage1(arm: str) -> list[str]:
    return [f"{arm}-vqvae-{s}" for s in STEMS]


KNOWN_CURVES = {"foundation", *stage1("transfer"), *stage1("scratch"), *(n for runs in STAGE2.values() for n in runs),
                *(prefix + name for prefix in OWN_PIPELINE.values() for name in ["foundation", *stage1("transfer")]),
                *(run for _, run in LEARNED_MASK.values())}


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def signed(value) -> str:
    return "–" if value is None else f"{value:+.2f}"


# --- inputs ------------------------------------------------------------------------------------------------------

def load_quality(folder: Path) -> dict[str, dict[str, dict]]:
    """{split: {system: summary}}; the system is the file name without its `-<split>` suffix."""
    quality: dict[str, dict[str, dict]] = {}
    for f in sorted(folder.glob("*.json")):
        summary = json.loads(f.read_text())
        split = summary["settings"]["split"]
        system = f.stem[:-len(split) - 1] if f.stem.endswith(f"-{split}") else f.stem
        quality.setdefault(split, {})[system] = summary
    return quality


def load_curves(results: Path) -> dict[str, list[dict]]:
    """The recognised, non-empty validation histories; old-style or unknown names are ignored."""
    files = sorted((results / "curves").glob("*.json"))
    runs = {f.stem: json.loads(f.read_text()) for f in files if f.stem in KNOWN_CURVES}
    return {name: hist for name, hist in runs.items() if hist}


# --- wall time -----------------------------------------------------------------------------------------------------

def total(curves: dict, names: list[str]):
    """Sum of the runs' final cumulative minutes; None when one of them is missing."""
    if any(name not in curves for name in names):
        return None
    return sum(curves[name][-1]["minutes"] for name in names)


def stage2_runs(system: str) -> list[str] | None:
    return STAGE2.get(SAME_MODEL.get(system, system))


def before_stage2(system: str) -> list[str]:
    if system.startswith("scratch-"):
        return stage1("scratch")
    prefix = OWN_PIPELINE.get(system, "")
    return [prefix + name for name in ["foundation", *stage1("transfer")]]


def arm_runs(system: str) -> list[str] | None:
    """Every run a jukesep arm trained (foundation, stage 1, stage 2); None for other systems."""
    stage2 = stage2_runs(system)
    return None if stage2 is None else before_stage2(system) + stage2


def wall_minutes(system: str, curves: dict, notes: dict):
    if system in LEARNED_MASK:
        base, run = LEARNED_MASK[system]
        cache = (notes.get("cache_minutes") or {}).get(system)
        parts = [wall_minutes(base, curves, notes), total(curves, [run]), cache]
        return None if None in parts else sum(parts)
    runs = arm_runs(system)
    if runs is not None:
        return total(curves, runs)
    return (notes.get("peer_minutes") or {}).get(system)


def stage2_series(curves: dict, arm: str):
    """(minutes, sdr) of an arm's stage 2: its one run; its runs one after the other (SEQUENTIAL: each
    later run's minutes counted from the end of the one before); or its per-stem runs taken at equal
    validation index (minutes summed over stems, SDR averaged over stems). None when a run is missing."""
    hists = [curves.get(name) for name in stage2_runs(arm)]
    if not all(hists):
        return None
    if arm in SEQUENTIAL:
        minutes, sdrs, offset = [], [], 0.0
        for h in hists:
            minutes += [offset + point["minutes"] for point in h]
            sdrs += [point["sdr"] for point in h]
            offset = minutes[-1]
        return minutes, sdrs
    n = min(len(h) for h in hists)
    return ([sum(h[i]["minutes"] for h in hists) for i in range(n)],
            [sum(h[i]["sdr"] for h in hists) / len(hists) for i in range(n)])


# --- separation quality --------------------------------------------------------------------------------------------

def mdx(summary: dict, stem: str):
    return (summary["table"].get(stem) or {}).get("mdx_sdr_mean")


def ordered(systems) -> list[str]:
    known = PEERS + ARMS + REFINES + [FLOOR]
    unknown = sorted(s for s in systems if s not in known)
    return [s for s in known[:-1] if s in systems] + unknown + [s for s in [FLOOR] if s in systems]


def split_stems(rows: dict) -> list[str]:
    return next(iter(rows.values()))["settings"].get("stems") or STEMS


def split_title(split: str, rows: dict) -> str:
    first = next(iter(rows.values()))
    note = f"{SPLIT_NOTES[split]}; " if split in SPLIT_NOTES else ""
    mono = "mono" if first["settings"].get("mono") else "stereo"
    return (f"Split **{split}** ({note}{first['songs']} songs, {first['seconds_audio'] / 60:.1f} min), {mono}, "
            "MDX SDR (dB), mean over songs.")


def quality_table(rows: dict, stems: list[str], walls: dict | None) -> list[str]:
    wall_head, wall_rule = ("train wall time (min) | ", "---|") if walls is not None else ("", "")
    lines = [f"| system | description | {wall_head}" + " | ".join(stems) + " | **avg** | x real time |",
             f"|---|---|{wall_rule}" + "---|" * (len(stems) + 2)]
    for name in ordered(rows):
        s = rows[name]
        wall = f"{fmt(walls.get(name), 1)} | " if walls is not None else ""
        lines.append(f"| {name} | {DESCRIPTIONS.get(name, '–')} | {wall}" + " | ".join(fmt(mdx(s, st)) for st in stems)
                     + f" | **{fmt(mdx(s, 'average'))}** | {fmt(s.get('x_real_time'), 1)} |")
    return lines


def default_lines(rows: dict, stems: list[str], arm: str, label: str, peer: str = "openunmix") -> list[str]:
    """How the arm (called label) stands against mixture/4 and Open-Unmix (the system named peer)."""
    default, floor, umx = rows.get(arm), rows.get(FLOOR), rows.get(peer)
    lines = []
    if default and floor and mdx(default, "average") is not None and mdx(floor, "average") is not None:
        above = sum(1 for st in stems if mdx(default, st) is not None and mdx(floor, st) is not None
                    and mdx(default, st) > mdx(floor, st))
        lines.append(f"{label} − mixture/4: {signed(mdx(default, 'average') - mdx(floor, 'average'))} dB on average; "
                     f"stems above their mixture/4 floor: {above} of {len(stems)}")
    if default and umx and mdx(default, "average") is not None and mdx(umx, "average") is not None:
        lines.append(f"{label} − Open-Unmix: {signed(mdx(default, 'average') - mdx(umx, 'average'))} dB")
    return ["", ". ".join(lines) + "."] if lines else []


def round_tables(quality: dict, curves: dict, notes: dict, default: str, label: str,
                 peer: str = "openunmix") -> list[str]:
    tables = []
    for split in SPLITS + sorted(set(quality) - set(SPLITS)):
        rows = quality.get(split, {})
        if split == "valid":
            rows = {name: s for name, s in rows.items() if name not in REFINES}
        if not rows:
            continue
        stems = split_stems(rows)
        walls = {name: wall_minutes(name, curves, notes) for name in rows}
        tables += [split_title(split, rows), ""] + quality_table(rows, stems, walls) \
            + default_lines(rows, stems, default, label, peer) + [""]
    return tables


def quality_section(quality: dict, rounds: dict, curves: dict, notes: dict) -> list[str]:
    """The current round's tables, then each earlier round's under its title from notes.json."""
    tables = round_tables(quality, curves, notes, notes.get("default", DEFAULT), "default")
    for name, earlier in rounds.items():
        about = (notes.get("rounds") or {}).get(name, {})
        arm = about.get("default", DEFAULT)
        tables += [f"### {about.get('title', name)}", ""] \
            + round_tables(earlier, curves, notes, arm, arm, about.get("peer", "openunmix")) \
            + refinement_section(earlier, "####")
    if not tables:
        return []
    return ["## Separation quality", "",
            "**avg**: the evaluation's average over stems. Train wall time: minutes of all the training a system "
            "needed, summed from its runs' validation histories (transfer arms: foundation + 4 stage-1 VQ-VAEs + "
            "stage 2; scratch arm: 4 stage-1 VQ-VAEs + stage 2; peers: `peer_minutes` in notes.json). "
            "x real time: seconds of audio separated per second during the evaluation.", ""] + tables


def refinement_section(quality: dict, level: str = "##") -> list[str]:
    rows = {name: s for name, s in quality.get("valid", {}).items() if name in REFINES}
    if not rows:
        return []
    stems = split_stems(rows)
    table = quality_table(rows, stems, None)
    scored = [(mdx(s, "average"), name) for name, s in rows.items() if mdx(s, "average") is not None]
    best = [f"Best average: **{max(scored)[1]}** ({fmt(max(scored)[0])} dB)."] if scored else []
    title = [f"{level} Refinement (chosen on the valid split)", "", split_title("valid", rows), ""]
    return title + table + [""] + best + [""]


# --- transfer vs scratch -------------------------------------------------------------------------------------------

def stage1_table(curves: dict) -> list[str]:
    if not any(name in curves for name in stage1("transfer") + stage1("scratch")):
        return []
    lines = ["Stage 1 (stem VQ-VAEs): validation reconstruction SDR (dB); transfer = initialised from the foundation "
             "VQ-VAE, scratch = random initialisation.", "",
             "| stem | transfer final | scratch final | transfer best | scratch best | transfer min | scratch min |",
             "|---|---|---|---|---|---|---|"]
    for stem in STEMS:
        cells = [curves.get(f"{arm}-vqvae-{stem}") for arm in ("transfer", "scratch")]
        lines.append(f"| {stem} | " + " | ".join(fmt(h[-1]["sdr"]) if h else "–" for h in cells)
                     + " | " + " | ".join(fmt(max(x["sdr"] for x in h)) if h else "–" for h in cells)
                     + " | " + " | ".join(fmt(h[-1]["minutes"], 1) if h else "–" for h in cells) + " |")
    return lines + [""]


def stage2_table(curves: dict) -> list[str]:
    arms = [arm for arm in STAGE2 if stage2_series(curves, arm)]
    if not arms:
        return []
    lines = ["Stage 2 (the separator): validation SDR (dB, output, average over stems). Per-stem arms: final = mean of "
             "the four encoder runs' final SDR, best = best of their mean at equal validation index, steps and "
             "minutes = per run and summed over the four runs.", "",
             "| arm | stage-2 runs | steps | wall time (min) | final val SDR | best val SDR |",
             "|---|---|---|---|---|---|"]
    for arm in arms:
        names = stage2_runs(arm)
        hists = [curves[n] for n in names]
        steps = sorted({h[-1]["step"] for h in hists})
        runs = f"`{names[0]}`" if len(names) == 1 else f"`{names[0].rsplit('-', 1)[0]}-<stem>` ×{len(names)}"
        lines.append(f"| {arm} | {runs} | {'–'.join(str(s) for s in steps)} | {fmt(total(curves, names), 1)} | "
                     f"{fmt(sum(h[-1]['sdr'] for h in hists) / len(hists))} | "
                     f"{fmt(max(stage2_series(curves, arm)[1]))} |")
    return lines + [""]


def final_table(quality: dict, curves: dict, pair: tuple[str, str]) -> list[str]:
    splits = [sp for sp in ("test", "heldout") if any(a in quality.get(sp, {}) for a in pair)]
    if not splits:
        return []
    lines = ["Final separation, same design with and without transfer: average MDX SDR (dB) over stems.", "",
             f"| split | {pair[0]} (transfer) | {pair[1]} (scratch) | transfer − scratch |", "|---|---|---|---|"]
    for split in splits:
        avgs = [mdx(quality[split][a], "average") if a in quality[split] else None for a in pair]
        diff = None if None in avgs else avgs[0] - avgs[1]
        lines.append(f"| {split} | {fmt(avgs[0])} | {fmt(avgs[1])} | {signed(diff)} |")
    parts = []
    for arm in pair:
        pre, stage2 = total(curves, before_stage2(arm)), total(curves, stage2_runs(arm))
        if pre is not None and stage2 is not None:
            parts.append(f"{arm} {fmt(pre + stage2, 1)} min ({fmt(pre, 1)} before stage 2, {fmt(stage2, 1)} stage 2)")
    return lines + ([""] + ["Training wall time, all stages: " + "; ".join(parts) + "."] if parts else []) + [""]


def plot_curves(curves: dict, path: Path, pair: tuple[str, str]) -> bool:
    """Stage-2 validation curves; False (no file) when there is no stage-2 curve."""
    if not any(stage2_series(curves, arm) for arm in STAGE2):
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, colour in zip(pair, ("C0", "C1")):
        series, offset = stage2_series(curves, arm), total(curves, before_stage2(arm))
        if series and offset is not None:
            left.plot([offset + m for m in series[0]], series[1], colour, marker=".", label=arm)
            left.axvline(offset, color=colour, ls="--", lw=1)
    left.set_xlim(left=0)
    left.set_xlabel("training wall time (min, all stages)")
    left.set_ylabel("validation SDR (dB, stage 2 output, avg over stems)")
    left.set_title("transfer vs scratch", fontsize=10)
    for i, arm in enumerate(TRANSFER_ARMS):
        series = stage2_series(curves, arm)
        if series:
            right.plot(series[0], series[1], f"C{i}", marker=".", label=arm)
    right.set_xlabel("stage-2 wall time (min; per-stem arms: summed over the 4 runs)")
    right.set_ylabel("validation SDR (dB, stage 2 output, avg over stems)")
    right.set_title("stage 2 of the transfer arms", fontsize=10)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.get_lines():
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no curves", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def transfer_section(quality: dict, curves: dict, out_dir: Path, notes: dict) -> list[str]:
    # notes.json "twins": the transfer and scratch arms of one design, when the default has no scratch twin
    pair = tuple(notes.get("twins") or (notes.get("default", DEFAULT), notes.get("scratch", SCRATCH)))
    lines = stage1_table(curves) + stage2_table(curves) + final_table(quality, curves, pair)
    foundation = curves.get("foundation")
    if foundation:
        lines += [f"Foundation VQ-VAE: reconstruction SDR {fmt(foundation[0]['sdr'])} dB at step "
                  f"{foundation[0]['step']} → {fmt(foundation[-1]['sdr'])} dB at step {foundation[-1]['step']} "
                  f"({fmt(foundation[-1]['minutes'], 1)} min).", ""]
    if plot_curves(curves, out_dir / "transfer_vs_scratch.png", pair):
        lines += ["![transfer vs scratch](transfer_vs_scratch.png)", "",
                  "Left: validation SDR of stage 2 against the wall time of all stages; the transfer arm "
                  f"({pair[0]}) starts stage 2 after the foundation and its four stage-1 VQ-VAEs, the scratch arm "
                  "after its own four stage-1 VQ-VAEs (dashed lines: where stage 2 starts). Right: stage 2 of each "
                  "transfer arm against stage-2 wall time only; for the per-stem arms x is the minutes of the four "
                  "encoder runs summed and y their mean validation SDR, taken at equal validation index.", ""]
    return ["## Transfer vs scratch", ""] + lines if lines else []


# --- included and older sections -------------------------------------------------------------------------------------

def performance_section(results: Path) -> list[str]:
    path = results / "performance.md"
    notes = path.read_text().rstrip("\n").splitlines() + [""] if path.exists() else []
    return (cpu_speed_table(load(results / "cpu_speed.json"), "Separation speed on CPU (latest interleaved run)")
            + cpu_speed_table(load(results / "cpu_speed_avx2.json"), "The same CPU capped at AVX2 (emulating an "
                              "AVX2-only CPU: float32, no AVX-512, no AMX)", level="###") + notes)


def cpu_speed_table(speed: dict | None, title: str, level: str = "##") -> list[str]:
    """An interleaved run: median and range of each system, and its ratio to Open-Unmix-HQ."""
    if not speed:
        return []
    machine = speed["machine"]
    rows = speed["results"]
    peer = next((r for r in rows if r["key"] == "openunmix"), None)
    caps = ", ".join(f"{k}={v}" for k, v in machine.get("isa_caps", {}).items())
    lines = [f"{level} {title}", "",
             f"{speed['date'][:16].replace('T', ' ')} UTC; {machine['cpu']}, {machine['cpu_count']} cores, "
             f"{machine['torch_threads']} torch threads, CPU flags: {machine.get('cpu_flags', 'not recorded')}"
             f"{f' (capped: {caps})' if caps else ''}; "
             f"torch {machine['torch']}, malloc: {machine.get('malloc', 'system')} (every system alike). "
             f"Input {speed['seconds']:g} s stereo 44.1 kHz, 4 stems; "
             f"{speed['repeat']} rounds, systems interleaved within each round; median (min–max).", "",
             "| system | x real time | range | vs Open-Unmix-HQ |", "|---|---|---|---|"]
    for row in rows:
        rates = sorted(speed["seconds"] / t for t in row["all_seconds"])
        ratio = f"{row['x_real_time'] / peer['x_real_time']:.2f}x" if peer else "–"
        lines.append(f"| {row['label']} | {row['x_real_time']:.2f} | {rates[0]:.2f}–{rates[-1]:.2f} | {ratio} |")
    return lines + [""]


def speed_section(results: Path) -> list[str]:
    lines = []
    speed = load(results / "separation_speed.json")
    if speed:
        lines += ["### Separation speed", "", f"{speed.get('machine', {}).get('cpu', '')} — "
                  f"{speed.get('date', '')}; input {speed.get('seconds')} s stereo 44.1 kHz, 4 stems, untrained "
                  "weights (same cost as trained).", "", "| system | parameters | seconds | x real time |",
                  "|---|---|---|---|"]
        for row in speed.get("results", []):
            lines.append(f"| {row.get('label', row.get('key'))} | {row.get('params', 0):,} | {fmt(row.get('seconds'))} "
                         f"| {fmt(row.get('x_real_time'))} |")
        lines.append("")
    memory = load(results / "separation_memory.json")
    if memory:
        where = f"{memory.get('machine', 'CPU not recorded')}, threads: {memory.get('threads', 'not recorded')}"
        lines += ["### Separation memory", "", f"{memory['model']} on {memory['device']} ({where}), {memory['date']}.",
                  "",
                  "| song | peak RSS (MiB) | CUDA max allocated (MiB) | x real time | malloc |",
                  "|---|---|---|---|---|"]
        for r in memory["rows"]:
            lines.append(f"| {r['minutes']:.0f} min | {r['peak_rss_mib']:.0f} | {fmt(r['cuda_max_allocated_mib'], 0)} "
                         f"| {fmt(r['x_real_time'])} | {r.get('malloc', 'system')} |")
        lines.append("")
    train = load(results / "train_speed.json")
    if train:
        lines += ["### Training speed (stage 1, paper batch)", "", "| device | batch | bf16 | compile | ms/step | "
                  "steps/s | audio s/s |", "|---|---|---|---|---|---|---|",
                  f"| {train['device']} ({train['threads']} threads) | {train['batch']}×{train['excerpt']} | "
                  f"{train['bf16']} | {train['compile']} | {1000 * train['seconds_per_step']:.0f} | "
                  f"{train['steps_per_second']:.3f} | {train['audio_seconds_per_second']:.1f} |", ""]
    if not lines:
        return []
    dates = sorted({str(d.get("date", ""))[:10] for d in (speed, memory, train) if d and d.get("date")})
    when = f" ({', '.join(dates)})" if dates else ""
    return [f"## Older speed and memory measurements{when}", "",
            "Measured before the performance work above; kept for comparison.", ""] + lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "RESULTS.md")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    notes = load(args.results / "notes.json") or {}
    quality, curves = load_quality(args.results / "quality"), load_curves(args.results)
    rounds = {d.name: load_quality(d) for d in sorted((args.results / "quality").glob("*/")) if d.is_dir()}
    lines = ["# jukesep results", "", "Generated by `benchmarks/make_results.py` from the JSON in "
             "`benchmarks/results/`; do not edit by hand.", ""]
    lines += notes.get("lines", [])
    lines += ([""] + quality_section(quality, rounds, curves, notes) + refinement_section(quality)
              + transfer_section(quality, curves, args.out.parent, notes) + performance_section(args.results)
              + speed_section(args.results))
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
