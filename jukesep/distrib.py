"""The only place that talks to torch.distributed. Every function is a no-op on one process,
so model code can call them unconditionally (launch several processes with torchrun)."""
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` in place over all ranks and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite `tensor` in place with rank `src`'s copy and return it."""
    if is_distributed():
        dist.broadcast(tensor, src)
    return tensor


def init_from_env() -> bool:
    """Join the process group that torchrun describes in the environment (NCCL on GPU, gloo on
    CPU). Returns True when running distributed."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or is_distributed():
        return is_distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def close() -> None:
    if is_distributed():
        dist.destroy_process_group()


def check_same_on_all_ranks(tensor: torch.Tensor, what: str) -> None:
    """Raise if `tensor` differs between ranks (e.g. a codebook that silently diverged)."""
    if not is_distributed():
        return
    copies = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(copies, tensor.contiguous())
    if not all(torch.equal(copies[0], c) for c in copies[1:]):
        raise RuntimeError(f"{what} differs between ranks")
