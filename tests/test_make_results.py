"""benchmarks/make_results.py renders RESULTS.md from a results folder (a tiny fake one here)."""
import json
from pathlib import Path

import pytest

from tests.conftest import load_benchmark

STEMS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def make_results():
    return load_benchmark("make_results")


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def summary(system: str, split: str, sdrs: list[float], x_real_time: float = 5.0) -> dict:
    table = {st: {"mdx_sdr_mean": v, "mdx_sdr_median": v, "SDR_median": None} for st, v in zip(STEMS, sdrs)}
    table["average"] = {"mdx_sdr_mean": sum(sdrs) / len(sdrs), "mdx_sdr_median": None, "SDR_median": None}
    return {"settings": {"system": system, "split": split, "mono": False, "bss": False, "stems": STEMS},
            "data": "/data/corpus", "songs": 24, "seconds_audio": 720.0, "x_real_time": x_real_time,
            "table": table, "date": "2026-12-01 10:00"}


def curve(minutes: float, sdrs=(1.0, 2.0, 3.0)) -> list[dict]:
    n = len(sdrs)
    return [{"step": 100 * (i + 1), "sdr": s, "minutes": minutes * (i + 1) / n} for i, s in enumerate(sdrs)]


SYSTEMS = {  # per-stem MDX SDR
    "mix4": [1.0, 1.0, 1.0, 1.0],
    "irm": [10.0, 9.0, 8.0, 12.0],
    "openunmix": [5.0, 5.0, 5.0, 5.0],
    "transfer-shared-latent-lr3": [3.0, 2.0, 0.5, 2.5],  # the default: avg 2.0; 3 of 4 stems above mix4
    "scratch-shared-latent": [2.0, 1.5, 0.5, 2.0],
    "mystery-system": [0.0, 0.0, 0.0, 0.0],
}
MINUTES = {"foundation": 10.0, **{f"transfer-vqvae-{s}": m for s, m in zip(STEMS, [2.0, 3.0, 4.0, 5.0])},
           "transfer-shared-latent-lr3": 6.0}
EARLIER = {"mix4": [0.5, 0.5, 0.5, 0.5], "openunmix": [4.0, 4.0, 4.0, 4.0], "shared-output": [1.0, 1.0, 1.0, 1.0]}
WIDE = {"mix4": [0.5, 0.5, 0.5, 0.5], "wide-openunmix": [6.0, 6.0, 6.0, 6.0], "wide-default": [2.0, 2.0, 2.0, 2.0]}


@pytest.fixture
def results(tmp_path: Path) -> Path:
    res = tmp_path / "results"
    for split in ("test", "heldout"):
        for system, sdrs in SYSTEMS.items():
            write(res / "quality" / f"{system}-{split}.json", summary(system, split, sdrs))
    for name in ("refine-none", "refine-wiener"):
        write(res / "quality" / f"{name}-valid.json",
              summary(name, "valid", [2.0, 2.0, 2.0, 2.0] if name == "refine-none" else [2.5, 2.5, 2.5, 2.5]))
    for name, minutes in MINUTES.items():
        write(res / "curves" / f"{name}.json", curve(minutes))
    for system, sdrs in EARLIER.items():  # an earlier round, in its own folder
        write(res / "quality" / "first" / f"{system}-test.json", summary(system, "test", sdrs))
    for system, sdrs in WIDE.items():  # a round with its own Open-Unmix run
        write(res / "quality" / "wide" / f"{system}-test.json", summary(system, "test", sdrs))
    write(res / "curves" / "transfer-encoder-bass.json", curve(1.0))  # old-style name: ignored
    write(res / "notes.json", {"title": "What was run", "lines": ["Some notes."], "peer_minutes": {"openunmix": 48},
                               "rounds": {"first": {"title": "The first round", "default": "shared-output"},
                                          "wide": {"title": "The wide round", "default": "wide-default",
                                                   "peer": "wide-openunmix"}}})
    write(res / "cpu_speed.json", {
        "date": "2026-12-01T10:00:00+00:00", "seconds": 30.0, "repeat": 3,
        "machine": {"cpu": "Some CPU", "cpu_count": 2, "torch_threads": 2, "cpu_flags": "avx2 fma", "torch": "2.13"},
        "results": [{"key": "openunmix", "label": "Open-Unmix UMX-HQ", "x_real_time": 10.0, "all_seconds": [3, 3, 2.5]},
                    {"key": "model:new", "label": "jukesep new", "x_real_time": 12.0, "all_seconds": [2.5, 2, 3]}]})
    (res / "performance.md").write_text("## Speed and memory after the performance work (2026-11-30)\n\nFast.\n")
    return res


