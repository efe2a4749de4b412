"""The fast inference form's fusions give the plain modules' output (jukesep/models/fast.py)."""
import pytest
import torch
from torch import nn

from jukesep.models.fast import FusedResBlock, FusedUpsampleOut, _as_2d, convs_to_2d
from jukesep.models.vqvae import ResConv1DBlock


def _cl(x: torch.Tensor) -> torch.Tensor:
    """`Tensor[B x C x T]` → the fast form's `Tensor[B x C x 1 x T]`, channels-last."""
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(
    "stride,frames,out_channels", [(2, 37, 1), (3, 5, 2), (4, 2, 1), (2, 1, 1), (4, 9, 3), (2, 6, 2)]
)
def test_merged_upsampling_and_output_conv_equal_the_pair_to_the_last_sample(stride, frames, out_channels):
    torch.manual_seed(stride)
    up = nn.ConvTranspose1d(8, 12, 2 * stride, stride, stride // 2)
    out = nn.Conv1d(12, out_channels, 3, 1, 1)
    x = torch.randn(2, 8, frames)
    fused = FusedUpsampleOut(_as_2d(up), _as_2d(out))
    assert fused.phased == (stride % 2 == 0)  # a plain conv per phase where the output is stride x the input
    with torch.inference_mode():
        expected = out(up(x))
        got = fused(_cl(x)).squeeze(2)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # the two ends are where the merged kernel needs its correction
    torch.testing.assert_close(got[..., [0, -1]], expected[..., [0, -1]], atol=1e-5, rtol=1e-5)


def test_a_stride_without_padding_is_not_merged():
    assert not FusedUpsampleOut.fits(_as_2d(nn.ConvTranspose1d(8, 8, 2, 1, 0)), _as_2d(nn.Conv1d(8, 1, 3, 1, 1)))
    assert not FusedUpsampleOut.fits(_as_2d(nn.ConvTranspose1d(8, 8, 4, 2, 1)), _as_2d(nn.Conv1d(8, 1, 5, 1, 2)))


@pytest.mark.parametrize("grad,fused_ops", [(False, True), (True, True), (False, False)])
def test_fused_residual_chain_equals_the_plain_one_and_keeps_its_input(grad, fused_ops, monkeypatch):
    monkeypatch.setattr("jukesep.models.fast._FUSED_OPS", fused_ops)  # False: a torch without oneDNN's ops
    torch.manual_seed(0)
    chain = nn.Sequential(nn.Conv1d(4, 8, 3, 1, 1), *(ResConv1DBlock(8, 8, d, 1.0) for d in (1, 3, 9)))
    fast = convs_to_2d(chain)
    assert [type(m).__name__ for m in fast] == ["Conv2d"] + ["FusedResBlock"] * 3
    assert [m.overwrite for m in fast[1:]] == [False, True, True]  # the chain's own temporaries only
    x = torch.randn(2, 4, 50)
    with torch.set_grad_enabled(grad):  # with autograd on, the plain ops run instead of oneDNN's
        expected = chain(x)
        h = fast[0](_cl(x))
        kept = h.clone()
        got = fast[1:](h).squeeze(2)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(h, kept, atol=0, rtol=0)


def test_a_scaled_residual_block_stays_plain():
    fast = convs_to_2d(nn.Sequential(ResConv1DBlock(8, 8, 1, 0.5)))
    assert isinstance(fast[0], ResConv1DBlock) and not isinstance(fast[0], FusedResBlock)
