"""The EMA codebook under torch.distributed (gloo, 2 processes): every rank must hold the same codebook."""
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jukesep.models.bottleneck import BottleneckBlock
from tests.conftest import tiny_config


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.manual_seed(rank)  # ranks draw different random numbers; revival must still agree
        block = BottleneckBlock(tiny_config()).train()
        data = torch.Generator().manual_seed(100 + rank)
        for _ in range(3):
            block(torch.randn(2, 8, 64, generator=data) + rank)
        torch.save({"k": block.k, "k_elem": block.k_elem}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_codebook_is_identical_across_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    assert a["k"].abs().sum() > 0
    assert torch.equal(a["k"], b["k"]) and torch.equal(a["k_elem"], b["k_elem"])
    # statistics were summed: each step counts both ranks' 128 rows
    single = BottleneckBlock(tiny_config()).train()
    single(torch.randn(2, 8, 64))
    assert a["k_elem"].sum() > single.k_elem.sum() + 0.01 * 128 * 0.5
