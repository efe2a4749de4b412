"""The learned mask (beyond the paper): a correction of the soft mask, trained on a frozen separator."""
import json

import numpy as np
import pytest
import torch

from jukesep import Separator
from jukesep.checkpoint import load_model, save_model
from jukesep.cli import main
from jukesep.data.tracks import find_tracks
from jukesep.errors import CheckpointError, JukesepError
from jukesep.models.config import MaskConfig
from jukesep.refine import refine
from jukesep.train import train
from jukesep.train.mask_data import EstimateExcerpts
from jukesep.train.tasks import MaskTask
from tests.conftest import music, random_separator, with_random_mask
from tests.test_train import corpus, tiny  # noqa: F401 (a fixture)

RATE = 44100


@pytest.mark.parametrize("reach", [0, 2])
def test_an_untrained_mask_is_the_soft_mask(reach):
    model = random_separator()
    audio = music(2.0)
    soft = Separator(model, refine="softmask").separate(audio, RATE)
    untrained = model.with_mask(MaskConfig(hidden=8, bins=64, layers=1, reach=reach))
    learned = Separator(untrained, refine="learned").separate(audio, RATE)
    for stem in soft:
        np.testing.assert_allclose(learned[stem], soft[stem], atol=1e-4)


@pytest.mark.parametrize("reach", [0, 2])
def test_a_trained_mask_changes_the_stems_which_still_add_up_and_subsets_agree(reach):
    model = with_random_mask(random_separator(), reach=reach)
    audio = music(2.0)
    sep = Separator(model)  # auto: the model's own mask
    assert sep.refine == "learned"
    out = sep.separate(audio, RATE)
    soft = Separator(model, refine="softmask").separate(audio, RATE)
    assert max(np.abs(out[s] - soft[s]).max() for s in out) > 1e-3
    np.testing.assert_allclose(sum(out.values()), audio, atol=1e-4)
    some = sep.separate(audio, RATE, stems=["bass", "vocals"])  # the mask still sees all four stems
    for stem in some:
        np.testing.assert_allclose(some[stem], out[stem], atol=1e-6)
    two = sep.separate(audio, RATE, two_stems="drums")
    np.testing.assert_allclose(two["drums"], out["drums"], atol=1e-6)


def test_learned_needs_a_mask_and_auto_falls_back_to_the_soft_mask():
    model = random_separator()
    assert Separator(model).refine == "softmask"
    with pytest.raises(JukesepError, match="learned mask"):
        Separator(model, refine="learned")
    with pytest.raises(JukesepError, match="learned"):
        refine(music(1.0), {"a": music(1.0)}, "learned", RATE)


@pytest.mark.parametrize("reach", [0, 2])
def test_checkpoint_keeps_the_mask_and_a_hostile_mask_config_is_refused(tmp_path, reach):
    model = with_random_mask(random_separator(), reach=reach)
    save_model(tmp_path / "m.pt", "separator", model, {})
    loaded, data = load_model(tmp_path / "m.pt", expect_kind="separator")
    assert data["config"]["mask"] == {"hidden": 8, "bins": 64, "layers": 1, "reach": reach}
    audio = music(1.0)
    np.testing.assert_array_equal(Separator(loaded).separate(audio, RATE)["bass"],
                                  Separator(model).separate(audio, RATE)["bass"])
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["config"]["mask"] = {"hidden": 4096, "bins": 2049, "layers": 16}  # ~300 M weights of a small file
    torch.save(data, tmp_path / "big.pt")
    with pytest.raises(CheckpointError, match="the file holds"):
        load_model(tmp_path / "big.pt")


def test_mask_stage_trains_only_the_mask_and_writes_a_separator_with_it(corpus, tmp_path):  # noqa: F811
    base = random_separator()
    save_model(tmp_path / "base.pt", "separator", base, {})
    cfg = tiny(corpus, tmp_path / "run", stage="mask", stem="", init=f"separator:{tmp_path / 'base.pt'}",
               steps=6, val_every=3, ckpt_every=3, excerpt=8192, mask_hidden=8, mask_bins=64, mask_layers=1, lr=1e-2)
    result = train(cfg)
    assert sorted(p.name for p in (tmp_path / "run" / "stems").iterdir()) == ["t0.npy", "t1.npy", "t2.npy"]
    assert json.loads((tmp_path / "run" / "stems.json").read_text())["songs"] == 3
    model, data = load_model(result["best"], expect_kind="separator")
    assert data["metadata"]["stage"] == "mask" and model.mask_config == MaskConfig(hidden=8, bins=64, layers=1)
    assert model.mask_config.reach == 0
    assert model.mask.out.weight.abs().max() > 0  # it learned (it starts at zero)
    for name, tensor in base.state_dict().items():  # the separator itself is frozen
        assert torch.equal(model.state_dict()[name], tensor), name
    assert Separator(model).refine == "learned"
    cached = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "stems").iterdir()}
    # resumed, it continues from its own mask and its cached stems
    more = train(tiny(corpus, tmp_path / "run", stage="mask", stem="", init=f"separator:{tmp_path / 'base.pt'}",
                      steps=9, val_every=3, ckpt_every=3, excerpt=8192, mask_hidden=8, mask_bins=64, mask_layers=1,
                      lr=1e-2), resume=True)
    assert more["steps"] == 9
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "stems").iterdir()} == cached
    # another separator's run may not reuse those stems
    save_model(tmp_path / "other.pt", "separator", random_separator(seed=1), {})
    (tmp_path / "run" / "train_state.pt").unlink()
    with pytest.raises(JukesepError, match="another separator"):
        train(tiny(corpus, tmp_path / "run", stage="mask", stem="", init=f"separator:{tmp_path / 'other.pt'}",
                   steps=3, excerpt=8192, mask_hidden=8, mask_bins=64, mask_layers=1))


