import sys
import types

import pytest
import torch

from jukesep.checkpoint import import_jukebox, load_model, read_checkpoint, save_model
from jukesep.cli import main
from jukesep.errors import CheckpointError
from jukesep.models import VQVAE, Encoder, VQVAEConfig
from tests.conftest import random_separator, tiny_config


def official_state(prefix="module."):
    """Random tensors in the official 5b layout: level 0 as in level0_keys.tsv plus levels 1-2."""
    torch.manual_seed(0)
    state = {f"{prefix}{k}": torch.randn_like(v) for k, v in VQVAE(VQVAEConfig()).state_dict().items()}
    for level in (1, 2):
        state[f"{prefix}encoders.{level}.level_blocks.0.model.0.0.weight"] = torch.randn(32, 1, 4)
        state[f"{prefix}bottleneck.level_blocks.{level}.k"] = torch.randn(2048, 64)
    return state


@pytest.mark.parametrize("prefix", ["module.", ""])
@pytest.mark.parametrize("legacy", [False, True])
def test_import_official_checkpoint(tmp_path, prefix, legacy):
    src = tmp_path / "vqvae.pth.tar"
    state = official_state(prefix)
    torch.save({"model": state, "step": 12345}, src, _use_new_zipfile_serialization=not legacy)
    model = import_jukebox(src, tmp_path / "out.pt")
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[prefix + key]), key
    loaded, data = load_model(tmp_path / "out.pt", expect_kind="vqvae")
    assert data["metadata"]["source"] == "jukebox" and data["metadata"]["dropped_tensors"] == 4
    assert torch.equal(loaded.quantizer.k, state[prefix + "bottleneck.level_blocks.0.k"])


@pytest.mark.parametrize("legacy", [False, True])
def test_import_reads_jukebox_hyperparams_as_plain_data(tmp_path, monkeypatch, legacy):
    # Official files pickle jukebox.hparams.Hyperparams (a dict subclass); we have no jukebox package.
    module = types.ModuleType("jukebox.hparams")

    class Hyperparams(dict):
        pass

    Hyperparams.__module__ = module.__name__
    Hyperparams.__qualname__ = "Hyperparams"
    module.Hyperparams = Hyperparams
    monkeypatch.setitem(sys.modules, "jukebox", types.ModuleType("jukebox"))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    src = tmp_path / "vqvae.pth.tar"
    torch.save({"hps": Hyperparams(sr=44100), "model": official_state(), "step": 3}, src,
               _use_new_zipfile_serialization=not legacy)
    monkeypatch.delitem(sys.modules, module.__name__)
    monkeypatch.delitem(sys.modules, "jukebox")
    model = import_jukebox(src)
    assert model.quantizer.k.shape == (2048, 64)


def test_import_cli(tmp_path, capsys):
    src = tmp_path / "vqvae.pth.tar"
    torch.save({"model": official_state()}, src)
    assert main(["import-jukebox", str(src), str(tmp_path / "jb.pt")]) == 0
    assert "900,033 parameters" in capsys.readouterr().out
    assert main(["info", str(tmp_path / "jb.pt")]) == 0
    assert "source: jukebox" in capsys.readouterr().out


def test_import_rejects_wrong_shapes(tmp_path):
    state = official_state()
    state["module.encoders.0.level_blocks.0.model.0.0.weight"] = torch.randn(32, 1, 4)
    torch.save({"model": state}, tmp_path / "bad.tar")
    with pytest.raises(CheckpointError, match="shape mismatch.*encoders.0.level_blocks.0.model.0.0.weight"):
        import_jukebox(tmp_path / "bad.tar")


def test_import_rejects_non_jukebox(tmp_path):
    torch.save({"weights": {}}, tmp_path / "x.tar")
    with pytest.raises(CheckpointError, match="no 'model' state dict"):
        import_jukebox(tmp_path / "x.tar")


@pytest.mark.parametrize("kind,model", [("vqvae", VQVAE(tiny_config())), ("encoder", Encoder(tiny_config())),
                                        ("separator", random_separator(("vocals", "bass")))])
def test_save_load_round_trip(tmp_path, kind, model):
    save_model(tmp_path / "m.pt", kind, model, {"steps": 7})
    loaded, data = load_model(tmp_path / "m.pt")
    assert data["metadata"] == {"steps": 7} and data["kind"] == kind
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_checkpoint_loads_with_weights_only(tmp_path):
    save_model(tmp_path / "m.pt", "vqvae", VQVAE(tiny_config()))
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    assert VQVAEConfig(**data["config"]) == tiny_config()


def test_wrong_architecture_is_one_line_error(tmp_path):
    save_model(tmp_path / "m.pt", "vqvae", VQVAE(tiny_config()))
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["config"]["width"] = 16  # config no longer matches the weights
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(CheckpointError) as info:
        load_model(tmp_path / "m.pt")
    assert "do not fit the architecture" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("content,message", [(b"", "not a readable model file"),
                                             (b"garbage" * 100, "not a readable model file")])
def test_corrupt_files(tmp_path, content, message):
    (tmp_path / "bad.pt").write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(tmp_path / "bad.pt")


def test_truncated_file(tmp_path):
    save_model(tmp_path / "m.pt", "vqvae", VQVAE(tiny_config()))
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable model file"):
        read_checkpoint(tmp_path / "m.pt")


def test_official_file_given_as_model_gets_a_hint(tmp_path):
    torch.save({"model": {}}, tmp_path / "vqvae.pth.tar")
    with pytest.raises(CheckpointError, match="import-jukebox"):
        read_checkpoint(tmp_path / "vqvae.pth.tar")


def test_wrong_kind(tmp_path):
    save_model(tmp_path / "m.pt", "vqvae", VQVAE(tiny_config()))
    with pytest.raises(CheckpointError, match="a separator model is needed"):
        load_model(tmp_path / "m.pt", expect_kind="separator")


def test_unknown_config_field(tmp_path):
    save_model(tmp_path / "m.pt", "vqvae", VQVAE(tiny_config()))
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["config"]["colour"] = "blue"
    torch.save(data, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="unknown model config fields: colour"):
        load_model(tmp_path / "m.pt")


class _RunsCode:
    """A pickle that calls os.system when loaded by an unrestricted unpickler."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("where", ["hps", "model"])
def test_crafted_checkpoints_run_no_code(tmp_path, legacy, where, song, capsys):
    marker = tmp_path / "pwned"
    payload = {"model": official_state(), "hps": {}}
    payload[where] = _RunsCode(marker)
    evil = tmp_path / "evil.pth.tar"
    torch.save(payload, evil, _use_new_zipfile_serialization=not legacy)
    assert main(["import-jukebox", str(evil), str(tmp_path / "out.pt")]) == 1
    assert main(["info", str(evil)]) == 1
    assert main(["separate", str(song), "--model", str(evil), "-o", str(tmp_path / "sep")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all("refused" in line for line in err), err
    assert not marker.exists() and not (tmp_path / "out.pt").exists()


def test_other_foreign_classes_are_refused(tmp_path):
    import decimal
    evil = tmp_path / "odd.pth.tar"
    torch.save({"model": official_state(), "extra": decimal.Decimal("1.5")}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        import_jukebox(evil)
