"""Refinement of the model's stems on the mixture's STFT (norbert)."""
import numpy as np
import pytest

from jukesep import Separator
from jukesep.cli import main
from jukesep.errors import JukesepError, ShapeError
from jukesep.refine import refine
from tests.conftest import music, random_separator

RATE = 44100


def rough_stems(mixture: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
    """Four poor guesses that do not add up to the mixture."""
    rng = np.random.default_rng(seed)
    return {name: (rng.uniform(0.1, 0.6) * mixture + 0.01 * rng.standard_normal(mixture.shape)).astype(np.float32)
            for name in ("vocals", "drums", "bass", "other")}


@pytest.mark.parametrize("mode", ["softmask", "wiener"])
def test_refined_stems_add_up_to_the_mixture(mode):
    mixture = music(2.0)
    stems = rough_stems(mixture)
    assert np.abs(sum(stems.values()) - mixture).max() > 0.1
    out = refine(mixture, stems, mode, RATE)
    assert list(out) == list(stems) and all(v.shape == mixture.shape and v.dtype == np.float32 for v in out.values())
    error = sum(out.values()) - mixture
    if mode == "softmask":
        np.testing.assert_allclose(error, 0, atol=1e-4)
    else:  # norbert regularises the mixture covariance: quiet bins come out slightly shrunk
        assert np.sqrt(np.mean(error ** 2) / np.mean(mixture ** 2)) < 0.1


def test_softmask_is_norberts():
    import norbert
    import torch
    mixture = music(2.0)
    stems = rough_stems(mixture)
    window = torch.hann_window(4096, dtype=torch.float64)
    def stft(x):  # [C x T] → norbert's [frames x bins x channels]
        return torch.stft(torch.from_numpy(x.astype(np.float64)), 4096, 1024, window=window,
                          return_complex=True).permute(2, 1, 0).numpy()
    power = np.stack([np.abs(stft(s)) ** 2 for s in stems.values()], -1)
    y = norbert.softmask(power, stft(mixture), eps=1e-10)
    expected = [torch.istft(torch.from_numpy(y[..., i].transpose(2, 1, 0).copy()), 4096, 1024, window=window,
                            length=mixture.shape[-1]).numpy() for i in range(len(stems))]
    out = refine(mixture, stems, "softmask", RATE)
    for got, want in zip(out.values(), expected):
        np.testing.assert_allclose(got, want, atol=2e-5)


def test_slices_give_the_whole_song_result(monkeypatch):
    mixture = music(3.0)
    stems = rough_stems(mixture)
    whole = refine(mixture, {k: v.copy() for k, v in stems.items()}, "softmask", RATE)
    monkeypatch.setattr("jukesep.refine.SLICE_SECONDS", 0.1)  # slices of 4 STFT frames: windows overlap
    sliced = refine(mixture, stems, "softmask", RATE)
    for name in stems:
        np.testing.assert_allclose(sliced[name], whole[name], atol=1e-6)


def test_a_source_the_estimates_give_no_power_gets_nothing():
    mixture = music(1.0)
    stems = {"vocals": mixture.copy(), "bass": np.zeros_like(mixture)}
    out = refine(mixture, stems, "softmask", RATE)
    np.testing.assert_allclose(out["vocals"], mixture, atol=1e-4)
    assert np.abs(out["bass"]).max() < 1e-4


def test_a_subset_of_stems_leaves_the_rest_to_a_residual():
    mixture = music(1.0)
    vocals = 0.3 * mixture
    out = refine(mixture, {"vocals": vocals}, "softmask", RATE, complete=False)
    assert list(out) == ["vocals"]
    # Without the residual the only source would take the whole mixture.
    assert np.abs(out["vocals"]).max() < 0.9 * np.abs(mixture).max()


def test_none_and_short_input_pass_through_and_shapes_are_checked():
    mixture = music(1.0)
    stems = rough_stems(mixture)
    assert refine(mixture, stems, "none", RATE) is stems
    short = mixture[:, :1000]
    assert refine(short, {"a": short * 0.5}, "wiener", RATE)["a"] is not None
    with pytest.raises(ShapeError):
        refine(mixture, {"a": mixture[:1]}, "softmask", RATE)
    with pytest.raises(JukesepError, match="refine must be one of"):
        refine(mixture, stems, "mwf", RATE)


def test_separator_refines_and_two_stems_still_add_up():
    sep = Separator(random_separator(), device="cpu", refine="softmask")
    audio = music(1.5)
    out = sep.separate(audio, RATE)
    np.testing.assert_allclose(sum(out.values()), audio, atol=1e-4)
    two = sep.separate(audio, RATE, two_stems="vocals")
    np.testing.assert_allclose(two["vocals"] + two["no_vocals"], audio, atol=1e-5)
    with pytest.raises(JukesepError, match="refine"):
        Separator(random_separator(), refine="bogus")


def test_cli_refine_flag(song, tiny_model_file, tmp_path, capsys):
    assert main(["separate", str(song), "-n", str(tiny_model_file), "-o", str(tmp_path / "o"),
                 "--refine", "wiener", "--float32"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["separate", str(song), "-n", str(tiny_model_file), "--refine", "mwf"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--refine" in err[0]
