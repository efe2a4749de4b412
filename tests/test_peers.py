"""Open-Unmix and HT-Demucs baselines: trained briefly on a tiny corpus and scored by the harness."""
import importlib.util

import pytest
import torch

from jukesep.cli import main
from jukesep.errors import JukesepError
from jukesep.evaluate import evaluate, peers
from jukesep.evaluate.peers import load, train_peer
from jukesep.train.step import train_step
from tests.conftest import write_corpus

needs = {k: pytest.mark.skipif(importlib.util.find_spec(k) is None, reason=f"{k} not installed")
         for k in ("openunmix", "demucs")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("peers"), {"train": 2, "test": 1}, seconds=1.5)


@pytest.mark.parametrize("kind,config", [
    pytest.param("openunmix", {"hidden": 16, "n_fft": 1024, "hop": 256, "max_bin": 400}, marks=needs["openunmix"]),
    pytest.param("demucs", {"segment": 1.0, "channels": 8, "depth": 2, "t_layers": 1}, marks=needs["demucs"]),
])
def test_peer_trains_and_is_scored(corpus, tmp_path, kind, config, monkeypatch):
    steps = []

    def spy(model, optimizer, loss_fn, **options):  # the shared training step does the work
        before = [p.detach().clone() for p in model.parameters()]
        result = train_step(model, optimizer, loss_fn, **options)
        steps.append(any(not torch.equal(a, p) for a, p in zip(before, model.parameters())))
        return result

    monkeypatch.setattr(peers, "train_step", spy)
    result = train_peer(kind, corpus, tmp_path / f"{kind}.pt", steps=3, batch=2, excerpt=0.5, config=config,
                        progress=False)
    assert result["steps"] == 3 and all(loss == loss for loss in result["losses"])
    assert steps == [True] * 3  # three shared steps, each moved the weights
    summary = evaluate(kind, load(kind, tmp_path / f"{kind}.pt"), corpus, tmp_path / "rep", bss=False,
                       progress=False)
    assert summary["songs"] == 1 and summary["table"]["average"]["mdx_sdr_mean"] is not None


@needs["openunmix"]
def test_baselines_cli_and_wrong_file(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("JUKESEP_LOG_INTERVAL", "0")  # output is not a terminal: a line per step
    out = tmp_path / "umx.pt"
    size = '{"hidden": 8, "n_fft": 512, "hop": 128, "max_bin": 200}'
    assert main(["baselines", "train", "openunmix", "--data", str(corpus), "--out", str(out), "--steps", "2",
                 "--batch-size", "1", "--excerpt-seconds", "0.5", "--config", size]) == 0
    captured = capsys.readouterr()
    assert "train openunmix: 1/2 step (" in captured.err and "loss=" in captured.err
    assert "reached --steps 2" in captured.out
    # the old flag name still works (seconds; hidden, since `jukesep train --excerpt` counts samples)
    assert main(["baselines", "train", "openunmix", "--data", str(corpus), "--out", str(tmp_path / "old.pt"),
                 "--steps", "1", "--batch-size", "1", "--excerpt", "0.5", "--config", size]) == 0
    assert torch.load(tmp_path / "old.pt", weights_only=True)["metadata"]["excerpt_seconds"] == 0.5
    assert main(["evaluate", "--baseline", f"demucs:{out}", "--data", str(corpus), "--no-bss",
                 "-o", str(tmp_path / "r")]) == 1
    assert "not a demucs baseline" in capsys.readouterr().err


def test_baselines_help_names_the_excerpt_unit_and_bad_budgets_write_nothing(corpus, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["baselines", "train", "--help"])
    text = capsys.readouterr().out
    assert "--excerpt-seconds" in text and "--excerpt " not in text
    for bad, words in ((["--steps", "0"], "--steps"), (["--excerpt-seconds", "-1"], "--excerpt-seconds"),
                       (["--minutes", "nan"], "--minutes")):
        out = tmp_path / "sub" / "x.pt"
        assert main(["baselines", "train", "demucs", "--data", str(corpus), "--out", str(out), *bad]) == 1
        assert words in capsys.readouterr().err and not (tmp_path / "sub").exists()


@needs["openunmix"]
def test_a_resumed_peer_run_ends_where_an_uninterrupted_one_does(corpus, tmp_path):
    size = {"hidden": 8, "n_fft": 512, "hop": 128, "max_bin": 200}
    common = dict(batch=1, excerpt=0.5, config=size, progress=False)
    straight = train_peer("openunmix", corpus, tmp_path / "a.pt", steps=4, **common)
    train_peer("openunmix", corpus, tmp_path / "b.pt", steps=2, **common)
    resumed = train_peer("openunmix", corpus, tmp_path / "b.pt", steps=4, resume=True, **common)
    assert resumed["steps"] == 4 and resumed["losses"] == straight["losses"][2:]
    a, b = (torch.load(tmp_path / f"{n}.pt", weights_only=True)["state"] for n in "ab")
    assert all(torch.equal(a[t][k], b[t][k]) for t in a for k in a[t])
    with pytest.raises(JukesepError, match="lr 0.5 \\(the run has 0.001\\)"):
        train_peer("openunmix", corpus, tmp_path / "b.pt", steps=6, resume=True, lr=0.5, **common)
    with pytest.raises(JukesepError, match="holds no training state"):
        train_peer("openunmix", corpus, tmp_path / "c.pt", steps=6, resume=True, **common)
