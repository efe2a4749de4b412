"""A self-contained HTML report (tables, box plots, spectrograms) with the PNGs also saved beside it."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes

METRICS = (("mdx_sdr_mean", "MDX SDR mean"), ("mdx_sdr_median", "MDX SDR median"), ("SDR_median", "BSS SDR"),
           ("SIR_median", "SIR"), ("ISR_median", "ISR"), ("SAR_median", "SAR"))


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def box_plot(results: list[dict], stems: list[str], metric: str, title: str) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = [[v for r in results if (v := r["scores"][s].get(metric)) is not None and np.isfinite(v)] for s in stems]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.boxplot([d or [np.nan] for d in data], showmeans=True)
    ax.set_xticks(range(1, len(stems) + 1), stems)
    for i, d in enumerate(data, 1):
        ax.scatter(np.full(len(d), i) + np.random.default_rng(i).uniform(-0.12, 0.12, len(d)), d, s=10, alpha=0.5)
    ax.set_ylabel("dB")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    png = _png(fig)
    plt.close(fig)
    return png


def spectrograms(example: dict, stems: list[str]) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate = example["rate"]
    length = min(int(10.0 * rate), example["mixture"].shape[1])
    start = max(0, (example["mixture"].shape[1] - length) // 2)
    cut = slice(start, start + length)
    rows = [("mixture", example["mixture"][:, cut], None)]
    rows += [(s, example["references"][s][:, cut], example["estimates"][s][:, cut]) for s in stems]
    fig, axes = plt.subplots(len(rows), 2, figsize=(11, 2.1 * len(rows)), squeeze=False)
    for row, (name, ref, est) in enumerate(rows):
        for col, (label, audio) in enumerate((("reference", ref), ("estimate", est))):
            ax = axes[row][col]
            if audio is None:
                ax.axis("off")
                continue
            ax.specgram(audio.mean(0), NFFT=2048, Fs=rate, noverlap=1536, cmap="magma", vmin=-120, vmax=-20)
            ax.set_ylim(0, 11000)
            ax.set_title(f"{name} — {label}", fontsize=9)
            ax.set_ylabel("Hz", fontsize=8)
    fig.suptitle(f"{example['song']}: {length / rate:.0f} s from the middle", fontsize=10)
    fig.tight_layout()
    png = _png(fig)
    plt.close(fig)
    return png


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.2f}"


def write_report(out: Path, summary: dict, results: list[dict], example: dict) -> Path:
    stems = summary["settings"]["stems"]
    images = {"mdx_sdr.png": box_plot(results, stems, "mdx_sdr", "MDX SDR per song")}
    if summary["settings"]["bss"]:
        images["bss_sdr.png"] = box_plot(results, stems, "SDR", "BSSEval v4 SDR per song (median over 1-s frames)")
    if example:
        images["spectrograms.png"] = spectrograms(example, stems)
    for name, png in images.items():
        atomic_write_bytes(out / name, png)
    rows = "".join(
        f"<tr{' class=avg' if stem == 'average' else ''}><th>{stem}</th>"
        + "".join(f"<td>{_fmt(values[key])}</td>" for key, _ in METRICS) + "</tr>"
        for stem, values in summary["table"].items())
    songs = "".join(
        f"<tr><th>{html.escape(r['song'])}</th>" + "".join(f"<td>{_fmt(r['scores'][s]['mdx_sdr'])}</td>" for s in stems)
        + "</tr>" for r in results)
    settings = summary["settings"]
    pics = "".join(f'<figure><img src="data:image/png;base64,{base64.b64encode(png).decode()}" alt="{name}">'
                   f"</figure>" for name, png in images.items())
    speed = summary["x_real_time"]
    title = html.escape(settings["system"])
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>jukesep evaluation: {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:.3em .7em;text-align:right}}
th{{background:#f4f4f4}}tr.avg th,tr.avg td{{font-weight:bold;background:#eef5ff}}img{{max-width:100%}}
.meta{{color:#555}}</style></head><body>
<h1>Evaluation of <code>{html.escape(settings['system'])}</code></h1>
<p class="meta">Data: {html.escape(summary['data'])}, split <b>{settings['split']}</b>, {summary['songs']} songs,
{summary['seconds_audio'] / 60:.1f} min, {'mono (as in the paper)' if settings['mono'] else 'stereo'};
{summary['date']}; separation speed {_fmt(speed)}× real time.</p>
<p class="meta">MDX SDR = 10·log10(Σs² / Σ(s−ŝ)²) per song (ε = 1e-7), then mean or median over songs.
BSS columns: BSSEval v4 (museval), median over 1-s frames, then median over songs.</p>
<table><tr><th>stem</th>{''.join(f'<th>{label}</th>' for _, label in METRICS)}</tr>{rows}</table>
{pics}
<h2>Per song (MDX SDR, dB)</h2>
<table><tr><th>song</th>{''.join(f'<th>{s}</th>' for s in stems)}</tr>{songs}</table>
</body></html>"""
    atomic_write_bytes(out / "report.html", page.encode())
    return out / "report.html"
