import json

import numpy as np
import pytest

from jukesep.checkpoint import save_model
from jukesep.cli import main
from jukesep.errors import ShapeError
from jukesep.evaluate import evaluate, ideal_ratio_mask, mdx_sdr, mix4
from jukesep.evaluate.metrics import museval_metrics
from tests.conftest import random_separator, write_song


def test_mdx_sdr_by_hand():
    rng = np.random.default_rng(0)
    s = rng.standard_normal((2, 1000)).astype(np.float32)
    assert mdx_sdr(s, s) > 70  # identical: only the 1e-7 guard bounds it
    assert mdx_sdr(s, 0.5 * s) == pytest.approx(10 * np.log10(4.0), abs=1e-4)  # error energy = s²/4
    assert mdx_sdr(s, np.zeros_like(s)) == pytest.approx(0.0, abs=1e-6)
    silent = np.zeros((2, 1000))
    assert mdx_sdr(silent, silent) == 0.0  # guards: 10·log10(1e-7 / 1e-7)
    assert mdx_sdr(silent, 0.01 * s) == pytest.approx(10 * np.log10(1e-7 / (np.sum((0.01 * s) ** 2) + 1e-7)), abs=1e-6)
    with pytest.raises(ShapeError):
        mdx_sdr(s, s[:, :10])


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalcorpus")
    for i in range(2):
        write_song(root / "test" / f"t{i}", seconds=1.0, seed=10 + i)  # museval is slow: keep songs short
    return root


def test_museval_is_really_called(tiny_corpus, tmp_path, monkeypatch):
    metrics = museval_metrics()
    calls = []
    original = metrics.bss_eval

    def spy(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics, "bss_eval", spy)
    summary = evaluate("mix4", mix4, tiny_corpus, tmp_path / "r", progress=False)
    assert calls == [(4, 44100, 2)] * 2
    assert summary["table"]["vocals"]["SDR_median"] is not None
    song = json.loads((tmp_path / "r" / "songs" / "t0.json").read_text())
    assert len(song["scores"]["bass"]["frames"]) == 1  # one BSS value per 1-s frame


def test_oracle_irm_beats_mixture_over_four(tiny_corpus, tmp_path):
    irm = evaluate("irm", ideal_ratio_mask, tiny_corpus, tmp_path / "irm", progress=False, bss=False)
    floor = evaluate("mix4", mix4, tiny_corpus, tmp_path / "mix4", progress=False, bss=False)
    assert irm["table"]["average"]["mdx_sdr_mean"] > floor["table"]["average"]["mdx_sdr_mean"] + 5


def test_report_and_resume_through_cli(tiny_corpus, tmp_path, capsys):
    model = tmp_path / "tiny.pt"
    save_model(model, "separator", random_separator(), {"trained_on": "test"})
    out = tmp_path / "rep"
    assert main(["evaluate", "--model", str(model), "--data", str(tiny_corpus), "-o", str(out), "--mono"]) == 0
    text = capsys.readouterr().out
    assert "average" in text and "report.html" in text
    page = (out / "report.html").read_text()
    assert "data:image/png;base64" in page and "MDX SDR" in page and "mono" in page
    assert {p.name for p in out.iterdir()} >= {"summary.json", "report.html", "mdx_sdr.png", "bss_sdr.png",
                                              "spectrograms.png", "songs"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["songs"] == 2 and summary["settings"]["mono"] is True
    before = (out / "songs" / "t0.json").stat().st_mtime_ns
    assert main(["evaluate", "--model", str(model), "--data", str(tiny_corpus), "-o", str(out), "--mono"]) == 0
    assert (out / "songs" / "t0.json").stat().st_mtime_ns == before  # reused, not recomputed


def test_unknown_baseline(tiny_corpus, capsys):
    assert main(["evaluate", "--baseline", "oracle", "--data", str(tiny_corpus)]) == 1
    assert "unknown baseline" in capsys.readouterr().err


def test_model_is_scored_through_separate_file(tiny_corpus, tmp_path, monkeypatch):
    from jukesep import Separator
    seen = []
    original = Separator.separate_file

    def spy(self, path, *args, **kwargs):
        seen.append(path.name)
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(Separator, "separate_file", spy)
    model = tmp_path / "tiny.pt"
    save_model(model, "separator", random_separator(), {"trained_on": "test"})
    assert main(["evaluate", "--model", str(model), "--data", str(tiny_corpus), "-o", str(tmp_path / "r"),
                 "--no-bss"]) == 0
    assert seen == ["mixture.wav", "mixture.wav"]


def test_bss_matches_museval_evaluate():
    try:
        import museval  # the package's own import needs a system ffmpeg (through stempeg)
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"museval cannot be imported here to compare with: {exc}")
    from jukesep.evaluate.metrics import bss_eval
    rng = np.random.default_rng(1)
    refs = {s: rng.standard_normal((2, 3 * 8000)) for s in ("a", "b")}
    ests = {s: r + 0.3 * rng.standard_normal(r.shape) for s, r in refs.items()}
    ours = bss_eval(refs, ests, 8000)
    sdr, _, _, _ = museval.evaluate(np.stack([refs[s].T for s in refs]), np.stack([ests[s].T for s in refs]),
                                    win=8000, hop=8000)
    assert ours["a"]["frames"] == [round(float(v), 3) for v in sdr[0]]


def test_unknown_split_lists_the_splits(tiny_corpus, capsys):
    assert main(["evaluate", "--baseline", "mix4", "--data", str(tiny_corpus), "--split", "nosuch"]) == 1
    assert "has test" in capsys.readouterr().err


def test_one_song_is_not_plural(tmp_path, capsys):
    write_song(tmp_path / "c" / "test" / "only", seconds=1.0)
    assert main(["evaluate", "--baseline", "mix4", "--data", str(tmp_path / "c"), "--no-bss",
                 "-o", str(tmp_path / "r")]) == 0
    assert "on 1 test song (stereo)" in capsys.readouterr().out
