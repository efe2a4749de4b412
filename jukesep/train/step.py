"""One optimisation step, shared by every trainer in jukesep: the main loop (`train.loop`), the
peer baselines (`evaluate.peers.train_peer`) and the speed benchmark (`benchmarks/train_speed.py`).

    optimizer, schedule = adam_with_warmup(model.parameters(), lr=3e-4, warmup=100)
    ema = ParamEMA(model, decay=0.999)
    for batch in batches:
        result = train_step(model, optimizer, lambda: task.loss(model, batch),
                            bf16=True, clip=1.0, schedule=schedule, ema=ema)
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

LossFn = Callable[[], "tuple[torch.Tensor, dict]"]  # () -> (scalar loss, {name: scalar term})


class StepResult(NamedTuple):
    loss: torch.Tensor  # scalar, detached
    grad_norm: torch.Tensor  # total gradient norm, before clipping
    logs: dict  # the loss function's named terms


class ParamEMA:
    """Exponential moving average of the trained parameters; frozen ones and buffers (the codebook)
    are taken live.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) over the n updates so far: with a fixed
    0.999, a 400-step run would save weights that are still two thirds its initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.params = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in model.named_parameters():
            if name in self.params:
                self.params[name].lerp_(p.detach(), 1.0 - decay)

    @torch.no_grad()
    def copy_to(self, model: nn.Module, target: nn.Module) -> nn.Module:
        """Load `model`'s state (buffers included) into `target`, with the averaged parameters."""
        target.load_state_dict(model.state_dict())
        for name, p in target.named_parameters():
            if name in self.params:
                p.copy_(self.params[name])
        return target


def adam_with_warmup(params, lr: float, warmup: int, decay: Callable[[], float] | None = None
                     ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam whose learning rate rises linearly to `lr` over the first `warmup` steps, then is
    multiplied by `decay()` (called at every schedule step; None: constant)."""
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * (decay() if decay is not None else 1.0))
    return optimizer, schedule


def cosine_decay(progress: float) -> float:
    """Learning-rate factor at `progress` (0 to 1, clamped) through the budget: half a cosine, 1 to 0."""
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, *, bf16: bool = False,
               clip: float | None = None, schedule=None, ema: ParamEMA | None = None) -> StepResult:
    """Forward (bfloat16 autocast when `bf16`), backward, clip, step, schedule, EMA.

    model: the module whose parameters are trained (not a DDP or compiled wrapper; `loss_fn` may
    call one). loss_fn: computes the loss of this step's batch. clip: max total grad norm (None or 0:
    measured, not clipped).
    """
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        loss, logs = loss_fn()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip or math.inf)
    optimizer.step()
    if schedule is not None:
        schedule.step()
    if ema is not None:
        ema.update(model)
    return StepResult(loss.detach(), grad_norm, logs)
