"""benchmarks/vqvae_ceiling.py: the stem VQ-VAEs' reconstruction of a split's clean stems, scored."""
import json
import subprocess
import sys

import numpy as np
import pytest

from jukesep.checkpoint import save_model
from jukesep.defaults import STEMS
from jukesep.models import VQVAE
from tests.conftest import BENCHMARKS, load_benchmark, music, tiny_config, write_corpus


@pytest.fixture(scope="module")
def ceiling():
    return load_benchmark("vqvae_ceiling")


def test_reconstruction_keeps_channels_and_length(ceiling):
    model = VQVAE(tiny_config()).eval()
    audio = music(0.1)[:, :4001]  # not a multiple of the hop
    out = ceiling.reconstruct(model, audio)
    assert out.shape == audio.shape and out.dtype == np.float32


def test_scores_every_stem_of_each_split(tmp_path):
    data = write_corpus(tmp_path / "data", {"test": 2, "heldout": 1}, seconds=0.5)
    for stem in STEMS:
        (tmp_path / "runs" / f"vqvae-{stem}").mkdir(parents=True)
        save_model(tmp_path / "runs" / f"vqvae-{stem}" / "best.pt", "vqvae", VQVAE(tiny_config()))
    out = tmp_path / "ceiling.json"
    result = subprocess.run([sys.executable, BENCHMARKS / "vqvae_ceiling.py", tmp_path / "runs", data, "--json", out],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    scores = json.loads(out.read_text())["mdx_sdr"]
    assert set(scores) == {"test", "heldout"}
    for split in scores.values():
        assert set(split) == {*STEMS, "average"}
        assert split["average"] == pytest.approx(np.mean([split[s] for s in STEMS]), abs=0.01)
