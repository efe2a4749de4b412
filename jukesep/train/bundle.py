"""Assemble per-stem stage-1 VQ-VAEs and stage-2 mixture encoders into one separator file."""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import load_model, save_model
from ..defaults import STEMS
from ..errors import CheckpointError
from ..models import SeparatorModel, StemModel


def bundle(out: Path, parts: dict[str, tuple[Path, Path]], metadata: dict | None = None) -> SeparatorModel:
    """parts: stem → (stage-1 VQ-VAE file, stage-2 encoder file). Writes `out` atomically."""
    stems, meta = {}, {"stems": {}}
    for stem, (vqvae_path, encoder_path) in parts.items():
        vqvae, vq_data = load_model(vqvae_path, expect_kind="vqvae")
        encoder, enc_data = load_model(encoder_path, expect_kind="encoder")
        if vqvae.cfg != encoder.cfg:
            raise CheckpointError(f"{stem}: {vqvae_path} and {encoder_path} have different model configs")
        stems[stem] = StemModel.from_parts(vqvae, encoder)
        meta["stems"][stem] = {"vqvae": vq_data["metadata"], "encoder": enc_data["metadata"]}
    model = SeparatorModel({name: s.cfg for name, s in stems.items()})
    for name, stem in stems.items():
        model.stems[name].load_state_dict(stem.state_dict())
    meta.update(metadata or {})
    save_model(out, "separator", model, meta)
    return model


def parts_from_run(run: Path, stems=STEMS) -> dict[str, tuple[Path, Path]]:
    """The best stage-1 and stage-2 files of each stem in a `jukesep train all` run folder."""
    parts = {}
    for stem in stems:
        vqvae, encoder = run / f"vqvae-{stem}" / "best.pt", run / f"encoder-{stem}" / "best.pt"
        if vqvae.exists() and encoder.exists():
            parts[stem] = (vqvae, encoder)
    if not parts:
        raise CheckpointError(f"{run}: no stem has both vqvae-<stem>/best.pt and encoder-<stem>/best.pt")
    return parts
