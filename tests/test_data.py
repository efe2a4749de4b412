import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from jukesep.data import Augment, DataError, ExcerptDataset, find_tracks, validation_excerpts
from jukesep.defaults import STEMS
from tests.conftest import write_song

RATE = 44100


@pytest.fixture
def hq_root(tmp_path):
    for i in range(3):
        write_song(tmp_path / "train" / f"song{i}", seed=i)
    write_song(tmp_path / "valid" / "v0", silent=("vocals",), seed=9)
    return tmp_path


def test_find_tracks_hq_layout(hq_root):
    tracks = find_tracks(hq_root, "train")
    assert [t.name for t in tracks] == ["song0", "song1", "song2"]
    assert tracks[0].length == 2 * RATE and tracks[0].rate == RATE
    assert tracks[0].read("bass", 100, 50).shape == (2, 50)


def example_stem_mp4():
    """The MUSDB18 excerpt shipped in stempeg's package data (found without importing stempeg,
    which refuses to import without a system ffmpeg; jukesep reads it with PyAV)."""
    import importlib.util
    spec = importlib.util.find_spec("stempeg")
    found = sorted(Path(spec.origin).parent.glob("data/*.stem.mp4")) if spec and spec.origin else []
    if not found:
        pytest.skip("stempeg's example .stem.mp4 is not installed")
    return found[0]


def test_stem_mp4_layout(tmp_path):
    (tmp_path / "test").mkdir()
    shutil.copy(example_stem_mp4(), tmp_path / "test" / "clip.stem.mp4")
    (track,) = find_tracks(tmp_path, "test")
    assert track.name == "clip" and track.is_stem_mp4 and track.rate == RATE and track.length > 5 * RATE
    parts = {s: track.read(s, RATE, RATE) for s in ("mixture",) + STEMS}
    assert all(p.shape == (2, RATE) for p in parts.values())
    # the streams are really the stems: they add up to (nearly) the mixture
    residual = parts["mixture"] - sum(parts[s] for s in STEMS)
    assert np.sqrt(np.mean(residual ** 2)) < 0.2 * np.sqrt(np.mean(parts["mixture"] ** 2))
    item = ExcerptDataset([track], RATE // 2, "drums", with_mixture=True, items_per_epoch=2)[0]
    assert item["target"].shape == item["mixture"].shape == (1, RATE // 2)


def test_missing_stem_file_is_named(hq_root):
    (hq_root / "train/song1/bass.wav").unlink()
    with pytest.raises(DataError, match="song1/bass.wav: missing stem file"):
        find_tracks(hq_root, "train")


def test_mismatched_length_and_rate_are_named(hq_root):
    sf.write(hq_root / "train/song2/drums.wav", np.zeros((1000, 2)), RATE)
    with pytest.raises(DataError, match="song2/drums.wav: 1000 samples"):
        find_tracks(hq_root, "train")
    sf.write(hq_root / "train/song2/drums.wav", np.zeros((2 * RATE, 2)), 22050)
    with pytest.raises(DataError, match="song2/drums.wav: sample rate 22050"):
        find_tracks(hq_root, "train")


def test_missing_split(hq_root):
    with pytest.raises(DataError, match="no such split folder"):
        find_tracks(hq_root, "test")


@pytest.mark.parametrize("target,with_mixture", [("vocals", False), ("bass", True), (None, False)])
def test_excerpts_are_deterministic_mono_and_shaped(hq_root, target, with_mixture):
    tracks = find_tracks(hq_root, "train")
    ds = ExcerptDataset(tracks, 4096, target, with_mixture, items_per_epoch=8, seed=3)
    a, b = ds[5], ds[5]
    assert set(a) == ({"target", "mixture"} if with_mixture else {"target"})
    for key in a:
        assert a[key].shape == (1, 4096) and a[key].dtype == torch.float32
        assert torch.equal(a[key], b[key])
    # an item is a function of (seed, index) alone: what a resumed run relies on to see the same data
    again = ExcerptDataset(tracks, 4096, target, with_mixture, items_per_epoch=8, seed=3)
    assert torch.equal(again[5]["target"], a["target"])
    assert not torch.equal(ds[6]["target"], a["target"])
    other_seed = ExcerptDataset(tracks, 4096, target, with_mixture, items_per_epoch=8, seed=4)
    assert not torch.equal(other_seed[5]["target"], a["target"])


def test_without_augmentation_mixture_is_the_songs_mixture(hq_root):
    tracks = find_tracks(hq_root, "train")
    ds = ExcerptDataset(tracks, 4096, "drums", True, items_per_epoch=4, augment=None)
    item = ds[0]
    # mixture = sum of stems, so mixture − drums holds the other three: correlated but not equal
    assert not torch.allclose(item["mixture"], item["target"])


def test_remix_mixture_is_the_sum_of_its_stems(hq_root, monkeypatch):
    tracks = find_tracks(hq_root, "train")
    ds = ExcerptDataset(tracks, 4096, "vocals", True, items_per_epoch=4, augment=Augment(mono_blend=False))
    drawn = {}
    original = ds._read

    def spy(rng, source, song):
        drawn[source] = original(rng, source, song)
        return drawn[source]

    monkeypatch.setattr(ds, "_read", spy)
    item = ds[1]
    expected = sum(drawn[s] for s in STEMS).mean(axis=0)
    np.testing.assert_allclose(item["mixture"][0].numpy(), expected, atol=1e-6)


def test_silent_target_is_skipped_or_reported(hq_root):
    (valid,) = find_tracks(hq_root, "valid")
    with pytest.raises(DataError, match="silent vocals"):
        ExcerptDataset([valid], 4096, "vocals", items_per_epoch=1)[0]
    assert validation_excerpts([valid], 4096, 3, "vocals") == []
    assert len(validation_excerpts([valid], 4096, 3, "bass")) == 3


def test_validation_set_is_fixed(hq_root):
    tracks = find_tracks(hq_root, "train")
    a = validation_excerpts(tracks, 4096, 2, "drums")
    b = validation_excerpts(tracks, 4096, 2, "drums")
    assert len(a) == 6 and all(torch.equal(x["target"], y["target"]) for x, y in zip(a, b))
    assert all(torch.equal(x["mixture"], y["mixture"]) for x, y in zip(a, b))


def test_musdb_validation_songs_are_split_off_train(tmp_path):
    for name in ("Leaf - Summerghost", "Some Band - Some Song"):
        write_song(tmp_path / "train" / name, seconds=0.2)
    assert [t.name for t in find_tracks(tmp_path, "train")] == ["Some Band - Some Song"]
    assert [(t.name, t.split) for t in find_tracks(tmp_path, "valid")] == [("Leaf - Summerghost", "valid")]
    (tmp_path / "train" / "Leaf - Summerghost" / "bass.wav").rename(tmp_path / "x.wav")
    with pytest.raises(DataError, match="missing stem file"):
        find_tracks(tmp_path, "valid")


def test_no_validation_split_is_an_error(hq_root):
    import shutil as sh
    sh.rmtree(hq_root / "valid")
    with pytest.raises(DataError, match="make a valid/ split"):
        find_tracks(hq_root, "valid")


def test_stereo_excerpts_for_peer_models(hq_root):
    tracks = find_tracks(hq_root, "train")
    item = ExcerptDataset(tracks, 2048, "bass", True, items_per_epoch=2, augment=Augment(stereo=True))[0]
    assert item["target"].shape == item["mixture"].shape == (2, 2048)
