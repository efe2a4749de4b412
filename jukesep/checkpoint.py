"""jukesep's model files and the import of official Jukebox checkpoints.

A jukesep file is a `torch.save`d dict of plain data (loadable with `weights_only=True`):
    {"format": "jukesep", "format_version": 1, "kind": "vqvae" | "encoder" | "separator",
     "config": {...}, "state": {name: tensor}, "metadata": {...}}
For "separator" the config is {"stems": {stem: VQVAEConfig dict}}; every file rebuilds its model
from its own config, without the training code.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_torch_save, atomic_write_bytes  # noqa: F401  (TEMP re-export until train/ moves)
from .errors import CheckpointError
from .models import VQVAE, Encoder, SeparatorModel, VQVAEConfig

FORMAT = "jukesep"
FORMAT_VERSION = 1
KINDS = ("vqvae", "encoder", "separator")


def save_model(path, kind: str, model: nn.Module, metadata: dict | None = None) -> None:
    """Save a VQVAE, Encoder or SeparatorModel with its config and metadata, atomically."""
    if kind not in KINDS:
        raise CheckpointError(f"unknown model kind {kind!r} (one of {', '.join(KINDS)})")
    if kind == "separator":
        config = {"stems": {name: cfg.to_dict() for name, cfg in model.configs.items()}}
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
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/garbage files
        raise CheckpointError(f"{path}: not a readable model file ({_first_line(exc)})") from None
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
            model = SeparatorModel({name: VQVAEConfig.from_dict(c) for name, c in stems.items()})
        else:
            cfg = VQVAEConfig.from_dict(data["config"])
            model = VQVAE(cfg) if kind == "vqvae" else Encoder(cfg)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    load_state_strict(model, data["state"], str(path))
    return model.eval(), data


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
_SAFE_MODULE_PREFIXES = ("torch", "collections", "numpy", "_codecs")
_SAFE_BUILTINS = {"dict", "list", "tuple", "set", "frozenset", "int", "float", "bool", "str", "bytes",
                  "complex", "slice", "range", "object", "bytearray"}


class _Placeholder(dict):
    """Stands in for classes of the original code (e.g. jukebox.hparams.Hyperparams)."""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


class _TolerantUnpickler(pickle.Unpickler):
    """Loads tensors and containers; replaces foreign classes by a placeholder instead of importing
    (and running) code from them."""

    def find_class(self, module, name):
        if module.split(".")[0] in _SAFE_MODULE_PREFIXES:
            return super().find_class(module, name)
        if module == "builtins" and name in _SAFE_BUILTINS:
            return super().find_class(module, name)
        return _Placeholder


class _tolerant_pickle:  # a "pickle module" for torch.load
    Unpickler = _TolerantUnpickler
    load = staticmethod(pickle.load)
    __name__ = "jukesep_tolerant_pickle"


def _load_foreign(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # not pure weights: retry with placeholders for unknown classes
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=_tolerant_pickle)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({_first_line(exc)})") from None


def import_jukebox(path, out_path=None, metadata: dict | None = None) -> VQVAE:
    """Load the level-0 VQ-VAE of an official Jukebox `vqvae.pth.tar` (keys may carry a `module.`
    prefix; levels 1 and 2 are dropped) into a strict, shape-checked jukesep `VQVAE`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    data = _load_foreign(path)
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
