"""The model shipped in the package: it loads offline, says where it came from, and separates the
example song (rendered from material outside the training corpus) better than mixture/4."""
from pathlib import Path

import numpy as np
import pytest

from jukesep.api import DEFAULT_MODEL, PRETRAINED_DIR, Separator
from jukesep.audio import read_audio
from jukesep.checkpoint import load_model
from jukesep.defaults import STEMS
from jukesep.evaluate.metrics import mdx_sdr
from tests.test_cli import outputs, run_cli

ROOT = Path(__file__).parents[1]
SONG = ROOT / "examples" / "song.flac"
REFERENCES = Path(__file__).parent / "data" / "example_stems"


@pytest.fixture(scope="module")
def example():
    mixture, rate = read_audio(SONG)
    references = {s: read_audio(REFERENCES / f"{s}.flac")[0] for s in STEMS}
    return mixture, rate, references


def test_shipped_file_is_small_and_carries_its_provenance():
    path = PRETRAINED_DIR / f"{DEFAULT_MODEL}.pt"
    assert path.stat().st_size < 16 * 2**20
    model, data = load_model(path, expect_kind="separator")
    assert model.stem_names == list(STEMS)
    meta = data["metadata"]
    for key in ("data", "recipe", "training", "scores", "demo"):
        assert meta[key], key
    assert {"test", "heldout"} <= set(meta["scores"])
    for run in ["foundation", "shared"] + [f"vqvae-{stem}" for stem in STEMS]:
        assert meta["training"][run]["steps"] > 0, run


def test_references_add_up_to_the_example_song(example):
    mixture, _, references = example
    assert np.abs(sum(references.values()) - mixture).max() < 1e-3


def test_default_model_beats_mixture_over_four(example):
    mixture, rate, references = example
    stems = Separator.from_pretrained().separate(mixture, rate)
    model = {s: mdx_sdr(references[s], stems[s]) for s in STEMS}
    floor = {s: mdx_sdr(references[s], mixture / 4) for s in STEMS}
    assert np.mean(list(model.values())) > np.mean(list(floor.values())) + 0.5, (model, floor)


def test_readme_main_command_uses_the_shipped_model(tmp_path):
    result = run_cli("separate", SONG, "-o", tmp_path)
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path) == [f"default/song/{s}.wav" for s in sorted(STEMS)]
    info = run_cli("info", "default")
    assert info.returncode == 0 and "scores:" in info.stdout and "recipe:" in info.stdout, info.stdout + info.stderr
