"""`SeparatorModel.forward`: `Tensor[B x C x T]` mixture → `Tensor[B x S x C x T]` stems, in eager,
fast, compiled and exported forms."""
import numpy as np
import pytest
import torch

from jukesep.errors import JukesepError, ShapeError
from tests.conftest import music, random_separator, tiny_config

STEMS = ("vocals", "drums", "bass")


@pytest.fixture(scope="module")
def model():
    return random_separator(STEMS, tiny_config(depth=2))


@pytest.fixture(scope="module")
def mixture():
    return torch.from_numpy(np.stack([music(0.1, seed=0), music(0.1, seed=1)]))[..., :4096]  # [2 x 2 x 4096]


def test_forward_maps_batch_channels_time_to_stems(model, mixture):
    with torch.inference_mode():
        out = model(mixture)
        assert out.shape == (2, len(STEMS), 2, 4096)
        # channels are independent mono signals through each stem's own model
        for s, name in enumerate(STEMS):
            mono = model.stems[name](mixture[1, 0].reshape(1, 1, -1))
            torch.testing.assert_close(out[1, s, 0], mono[0, 0])


def test_select_keeps_order_and_shares_weights(model, mixture):
    picked = model.select(["bass", "vocals"])
    assert picked.stem_names == ["bass", "vocals"] and picked.stems["bass"] is model.stems["bass"]
    with torch.inference_mode():
        torch.testing.assert_close(picked(mixture), model(mixture)[:, [2, 0]])
    with pytest.raises(JukesepError, match="not in this model"):
        model.select(["guitar"])


def test_fast_form_gives_the_same_stems(model, mixture):
    with torch.inference_mode():
        torch.testing.assert_close(model.fast()(mixture), model(mixture), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", [(2, 4096), (1, 2, 4095), (1, 2, 1, 4096)])
def test_bad_shapes_raise_typed_errors(model, shape):
    with pytest.raises(ShapeError):
        model(torch.zeros(shape))


def test_compiles_without_graph_breaks(model, mixture):
    fast = model.fast()
    compiled = torch.compile(fast, fullgraph=True, backend="aot_eager")
    with torch.inference_mode():
        torch.testing.assert_close(compiled(mixture), fast(mixture), atol=1e-5, rtol=1e-4)


def test_exports_for_a_fixed_chunk_shape(model, mixture):
    # Static shapes: the separator feeds fixed-size chunks. (The code search's row blocking, which
    # bounds its [rows x codebook] distance matrix, specialises on the number of rows.)
    fast = model.fast()
    exported = torch.export.export(fast, (mixture,))
    other = torch.flip(mixture, dims=[-1]).contiguous()
    with torch.inference_mode():
        torch.testing.assert_close(exported.module()(other), fast(other), atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_compiles_with_inductor(model, mixture):
    fast = model.fast()
    compiled = torch.compile(fast, fullgraph=True)
    with torch.inference_mode():
        torch.testing.assert_close(compiled(mixture), fast(mixture), atol=1e-4, rtol=1e-3)
