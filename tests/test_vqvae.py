from pathlib import Path

import pytest
import torch

from jukesep.errors import ShapeError
from jukesep.models import VQVAE, VQVAEConfig
from jukesep.models.bottleneck import BottleneckBlock, _first_min
from tests.conftest import tiny_config

TSV = Path(__file__).parent / "data" / "level0_keys.tsv"


def test_default_config_matches_official_level0_layout():
    expected = {}
    for line in TSV.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape, _ = line.split("\t")
            expected[key] = shape
    state = VQVAE(VQVAEConfig()).state_dict()
    assert {k: str(tuple(v.shape)) for k, v in state.items()} == expected
    model = VQVAE(VQVAEConfig())
    assert sum(p.numel() for p in model.encoders.parameters()) == 441856
    assert sum(p.numel() for p in model.decoders.parameters()) == 458177


@pytest.mark.parametrize("cfg", [tiny_config(), tiny_config(depth=2, stride_t=4, down_t=2),
                                 tiny_config(m_conv=2.0, res_scale=True, dilation_cycle=2, depth=3)])
def test_shapes(cfg):
    model = VQVAE(cfg)
    x = torch.randn(3, 1, cfg.hop_length * 50)
    out = model.train()(x)
    assert out.audio.shape == x.shape
    assert out.codes.shape == (3, 50) and out.codes.dtype == torch.long
    assert out.commit_loss.dim() == 0 and "perplexity" in out.metrics
    with pytest.raises(ShapeError, match="not a multiple of the hop"):
        model.encoder(torch.randn(1, 1, cfg.hop_length * 5 + 1))


def test_codes_embeddings_round_trip():
    block = BottleneckBlock(tiny_config())
    block.k.normal_()
    codes = torch.randint(0, 32, (4, 100))
    assert torch.equal(block.quantize(block.dequantize(codes)), codes)


def test_nearest_code_is_the_true_nearest():
    block = BottleneckBlock(tiny_config())
    block.k.normal_()
    z = torch.randn(2, 8, 40)
    codes = block.quantize(z)
    dists = torch.cdist(z.permute(0, 2, 1).reshape(-1, 8), block.k)
    assert torch.equal(codes.flatten(), dists.argmin(-1))


def test_nearest_code_of_equal_codes_is_the_first():
    # duplicate codes (a revived or imported codebook can hold them): the lowest index wins, as argmin
    block = BottleneckBlock(tiny_config())
    block.k.normal_()
    block.k[7] = block.k[3]
    block.k[20] = block.k[3]
    z = block.k[3].view(1, -1, 1).repeat(1, 1, 5)
    assert block.quantize(z).tolist() == [[3] * 5]


def test_grouped_search_finds_the_first_minimum_among_many_ties():
    # distances of small integers tie often, within and across the search's groups of codes
    d = torch.randint(0, 4, (500, 256)).float()
    assert torch.equal(_first_min(d), d.argmin(-1))
    d[:, 100] = -1.0
    d[::3, 37] = -1.0
    assert torch.equal(_first_min(d), d.argmin(-1))


def test_zero_codebook_is_initialised_from_data():
    block = BottleneckBlock(tiny_config()).train()
    assert block.k.abs().sum() == 0
    z = torch.randn(2, 8, 64) + 3.0
    block(z)
    assert block.k.abs().sum() > 0
    assert bool(block.initialized)
    # every code is a data row (or a jittered copy): their mean is near the data's mean
    assert torch.allclose(block.k.mean(), torch.tensor(3.0), atol=0.3)


def test_loaded_codebook_is_kept_and_ema_moves_it():
    block = BottleneckBlock(tiny_config()).train()
    block.k.normal_()
    before = block.k.clone()
    z = torch.randn(4, 8, 256)
    metrics = block(z).metrics
    assert not torch.equal(block.k, before)
    assert metrics["codebook_change"] > 0
    # EMA with decay 0.99: used codes move 1% of the way towards the batch mean of their rows
    assert (block.k - before).norm() < before.norm()


def test_dead_codes_are_revived_from_data():
    cfg = tiny_config(revival_threshold=1.0)
    block = BottleneckBlock(cfg).train()
    block.k.normal_()
    block.k[0] = 100.0  # far from any data: never chosen
    for _ in range(3):
        block(torch.randn(2, 8, 64))
    assert block.k[0].abs().max() < 10  # replaced by a data row


def test_eval_mode_does_not_touch_codebook():
    block = BottleneckBlock(tiny_config()).eval()
    block.k.normal_()
    before = block.k.clone()
    block(torch.randn(2, 8, 64))
    assert torch.equal(block.k, before)


def test_ema_state_round_trip():
    a = BottleneckBlock(tiny_config()).train()
    a(torch.randn(2, 8, 64))
    b = BottleneckBlock(tiny_config()).train()
    b.load_state_dict(a.state_dict())
    b.load_ema_state(a.ema_state())
    z = torch.randn(2, 8, 64)
    torch.manual_seed(1)
    a(z)
    torch.manual_seed(1)
    b(z)
    assert torch.equal(a.k, b.k)


@pytest.mark.parametrize("cfg", [tiny_config(depth=3), tiny_config(depth=2, stride_t=4, down_t=2)])
def test_context_bounds_the_receptive_field(cfg):
    model = VQVAE(cfg).double()
    ctx = cfg.context_samples()
    length = (2 * ctx // cfg.hop_length + 20) * cfg.hop_length
    x = torch.randn(1, 1, length, dtype=torch.double, requires_grad=True)
    out = model.decoder(model.encoder(x))  # the continuous path has the same receptive field
    t0 = length // 2
    out[0, 0, t0].backward()
    touched = x.grad[0, 0].nonzero().flatten()
    assert touched.min() >= t0 - ctx and touched.max() <= t0 + ctx
    assert touched.max() - touched.min() > ctx  # the bound is not wildly loose
