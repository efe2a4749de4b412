"""The training loop, shared by all stages. Single process, or DDP under torchrun."""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from .. import distrib
from ..api import resolve_device
from ..atomic import atomic_torch_save, atomic_write_text
from ..checkpoint import save_model
from ..data import Augment, DataError, ExcerptDataset, find_tracks, validation_excerpts
from ..data.datasets import ALL
from ..defaults import STEMS
from ..errors import JukesepError
from ..hardware import require_native_bf16
from ..progress import Progress
from .budget import INTERRUPTED, Budget, how_to_continue
from .config import TrainConfig
from .mask_data import EstimateExcerpts
from .step import ParamEMA, StepResult, adam_with_warmup, cosine_decay, train_step
from .tasks import build_task, validate

STATE_FILE = "train_state.pt"
HISTORY_FILE = "val_history.json"


class StepBatches(torch.utils.data.Sampler):
    """Batches of global item indices, step after step, from `start_step` on. An item is a pure
    function of its index, so a resumed run sees exactly the data it would have seen."""

    def __init__(self, batch_size: int, start_step: int, rank: int, world: int):
        self.batch_size, self.start_step, self.rank, self.world = batch_size, start_step, rank, world

    def __iter__(self):
        step = self.start_step
        while True:
            first = (step * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            step += 1


def training_device(cfg: TrainConfig) -> torch.device:
    if distrib.is_distributed() and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return resolve_device(cfg.device)


def train(cfg: TrainConfig, resume: bool = False) -> dict:
    """Run (or continue) one training run; returns {"best": path, "last": path, "val_sdr": ...}."""
    distrib.init_from_env()  # the process group stays up for further stages; the CLI closes it
    return _train(cfg, resume)


def _train(cfg: TrainConfig, resume: bool) -> dict:
    run, main = Path(cfg.out), distrib.rank() == 0
    state_path = run / STATE_FILE
    check_run_folder(run, resume)
    device = training_device(cfg)
    check_bf16(cfg, device)
    torch.manual_seed(cfg.seed)
    # Everything that can be wrong (init and stage-1 files, the excerpt, the data) fails here,
    # before the run folder is written.
    task = build_task(cfg)
    cfg = dataclasses.replace(cfg, model=task.arch)  # config.json records the architecture trained
    dataset, val_items = training_data(cfg)
    model = task.model.to(device).train()
    for frozen in task.frozen:
        frozen.to(device).eval()
    ema = ParamEMA(model, cfg.param_ema)
    step, best = 0, -math.inf
    budget: Budget | None = None  # made just before the first step, so set-up time is not training time
    previous_minutes = last_history_minutes(run) if resume else 0.0

    def decay() -> float:  # called by the schedule after each step: the factor for the steps to come
        if cfg.lr_decay == "none" or budget is None:
            return 1.0
        return cosine_decay(budget.progress(step + 1, previous_minutes))

    optimizer, schedule = adam_with_warmup(model.parameters(), cfg.lr, cfg.warmup, decay)
    if resume:
        step, best = load_state(state_path, model, ema, optimizer, schedule, device)
    elif main:
        run.mkdir(parents=True, exist_ok=True)
        cfg.save(run / "config.json")

    bandwidth = task.calibrate(dataset)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatches(cfg.batch_size, step, distrib.rank(), distrib.world_size()),
        num_workers=cfg.workers, pin_memory=device.type == "cuda")
    net = wrap(task.training_module(model), cfg, device)
    writer = None
    if main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(str(run / "tb"))
        if bandwidth is not None:
            writer.add_text("loss/bandwidth", f"l2 {bandwidth.l2:.3g}, spec {bandwidth.spec:.3g}", step)
    eval_model = copy.deepcopy(model).eval()
    budget = Budget(cfg.steps, cfg.minutes, step)
    bar = Progress(cfg.steps, f"{cfg.stage} {cfg.stem}".strip(), unit="step", initial=step, enabled=main)
    shown, result, losses = {}, {"val_sdr": None}, []  # shown: the values after the bar

    def elapsed() -> float:  # training wall time in minutes, across resumes
        return previous_minutes + budget.elapsed() / 60

    def show(**values) -> None:
        shown.update(values)
        bar.set_postfix(**shown)

    def checkpoint(final: bool = False) -> None:
        nonlocal best
        if hasattr(model, "quantizer"):
            distrib.check_same_on_all_ranks(model.quantizer.k, "the codebook")
        if not main:
            return
        ema.copy_to(model, eval_model)
        metrics = validate(task, eval_model, val_items, device)
        log_validation(writer, metrics, step, task.arch.sample_rate)
        result["val_sdr"] = metrics["sdr"]
        append_history(run, step, metrics["sdr"], elapsed())
        meta = {"stage": cfg.stage, "stem": cfg.stem or None, "init": cfg.init, "data": str(cfg.data),
                "steps": step, "val_sdr": metrics["sdr"], "batch": f"{cfg.batch_size} x {cfg.excerpt}",
                "device": str(device), "train_minutes": round(elapsed(), 2)}
        if metrics["sdr"] > best or not (run / "best.pt").exists():
            best = max(best, metrics["sdr"])
            save_model(run / "best.pt", task.kind, eval_model, meta)
        if final:
            save_model(run / "last.pt", task.kind, eval_model, meta)
        save_state(state_path, step, best, model, ema, optimizer, schedule)
        show(val_sdr=f"{metrics['sdr']:.2f}")

    stopped = None
    try:
        for batch in loader:
            stopped = budget.stop_reason(step)
            if stopped:
                break
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            out = train_step(model, optimizer, lambda: task.loss(net, batch), bf16=cfg.bf16, clip=cfg.clip,
                             schedule=schedule, ema=ema)
            step += 1
            losses.append(out.loss.item())
            if writer is not None and step % cfg.log_every == 0:
                log_step(writer, step, out, schedule.get_last_lr()[0])
                show(loss=f"{losses[-1]:.4g}")
            bar.set(step, budget.expected_steps(step))
            if step % cfg.val_every == 0 or step % cfg.ckpt_every == 0:
                checkpoint()
            distrib.barrier()
    except KeyboardInterrupt:
        if main:
            save_state(state_path, step, best, model, ema, optimizer, schedule)
            bar.close()
            print(stop_line(cfg, budget, INTERRUPTED, step), file=sys.stderr, flush=True)
        raise
    checkpoint(final=True)
    distrib.barrier()
    bar.close()
    if writer is not None:
        writer.close()
    if main and distrib.is_distributed() and hasattr(model, "quantizer"):
        print(f"codebook identical on all {distrib.world_size()} ranks")
    return {"best": run / "best.pt", "last": run / "last.pt", "steps": step, "val_sdr": result["val_sdr"],
            "best_sdr": best, "losses": losses, "stopped": stop_line(cfg, budget, stopped, step)}