def table_rows(text: str, title_start: str) -> list[str]:
    """System names of the table under the line starting with title_start."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title_start))
    rows = []
    for line in lines[start + 4:]:
        if not line.startswith("|"):
            break
        rows.append(line.split(" | ")[0][2:])
    return rows


def test_make_results(make_results, results: Path, tmp_path: Path):
    out = tmp_path / "docs" / "RESULTS.md"
    make_results.main(["--results", str(results), "--out", str(out)])
    text = out.read_text()

    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Separation quality", "## Refinement (chosen on the valid split)", "## Transfer vs scratch",
                        "## Separation speed on CPU (latest interleaved run)",
                        "## Speed and memory after the performance work (2026-11-30)"]
    assert "CPU flags: avx2 fma" in text
    assert "| jukesep new | 12.00 | 10.00–15.00 | 1.20x |" in text
    assert "| Open-Unmix UMX-HQ | 10.00 | 10.00–12.00 | 1.00x |" in text
    assert "Some notes." in text
    assert "transfer-encoder" not in text

    for split in ("test", "heldout"):
        rows = table_rows(text, f"Split **{split}**")
        assert rows == ["irm", "openunmix", "transfer-shared-latent-lr3", "scratch-shared-latent", "mystery-system",
                        "mix4"]
    assert "held-out timbres" in text
    assert text.index("Split **test**") < text.index("Split **heldout**")

    def wall(system: str) -> str:  # train wall time column of the first (test) table
        return next(line for line in text.splitlines() if line.startswith(f"| {system} |")).split(" | ")[2]

    assert wall("transfer-shared-latent-lr3") == f"{sum(MINUTES.values()):.1f}" == "30.0"  # all three stages
    assert wall("openunmix") == "48.0"
    assert wall("scratch-shared-latent") == "–"  # its curves are missing

    assert "default − mixture/4: +1.00 dB on average; stems above their mixture/4 floor: 3 of 4" in text
    assert "default − Open-Unmix: -3.00 dB" in text

    earlier = text[text.index("### The first round"):text.index("### The wide round")]  # against its own peers
    assert table_rows(earlier, "Split **test**") == ["openunmix", "shared-output", "mix4"]
    assert "shared-output − mixture/4: +0.50 dB on average; stems above their mixture/4 floor: 4 of 4" in earlier
    assert "shared-output − Open-Unmix: -3.00 dB" in earlier
    wide = text[text.index("### The wide round"):]  # its peer named in notes.json
    assert table_rows(wide, "Split **test**") == ["wide-openunmix", "wide-default", "mix4"]
    assert "wide-default − Open-Unmix: -4.00 dB" in wide

    assert table_rows(text, "Split **valid**") == ["refine-none", "refine-wiener"]
    assert "Best average: **refine-wiener** (2.50 dB)" in text
    assert "| test | 2.00 | 1.50 | +0.50 |" in text
    assert "Foundation VQ-VAE: reconstruction SDR 1.00 dB at step 100 → 3.00 dB at step 300 (10.0 min)." in text

    png = out.parent / "transfer_vs_scratch.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    assert text.rstrip().endswith("Fast.")


def test_stage2_series_chains_sequential_runs_and_averages_per_stem_ones(make_results):
    """An arm whose second run continued the first (e2e-end-to-end) is one series over both runs'
    minutes; the per-stem arms' four encoders ran side by side (minutes summed, SDR averaged)."""
    curves = {"e2e-transfer-shared-latent-lr3-w16": curve(20.0, (1.0, 2.0)),
              "e2e-transfer-shared-latent-lr3-w16-e2e": curve(20.0, (2.5, 3.0)),
              **{f"transfer-paper-encoder-{s}": curve(5.0, (1.0, float(i))) for i, s in enumerate(STEMS)}}
    assert make_results.stage2_series(curves, "e2e-end-to-end") == ([10.0, 20.0, 30.0, 40.0], [1.0, 2.0, 2.5, 3.0])
    assert make_results.stage2_series(curves, "transfer-paper") == ([10.0, 20.0], [1.0, 1.5])
    assert make_results.stage2_series(curves, "e2e-control") is None
