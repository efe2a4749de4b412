"""jukesep's model files and the import of official Jukebox checkpoints.

A jukesep file is a `torch.save`d dict of plain data (loadable with `weights_only=True`):
    {"format": "jukesep", "format_version": 1, "kind": "vqvae" | "encoder" | "separator",
     "config": {...}, "state": {name: tensor}, "metadata": {...}}
For "separator" the config is {"stems": {stem: VQVAEConfig dict}}, plus {"trunk": VQVAEConfig dict,
"head": HeadConfig dict} in the shared layout and {"mask": MaskConfig dict} with a learned mask;
every file rebuilds its model from its own config, without the training code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_torch_save
from .errors import CheckpointError
from .models import VQVAE, Encoder, SeparatorModel, VQVAEConfig
from .models.config import HeadConfig, MaskConfig

FORMAT = "jukesep"
FORMAT_VERSION = 1
KINDS = ("vqvae", "encoder", "separator")
MAX_STEMS = 16
# A config may ask for at most this many times the weights its file holds (plus a little): the
# file's size, not its config, bounds what loading it allocates.
SIZE_SLACK, SIZE_MARGIN = 4, 1_000_000


def save_model(path, kind: str, model: nn.Module, metadata: dict | None = None) -> None:
    """Save a VQVAE, Encoder or SeparatorModel with its config and metadata, atomically."""
    if kind not in KINDS:
        raise CheckpointError(f"unknown model kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "separator":
        config = {"stems": {name: cfg.to_dict() for name, cfg in model.configs.items()}}
        if model.trunk_config is not None:
            config.update(trunk=model.trunk_config.to_dict(), head=model.head_config.to_dict())
        if model.mask_config is not None:
            config["mask"] = model.mask_config.to_dict()
    else:
        config = model.cfg.to_dict()
    state = {name: t.detach().cpu().clone() for name, t in model.state_dict().items()}
    atomic_torch_save({"format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind,
                       "config": config, "state": state, "metadata": dict(metadata or {})}, path)


def read_checkpoint(path) -> dict:
    """Load and validate the envelope of a jukesep file (no model is built)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    data = safe_load(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        hint = " (an official Jukebox file? convert it with `jukesep import-jukebox`)" if (
            isinstance(data, dict) and "model" in data) else ""
        raise CheckpointError(f"{path}: not a jukesep model file{hint}")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {data.get('format_version')} is not supported "
                              f"(this jukesep reads version {FORMAT_VERSION})")
    if data.get("kind") not in KINDS:
        raise CheckpointError(f"{path}: unknown model kind {data.get('kind')!r}")
    for key in ("config", "state", "metadata"):
        if not isinstance(data.get(key), dict):
            raise CheckpointError(f"{path}: missing or malformed '{key}' entry")
    return data