def test_mask_stage_flags_are_checked_in_one_line(corpus, tmp_path, tiny_model_file, capsys):  # noqa: F811
    for extra, words in ((["--init", "scratch"], "needs --init separator"),
                         (["--init", f"separator:{tiny_model_file}", "--mask-bins", "4000"], "--mask-bins must be"),
                         (["--init", f"separator:{tiny_model_file}", "--mask-eq", "30"], "--mask-eq must be"),
                         (["--init", f"separator:{tiny_model_file}", "--stem", "bass"], "takes no --stem"),
                         (["--init", f"separator:{tiny_model_file}", "--head-width", "8"], "takes no --head-width")):
        assert main(["train", "mask", "--data", str(corpus), "--out", str(tmp_path / "r"), *extra]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    # the mask's flags are an error, not silently ignored, where no mask is trained
    for command in (["vqvae", "--stem", "bass"], ["shared"], ["all"]):
        assert main(["train", *command, "--data", str(corpus), "--out", str(tmp_path / "r"), "--mask-eq", "6"]) != 0
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "takes no --mask-eq" in err[0], err


def test_info_shows_the_mask(tmp_path, capsys):
    save_model(tmp_path / "m.pt", "separator", with_random_mask(random_separator()), {})
    assert main(["info", str(tmp_path / "m.pt")]) == 0
    out = capsys.readouterr().out
    assert "mask:     learned" in out and "config learned mask: hidden=8, bins=64, layers=1, reach=0" in out


def test_mask_eq_draws_a_timbre_per_stem_that_the_loss_gives_stem_estimate_and_mixture(corpus, tmp_path):  # noqa: F811
    save_model(tmp_path / "base.pt", "separator", random_separator(), {})
    cfg = tiny(corpus, tmp_path / "run", stage="mask", stem="", init=f"separator:{tmp_path / 'base.pt'}",
               excerpt=8192, mask_hidden=8, mask_bins=64, mask_layers=1)
    task = MaskTask(cfg)
    tracks, stems = find_tracks(corpus, "train"), list(task.model.stems)
    plain = EstimateExcerpts(tracks, 8192, tmp_path / "stems", stems, seed=3)
    plain.fill(Separator(task.model, refine="none"), tmp_path / "base.pt")
    eq = EstimateExcerpts(tracks, 8192, tmp_path / "stems", stems, seed=3, eq_db=12.0)
    a, b = plain[0], eq[0]
    assert set(b) - set(a) == {"eq"} and all(torch.equal(a[k], b[k]) for k in a)  # the same excerpt
    db = 20 * b["eq"].log10()
    assert db.shape == (4, 2049) and db.abs().max() <= 12.0 + 1e-4 and db.std(1).min() > 0.5
    assert torch.all(db[:, :3] == db[:, :1])  # flat below its lowest anchor, 40 Hz (bin 4)

    batch = {k: torch.stack([v, eq[1][k]]) for k, v in b.items()}
    plain_batch = {k: v for k, v in batch.items() if k != "eq"}
    with torch.no_grad():
        loss = task.loss(task.model.mask, plain_batch)[0]
        assert task.loss(task.model.mask, {**batch, "eq": torch.ones_like(batch["eq"])})[0] == loss
        # the untrained mask (the soft mask) and the loss (relative to the stems' level) do not see a
        # flat EQ, a gain, when it reaches the mixture as it reaches the stems
        assert torch.isclose(task.loss(task.model.mask, {**batch, "eq": torch.full_like(batch["eq"], 2.0)})[0], loss)
        assert not torch.isclose(task.loss(task.model.mask, batch)[0], loss, rtol=1e-3)