def check_run_folder(run: Path, resume: bool) -> None:
    state_path = run / STATE_FILE
    if state_path.exists() and not resume:
        raise JukesepError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not state_path.exists():
        raise JukesepError(f"{run} holds no run to resume ({STATE_FILE} not found)")


def check_bf16(cfg: TrainConfig, device: torch.device) -> None:
    """--bf16 only where bfloat16 is native; a run started with it elsewhere continues with --no-bf16."""
    if cfg.bf16:
        started = (Path(cfg.out) / STATE_FILE).exists()
        require_native_bf16(device, "--bf16", f"jukesep train {cfg.stage} --resume --out {cfg.out} --no-bf16"
                            if started else "leave --bf16 out")


def stop_line(cfg: TrainConfig, budget: Budget, reason: str, step: int) -> str:
    """Which limit stopped the run and the command that continues it."""
    command = f"jukesep train {cfg.stage} --resume --out {cfg.out}"
    return f"{budget.describe(reason, step)}; {how_to_continue(command, reason, cfg.steps)}"


def training_data(cfg: TrainConfig) -> tuple[ExcerptDataset, list[dict]]:
    """The stage's training excerpts and its fixed validation excerpts."""
    target = {"foundation": None, "shared": ALL, "mask": ALL}.get(cfg.stage, cfg.stem)
    with_mixture = cfg.stage in ("encoder", "shared", "mask")
    if not Path(cfg.data).is_dir():
        raise DataError(f"--data {cfg.data}: no such folder (expected DATA/train and DATA/{cfg.val_split})")
    val_items = validation_excerpts(find_tracks(cfg.data, cfg.val_split), cfg.excerpt, cfg.val_excerpts, target,
                                    with_mixture=with_mixture)
    if not val_items:  # the validation SDR would be NaN and best.pt arbitrary
        raise DataError(f"{cfg.data}: the {cfg.val_split} split has no song of at least --excerpt {cfg.excerpt} "
                        f"samples with an audible {target or 'source'}")
    if cfg.stage == "mask":
        return EstimateExcerpts(find_tracks(cfg.data, "train"), cfg.excerpt, Path(cfg.out) / "stems", list(STEMS),
                                seed=cfg.seed, eq_db=cfg.mask_eq), val_items
    dataset = ExcerptDataset(find_tracks(cfg.data, "train"), cfg.excerpt, target, with_mixture=with_mixture,
                             seed=cfg.seed, augment=Augment(remix=cfg.remix and with_mixture))
    return dataset, val_items