def load_model(path, expect_kind: str | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model stored at `path`. Returns (model in eval mode, checkpoint dict)."""
    data = read_checkpoint(path)
    kind = data["kind"]
    if expect_kind is not None and kind != expect_kind:
        raise CheckpointError(f"{path}: holds a {kind} model, a {expect_kind} model is needed")
    try:
        if kind == "separator":
            stems = data["config"].get("stems")
            if not isinstance(stems, dict) or not stems:
                raise CheckpointError("separator config lists no stems")
            if len(stems) > MAX_STEMS:
                raise CheckpointError(f"separator config lists {len(stems)} stems (at most {MAX_STEMS})")
            shared = {key: cls.from_dict(data["config"][key])  # SeparatorModel wants both or neither
                      for key, cls in (("trunk", VQVAEConfig), ("head", HeadConfig)) if key in data["config"]}
            configs = {name: VQVAEConfig.from_dict(c) for name, c in stems.items()}
            mask = MaskConfig.from_dict(data["config"]["mask"]) if "mask" in data["config"] else None
            _check_size(list(configs.values()) + list(shared.values()) + [mask], len(configs), data["state"])
            model = SeparatorModel(configs, **shared, mask=mask)
        else:
            cfg = VQVAEConfig.from_dict(data["config"])
            _check_size([cfg], 1, data["state"])
            model = VQVAE(cfg) if kind == "vqvae" else Encoder(cfg)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_state_strict(model, data["state"], str(path))
    return model.eval(), data


def _check_size(configs: list, stems: int, state: dict) -> None:
    """Refuse a config that asks for far more weights than the file holds, before allocating them."""
    def weights(c) -> int:
        if isinstance(c, MaskConfig):
            return c.approx_parameters(stems)
        return c.approx_parameters() * (stems if isinstance(c, HeadConfig) else 1)
    wanted = sum(weights(c) for c in configs if c is not None)
    held = sum(t.numel() for t in state.values() if isinstance(t, torch.Tensor))
    if wanted > SIZE_SLACK * held + SIZE_MARGIN:
        raise CheckpointError(f"the config asks for about {wanted:,} weights but the file holds {held:,}")


def load_state_strict(model: nn.Module, state: dict, where: str) -> None:
    """`load_state_dict(strict=True)` with a one-line error that names what differs."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing tensors (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches (e.g. {mismatched[0]})")
    if problems:
        raise CheckpointError(f"{where}: weights do not fit the architecture: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


# -- official Jukebox checkpoints ----------------------------------------------------------------

_LEVEL0_PREFIXES = ("encoders.0.", "decoders.0.", "bottleneck.level_blocks.0.")


def _jukebox_globals() -> list:
    """The only non-tensor types an official Jukebox file may hold, for `torch.load(weights_only=True)`:
    its hyper-parameter object (a dict subclass, read as a plain dict — no Jukebox code is imported)
    and numpy scalars in its metrics. Anything else is refused."""
    import numpy as np
    core = getattr(np, "_core", None) or np.core
    scalar = core.multiarray.scalar
    allowed = [(dict, "jukebox.hparams.Hyperparams"), (scalar, "numpy.core.multiarray.scalar"),
               (scalar, "numpy._core.multiarray.scalar"), np.dtype]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, name) for name in ("Float32DType", "Float64DType", "Int64DType", "Int32DType")]
    return allowed


def safe_load(path: Path, allowed: list | None = None):
    """`torch.load(weights_only=True)`: tensors and plain data only, plus the `allowed` globals.
    Any other object is refused with a one-line CheckpointError; no pickled code ever runs."""
    try:
        with torch.serialization.safe_globals(allowed or []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is paragraphs of advice around one line that says what was found
        lines = [line.strip() for line in str(exc).splitlines() if line.strip() and not line.startswith(
            ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch"))]
        refusal = [line for line in lines if "global" in line.lower() or line.startswith("Can only")]
        if not refusal:
            raise CheckpointError(f"{path}: not a readable model file ({lines[-1][:160] if lines else exc})") from None
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain data, and "
                              f"loading them could run code ({refusal[0][:160]})") from None
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable model file ({_first_line(exc)})") from None


def import_jukebox(path, out_path=None, metadata: dict | None = None) -> VQVAE:
    """Load the level-0 VQ-VAE of an official Jukebox `vqvae.pth.tar` (keys may carry a `module.`
    prefix; levels 1 and 2 are dropped) into a strict, shape-checked jukesep `VQVAE`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    data = safe_load(path, _jukebox_globals())
    state = data.get("model") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no 'model' state dict inside; is this a Jukebox checkpoint?")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    level0 = {k: v for k, v in state.items() if k.startswith(_LEVEL0_PREFIXES)}
    if not level0:
        raise CheckpointError(f"{path}: has no level-0 VQ-VAE tensors (encoders.0.*, decoders.0.*)")
    model = VQVAE(VQVAEConfig())
    load_state_strict(model, level0, str(path))
    if out_path is not None:
        meta = {"source": "jukebox", "imported_from": path.name, "dropped_tensors": len(state) - len(level0)}
        meta.update(metadata or {})
        save_model(out_path, "vqvae", model, meta)
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
