"""The shared layout (one mixture encoder, a head per stem) and the stage-2 output loss."""
import dataclasses

import numpy as np
import pytest
import torch

from jukesep import Separator
from jukesep.checkpoint import load_model, save_model
from jukesep.cli import main
from jukesep.defaults import STEMS
from jukesep.errors import CheckpointError, JukesepError
from jukesep.models import Encoder, HeadConfig, SeparatorModel
from jukesep.models.widen import widen_encoder
from jukesep.train import train
from jukesep.train.loop import training_data
from jukesep.train.step import train_step
from jukesep.train.tasks import build_task, code_logits
from tests.conftest import music, tiny_config, write_corpus
from tests.test_train import TINY_FLAGS, tiny

HEAD = HeadConfig(width=8, depth=2, dilation_growth_rate=2)


def shared_separator(seed=0, head=HEAD) -> SeparatorModel:
    torch.manual_seed(seed)
    model = SeparatorModel({s: tiny_config() for s in STEMS}, trunk=tiny_config(), head=head)
    for stem in model.stems.values():
        stem.quantizer.k.normal_(0, 0.1)
        torch.nn.init.normal_(stem.head.branch[-1].weight, std=0.1)  # not the pass-through start
    return model.eval()


def test_forward_maps_b_c_t_to_b_s_c_t_and_the_fast_twin_agrees():
    model = shared_separator()
    x = torch.randn(2, 2, 8 * 300)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 4, 2, 8 * 300)
        assert torch.allclose(model.fast()(x), out, atol=1e-5)
        assert torch.equal(model.select(["bass", "vocals"])(x), out[:, [2, 0]])


def test_an_untrained_head_passes_the_mixture_latents_through():
    head = SeparatorModel({"bass": tiny_config()}, trunk=tiny_config(), head=HEAD).stems["bass"].head
    z = torch.randn(3, 8, 50)
    assert torch.allclose(head(z), z)


def test_chunked_output_equals_whole_song_output():
    """`context_samples` covers encoder, head and decoder: small chunks give the whole-song result."""
    model = shared_separator()
    audio = music(1.0)
    whole = Separator(model, segment=5.0, precision="float32").separate(audio, 44100)
    chunked = Separator(model, segment=0.1, precision="float32").separate(audio, 44100)
    for stem in STEMS:
        np.testing.assert_allclose(chunked[stem], whole[stem], atol=2e-5)


def test_checkpoint_round_trip_and_a_hostile_head_is_refused(tmp_path):
    model = shared_separator()
    save_model(tmp_path / "m.pt", "separator", model, {})
    loaded, data = load_model(tmp_path / "m.pt", expect_kind="separator")
    assert data["config"]["head"] == {"width": 8, "depth": 2, "dilation_growth_rate": 2}
    x = torch.randn(1, 1, 8 * 100)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    data["config"]["head"] = {"width": 2048, "depth": 64}  # ~1 G parameters: refused before allocating
    torch.save(data, tmp_path / "big.pt")
    with pytest.raises(CheckpointError, match="parameters"):
        load_model(tmp_path / "big.pt")
    del data["config"]["head"]
    torch.save(data, tmp_path / "half.pt")
    with pytest.raises(CheckpointError, match="trunk and a head"):
        load_model(tmp_path / "half.pt")


@pytest.mark.parametrize("change, words", [
    (lambda c: c["stems"].update({f"s{i}": c["stems"]["bass"] for i in range(20)}), "at most 16"),
    (lambda c: c["stems"]["bass"].update(width=512), "the file holds"),  # 2 M weights asked of a 20 k file
    (lambda c: c["head"].update(width=512, depth=8), "the file holds"),
])
def test_a_config_bigger_than_its_file_is_refused_before_allocating(tmp_path, change, words):
    save_model(tmp_path / "m.pt", "separator", shared_separator(), {})
    data = torch.load(tmp_path / "m.pt", weights_only=True)
    change(data["config"])
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=words):
        load_model(tmp_path / "bad.pt")


def test_a_receptive_field_beyond_a_minute_is_refused():
    trunk = tiny_config(down_t=7)  # hop 128: 29,526 head frames reach 85 s
    with pytest.raises(CheckpointError, match="receptive field"):
        SeparatorModel({"bass": trunk}, trunk=trunk, head=HeadConfig(width=4, depth=10, dilation_growth_rate=3))


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """A tiny corpus and a stage-1 folder with vqvae-<stem>/best.pt for every stem."""
    root = tmp_path_factory.mktemp("shared")
    corpus = write_corpus(root / "corpus", {"train": 3, "valid": 1})
    for stem in STEMS:
        train(tiny(corpus, root / "stage1" / f"vqvae-{stem}", stem=stem, steps=4, val_every=4, ckpt_every=4))
    return corpus, root / "stage1"