def wrap(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.nn.Module:
    """The module the loss calls: DDP under torchrun, compiled with --compile."""
    net = model
    if distrib.is_distributed():  # codebook buffers are kept in sync by the bottleneck itself
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      broadcast_buffers=False)
    return torch.compile(net) if cfg.compile else net


def log_step(writer, step: int, out: StepResult, lr: float) -> None:
    writer.add_scalar("train/loss", out.loss.item(), step)
    writer.add_scalar("train/grad_norm", out.grad_norm.item(), step)
    writer.add_scalar("train/lr", lr, step)
    for name, value in out.logs.items():
        writer.add_scalar(f"train/{name}", float(value.detach()), step)


def log_validation(writer, metrics: dict, step: int, rate: int) -> None:
    writer.add_scalar("val/sdr", metrics["sdr"], step)
    if metrics["example"] is not None:
        for name, audio in zip(("estimate", "reference"), metrics["example"]):
            writer.add_audio(f"val/{name}", audio.clamp(-1, 1).unsqueeze(0), step, sample_rate=rate)


def read_history(run: Path) -> list[dict]:
    path = run / HISTORY_FILE
    return json.loads(path.read_text()) if path.exists() else []


def last_history_minutes(run: Path) -> float:
    history = read_history(run)
    return history[-1]["minutes"] if history else 0.0


def append_history(run: Path, step: int, sdr: float, minutes: float) -> None:
    """Add a validation to RUN/val_history.json, dropping entries of later steps (from before a resume)."""
    history = [h for h in read_history(run) if h["step"] < step]
    history.append({"step": step, "sdr": sdr, "minutes": round(minutes, 2)})
    atomic_write_text(run / HISTORY_FILE, json.dumps(history))


def save_state(path: Path, step: int, best: float, model, ema: ParamEMA, optimizer, schedule) -> None:
    quantizer = getattr(model, "quantizer", None)
    atomic_torch_save({
        "step": step, "best": best, "model": model.state_dict(), "ema": ema.params, "ema_updates": ema.updates,
        "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
        "bottleneck": quantizer.ema_state() if quantizer is not None else None,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }, path)


def load_state(path: Path, model, ema: ParamEMA, optimizer, schedule, device) -> tuple[int, float]:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
    except Exception as exc:
        raise JukesepError(f"{path}: cannot resume from it ({str(exc).splitlines()[0][:200]})") from None
    ema.params = {k: v.to(device) for k, v in state["ema"].items()}
    ema.updates = state.get("ema_updates", state["step"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    if state["bottleneck"] is not None:
        model.quantizer.load_ema_state(state["bottleneck"])
    torch.set_rng_state(state["rng"].cpu())
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
    return state["step"], state["best"]
