"""Generate docs/RESULTS.md (and its plots) from the JSON the benchmarks and evaluations wrote.
Nothing in RESULTS.md is typed by hand: rerun this after rerunning a benchmark.

    python benchmarks/make_results.py [--results benchmarks/results] [--out docs/RESULTS.md]

Reads, when present:
  separation_speed.json   benchmarks/separation_speed.py --json
  separation_memory.json  benchmarks/separation_memory.py --json
  train_speed.json        benchmarks/train_speed.py --json
  quality/*.json          summary.json of `jukesep evaluate` runs (one per system)
  curves/*.json           val_history.json of training runs, named <arm>-<stage>-<stem>.json
  notes.json              {"title": ..., "lines": [...]}: what was run (data, budgets), written by the run script
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def fmt(value, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def quality_section(results: Path) -> list[str]:
    files = sorted((results / "quality").glob("*.json"))
    if not files:
        return []
    lines = ["## Separation quality", ""]
    by_split: dict[tuple, list] = {}
    for f in files:
        summary = json.loads(f.read_text())
        key = (summary["data"], summary["settings"]["split"], summary["settings"]["mono"])
        by_split.setdefault(key, []).append((f.stem, summary))
    for (data, split, mono), rows in by_split.items():
        stems = rows[0][1]["settings"]["stems"]
        lines += [f"Data `{Path(data).name}`, split **{split}** ({rows[0][1]['songs']} songs, "
                  f"{rows[0][1]['seconds_audio'] / 60:.1f} min), {'mono' if mono else 'stereo'}. "
                  "MDX SDR (dB): mean over songs; BSS SDR: BSSEval v4 median over frames, then over songs.", "",
                  "| system | " + " | ".join(stems) + " | **avg MDX SDR** | avg BSS SDR | x real time |",
                  "|---|" + "---|" * (len(stems) + 3)]
        for name, s in sorted(rows, key=lambda r: -(r[1]["table"]["average"]["mdx_sdr_mean"] or -99)):
            t = s["table"]
            lines.append(f"| {name} | " + " | ".join(fmt(t[st]["mdx_sdr_mean"]) for st in stems)
                         + f" | **{fmt(t['average']['mdx_sdr_mean'])}** | {fmt(t['average']['SDR_median'])}"
                         f" | {fmt(s.get('x_real_time'), 1)} |")
        lines.append("")
    return lines


def curves_section(results: Path, out_dir: Path) -> list[str]:
    files = sorted((results / "curves").glob("*.json"))
    if not files:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {f.stem: json.loads(f.read_text()) for f in files}
    stages = sorted({name.split("-")[1] for name in runs if name.count("-") >= 2})
    stems = sorted({name.split("-", 2)[2] for name in runs if name.count("-") >= 2})
    lines = ["## Transfer vs scratch", "",
             "Validation SDR (dB, MDX, fixed validation excerpts) against training steps, same stages and budget; "
             "transfer = initialised from the foundation VQ-VAE, scratch = random initialisation.", "",
             "| stage | stem | transfer final | scratch final | transfer best | scratch best |",
             "|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(len(stages), max(1, len(stems)), figsize=(3.2 * max(1, len(stems)), 2.6 * len(stages)),
                             squeeze=False)
    for i, stage in enumerate(stages):
        for j, stem in enumerate(stems):
            ax = axes[i][j]
            cells = []
            for arm, colour in (("transfer", "C0"), ("scratch", "C1")):
                hist = runs.get(f"{arm}-{stage}-{stem}")
                if hist:
                    ax.plot([h["step"] for h in hist], [h["sdr"] for h in hist], colour, label=arm)
                cells.append(hist)
            ax.set_title(f"{stage} · {stem}", fontsize=9)
            ax.grid(alpha=0.3)
            if i == len(stages) - 1:
                ax.set_xlabel("step")
            if j == 0:
                ax.set_ylabel("val SDR (dB)")
            lines.append(f"| {stage} | {stem} | " + " | ".join(fmt(h[-1]["sdr"]) if h else "–" for h in cells)
                         + " | " + " | ".join(fmt(max(x["sdr"] for x in h)) if h else "–" for h in cells) + " |")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "transfer_vs_scratch.png", dpi=100)
    plt.close(fig)
    foundation = runs.get("foundation")
    if foundation:
        lines += ["", f"Foundation VQ-VAE: reconstruction SDR {fmt(foundation[0]['sdr'])} dB at step "
                  f"{foundation[0]['step']} → {fmt(foundation[-1]['sdr'])} dB at step {foundation[-1]['step']} "
                  f"({foundation[-1]['minutes']} min)."]
    return lines + ["", "![transfer vs scratch](transfer_vs_scratch.png)", ""]


def speed_section(results: Path) -> list[str]:
    lines = []
    speed = load(results / "separation_speed.json")
    if speed:
        lines += ["## Separation speed", "", f"{speed.get('machine', {}).get('cpu', '')} — "
                  f"{speed.get('date', '')}; input {speed.get('seconds')} s stereo 44.1 kHz, 4 stems, untrained "
                  "weights (same cost as trained).", "", "| system | parameters | seconds | x real time |",
                  "|---|---|---|---|"]
        for row in speed.get("results", []):
            lines.append(f"| {row.get('label', row.get('key'))} | {row.get('params', 0):,} | {fmt(row.get('seconds'))} "
                         f"| {fmt(row.get('x_real_time'))} |")
        lines.append("")
    memory = load(results / "separation_memory.json")
    if memory:
        lines += ["## Separation memory", "", f"{memory['model']} on {memory['device']}, {memory['date']}.", "",
                  "| song | peak RSS (MiB) | CUDA max allocated (MiB) | x real time |", "|---|---|---|---|"]
        for r in memory["rows"]:
            lines.append(f"| {r['minutes']:.0f} min | {r['peak_rss_mib']:.0f} | {fmt(r['cuda_max_allocated_mib'], 0)} "
                         f"| {fmt(r['x_real_time'])} |")
        lines.append("")
    train = load(results / "train_speed.json")
    if train:
        lines += ["## Training speed (stage 1, paper batch)", "", "| device | batch | bf16 | compile | ms/step | "
                  "steps/s | audio s/s |", "|---|---|---|---|---|---|---|",
                  f"| {train['device']} ({train['threads']} threads) | {train['batch']}×{train['excerpt']} | "
                  f"{train['bf16']} | {train['compile']} | {1000 * train['seconds_per_step']:.0f} | "
                  f"{train['steps_per_second']:.3f} | {train['audio_seconds_per_second']:.1f} |", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "docs" / "RESULTS.md")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    notes = load(args.results / "notes.json") or {}
    lines = ["# jukesep results", "", "Generated by `benchmarks/make_results.py` from the JSON in "
             "`benchmarks/results/`; do not edit by hand.", ""]
    lines += notes.get("lines", [])
    lines += [""] + quality_section(args.results) + curves_section(args.results, args.out.parent) + speed_section(
        args.results)
    args.out.write_text("\n".join(lines).rstrip() + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