def train_a_few_steps(stage1, tmp_path, steps: int, **kw) -> tuple[list[float], set[str]]:
    """A few steps of the shared stage on one batch → (the losses, the state entries that moved)."""
    corpus, folder = stage1
    cfg = tiny(corpus, tmp_path / "run", stage="shared", stem="", vqvae=str(folder), head_width=8, head_depth=2, **kw)
    task = build_task(cfg)
    dataset, _ = training_data(cfg)
    task.calibrate(dataset)
    batch = {k: torch.stack([dataset[i][k] for i in range(4)]) for k in ("mixture", "target")}
    net = task.training_module(task.model.train())
    before = {k: v.clone() for k, v in task.model.state_dict().items()}
    optimizer = torch.optim.Adam(task.model.parameters(), lr=1e-3)
    losses = [train_step(task.model, optimizer, lambda: task.loss(net, batch), bf16=cfg.bf16).loss.item()
              for _ in range(steps)]
    return losses, {k for k, v in task.model.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("loss", ["output", "latent", "both", "codes"])
def test_stage2_losses_train_the_encoder_and_heads_only(stage1, tmp_path, loss):
    """Gradients reach the shared encoder and heads through the frozen codebook and decoder, and
    nothing else moves."""
    losses, moved = train_a_few_steps(stage1, tmp_path, 5, stage2_loss=loss)
    assert all(np.isfinite(losses)), losses
    assert any(k.startswith("trunk.") for k in moved) and any(".head." in k for k in moved), moved
    assert not any(".decoder." in k or ".quantizer." in k for k in moved), moved


def test_the_latent_targets_are_the_stage1_encoders_latents(stage1, tmp_path):
    """The stage-2 targets come from the stage-1 encoders' inference form (faster): the same latents,
    no gradient, for the shared layout and the paper's per-stem encoders."""
    corpus, folder = stage1
    x = torch.from_numpy(music(0.2, seed=3)[:1, :4096]).float()[None]  # [1 x 1 x T]
    shared = build_task(tiny(corpus, tmp_path / "s", stage="shared", stem="", vqvae=str(folder),
                             stage2_loss="latent"))
    per_stem = build_task(tiny(corpus, tmp_path / "e", stage="encoder", stem="bass",
                               vqvae=str(folder / "vqvae-bass" / "best.pt"), stage2_loss="latent"))
    for stem, teacher in [*zip(STEMS, shared.teachers), ("bass", per_stem.teacher_encoder)]:
        encoder = load_model(folder / f"vqvae-{stem}" / "best.pt", expect_kind="vqvae")[0].encoder.eval()
        with torch.no_grad():
            torch.testing.assert_close(teacher(x), encoder(x), rtol=1e-4, atol=1e-5)
        assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("loss", ["output", "latent"])
def test_shared_stage_writes_a_separator_with_stage1s_decoders(stage1, tmp_path, loss):
    corpus, folder = stage1
    result = train(tiny(corpus, tmp_path / "run", stage="shared", stem="", vqvae=str(folder), steps=10,
                        stage2_loss=loss, head_width=8, head_depth=2))
    model, data = load_model(result["best"], expect_kind="separator")
    assert model.stem_names == list(STEMS) and data["config"]["trunk"]["width"] == 8
    stage1_decoder = load_model(folder / "vqvae-bass" / "best.pt")[0].decoder.state_dict()
    for name, value in model.stems["bass"].decoder.state_dict().items():  # frozen: still stage 1's
        assert torch.equal(value, stage1_decoder[name])
    song = corpus / "valid" / "v0" / "mixture.wav"
    assert main(["separate", str(song), "-n", str(result["best"]), "-o", str(tmp_path / "sep")]) == 0


def test_bf16_autocast_trains_on_cpu_and_saves_float32_weights(stage1, tmp_path, monkeypatch, capsys):
    """--bf16 on a CPU with native bfloat16 (avx512_bf16 or AMX; taken as such here, emulated
    otherwise): the step runs under autocast, the weights, the optimizer and the saved separator stay
    float32. Without native bfloat16 --bf16 is refused, and a run started with it resumes with --no-bf16."""
    corpus, folder = stage1
    monkeypatch.setattr("jukesep.hardware.fast_bf16", lambda device: True)
    result = train(tiny(corpus, tmp_path / "run", stage="shared", stem="", vqvae=str(folder), steps=6, val_every=6,
                        ckpt_every=6, stage2_loss="latent", head_width=8, head_depth=2, bf16=True))
    model, _ = load_model(result["best"], expect_kind="separator")
    assert np.isfinite(result["val_sdr"])
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    losses, moved = train_a_few_steps(stage1, tmp_path, 3, stage2_loss="latent", bf16=True)
    assert all(np.isfinite(losses)) and any(k.startswith("trunk.") for k in moved), (losses, moved)

    monkeypatch.setattr("jukesep.hardware.fast_bf16", lambda device: False)
    run = ["--data", str(corpus), "--vqvae", str(folder), "--stage2-loss", "latent", "--head-width", "8",
           "--head-depth", "2", *TINY_FLAGS, "--steps", "2", "--val-every", "2", "--ckpt-every", "2"]
    capsys.readouterr()
    assert main(["train", "shared", *run, "--out", str(tmp_path / "refused"), "--bf16"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--bf16 needs native bfloat16" in err and "leave --bf16 out" in err and "\n" not in err
    assert not (tmp_path / "refused").exists()
    resume = ["train", "shared", "--resume", "--out", str(tmp_path / "run"), "--steps", "8"]
    assert main(resume) == 1 and "--resume --out" in capsys.readouterr().err
    assert main([*resume, "--no-bf16"]) == 0 and "trained 8 steps" in capsys.readouterr().out


def test_decoders_learn_end_to_end_when_asked(stage1, tmp_path):
    """--stage2-decoders train: the decoders move too (their gradients come through the module DDP
    wraps), the codebooks do not."""
    losses, moved = train_a_few_steps(stage1, tmp_path, 3, stage2_loss="output", stage2_decoders="train")
    assert all(np.isfinite(losses)), losses
    assert all(any(k.startswith(f"stems.{s}.decoder.") for k in moved) for s in STEMS), moved
    assert any(k.startswith("trunk.") for k in moved) and not any(".quantizer." in k for k in moved), moved


def test_a_trained_separator_is_fine_tuned_from_its_own_weights(stage1, tmp_path):
    """--init separator:PATH continues a whole separator (no stage-1 folder needed with the output
    loss): its first validation is the separator's own score, and the result keeps its layout."""
    corpus, folder = stage1
    first = train(tiny(corpus, tmp_path / "first", stage="shared", stem="", vqvae=str(folder), steps=6,
                       val_every=6, ckpt_every=6, stage2_loss="latent", head_width=8, head_depth=2, lr=1e-2))
    model, _ = load_model(first["best"], expect_kind="separator")
    cfg = tiny(corpus, tmp_path / "tuned", stage="shared", stem="", vqvae="", init=f"separator:{first['best']}",
               stage2_loss="output", stage2_decoders="train", steps=1, val_every=1, ckpt_every=1, lr=1e-9,
               head_width=8, head_depth=2)
    task = build_task(cfg)
    for name, value in model.state_dict().items():
        assert torch.equal(value, task.model.state_dict()[name]), name
    tuned = train(cfg)
    assert abs(tuned["val_sdr"] - first["val_sdr"]) < 0.05, (tuned["val_sdr"], first["val_sdr"])
    assert load_model(tuned["best"], expect_kind="separator")[0].head_config == HeadConfig(8, 2, 3)


def test_per_stem_encoder_trains_through_the_frozen_decoder(stage1, tmp_path):
    corpus, folder = stage1
    result = train(tiny(corpus, tmp_path / "enc", stage="encoder", stem="bass", steps=10, stage2_loss="output",
                        vqvae=str(folder / "vqvae-bass" / "best.pt")))
    encoder, _ = load_model(result["best"], expect_kind="encoder")
    assert all(torch.isfinite(p).all() for p in encoder.parameters()) and np.isfinite(result["val_sdr"])


@pytest.mark.parametrize("args, words", [
    (["--stem", "bass"], "train shared takes no --stem"),
    ([], "needs --vqvae"),
    (["--vqvae", "NOWHERE"], "no stage-1 model"),
    (["--vqvae", "STAGE1", "--stage2-loss", "l1"], "--stage2-loss must be one of"),
    (["--vqvae", "STAGE1", "--head-width", "0"], "--head-width must be at least 1"),
    (["--vqvae", "STAGE1", "--trunk-width", "-1"], "--trunk-width must be a finite number"),
    (["--vqvae", "STAGE1", "--stage2-decoders", "train"], "needs the shared stage and --stage2-loss output"),
    (["--vqvae", "STAGE1", "--stage2-decoders", "all"], "--stage2-decoders must be one of"),
    (["--init", "separator:NOWHERE", "--stage2-loss", "latent"], "needs --vqvae"),
    (["--init", "separator:NOWHERE", "--stage2-loss", "output"], "NOWHERE"),
])
def test_shared_stage_bad_flags_are_one_line_errors(stage1, tmp_path, capsys, args, words):
    corpus, folder = stage1
    args = [str(folder) if a == "STAGE1" else str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in args]
    out = tmp_path / "run"
    flags = [f for f in TINY_FLAGS if not f.startswith(("--width", "--depth", "--emb-width", "--codebook-size"))]
    assert main(["train", "shared", "--data", str(corpus), "--out", str(out), *flags, *args]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not out.exists()


def test_a_widened_encoder_computes_what_the_narrow_one_did_and_its_new_channels_learn():
    torch.manual_seed(0)
    narrow = Encoder(tiny_config())
    wide = widen_encoder(narrow, 12)
    x = torch.randn(2, 1, 8 * 64)
    assert wide.cfg.width == 12 and wide.cfg.emb_width == narrow.cfg.emb_width
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow(x), rtol=1e-5, atol=1e-6)
    wide(x).square().sum().backward()
    last = wide.level_blocks[0].model[-1]  # reads the added channels through weights that start at 0
    assert last.weight[:, 8:].abs().sum() == 0 and last.weight.grad[:, 8:].abs().sum() > 0
    with pytest.raises(JukesepError, match="cannot start from"):
        widen_encoder(narrow, 4)


def test_a_wider_trunk_starts_as_the_foundation_encoder_trains_and_resumes(stage1, tmp_path):
    """--trunk-width: the shared encoder is the --init encoder widened (same output at the start);
    the run saves a separator with that trunk and resumes as it was configured."""
    corpus, folder = stage1
    foundation = folder / "vqvae-bass" / "best.pt"
    cfg = tiny(corpus, tmp_path / "run", stage="shared", stem="", vqvae=str(folder), init=f"foundation:{foundation}",
               trunk_width=12, width=12, head_width=8, head_depth=2, steps=4, val_every=4, ckpt_every=4)
    task = build_task(cfg)
    x = torch.randn(1, 1, 8 * 64)
    with torch.no_grad():
        torch.testing.assert_close(task.model.trunk(x), load_model(foundation)[0].encoder(x), rtol=1e-5, atol=1e-6)
    train(cfg)
    resumed = train(dataclasses.replace(cfg, steps=6), resume=True)
    model, data = load_model(resumed["last"], expect_kind="separator")
    assert resumed["steps"] == 6 and model.trunk.cfg.width == 12 and data["config"]["stems"]["bass"]["width"] == 8
    with pytest.raises(JukesepError, match="trunk is 12 wide"):
        build_task(dataclasses.replace(cfg, init=f"separator:{resumed['last']}", trunk_width=16))


def test_the_codes_loss_is_lowest_for_latents_at_the_wanted_codes():
    """code_logits are minus the squared distances up to a constant per frame, so their softmax
    ranks the codebook as the quantiser's nearest-code search does, and the codes loss rewards
    latents that quantise to the clean stem's codes."""
    torch.manual_seed(0)
    codebook, latents = torch.randn(16, 4), torch.randn(2, 4, 10)
    logits = code_logits(latents, codebook)
    rows = latents.permute(0, 2, 1).reshape(20, 4)
    distances = (rows[:, None, :] - codebook).pow(2).sum(-1)
    torch.testing.assert_close(logits.log_softmax(1), (-distances).log_softmax(1), rtol=1e-4, atol=1e-4)
    wanted = torch.randint(0, 16, (2, 10))
    at_codes = codebook[wanted].permute(0, 2, 1)
    loss = torch.nn.functional.cross_entropy
    assert loss(code_logits(at_codes, codebook), wanted.reshape(-1)) < loss(logits, wanted.reshape(-1))
