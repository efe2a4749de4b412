import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from jukesep.checkpoint import load_model
from jukesep.cli import main
from jukesep.errors import JukesepError, ShapeError
from jukesep.models.vqvae import Reconstruction
from jukesep.train import TrainConfig, train
from jukesep.train.budget import Budget
from jukesep.train.config import from_flat, load_saved
from jukesep.train.losses import Bandwidth, lmix, multi_resolution_stft_loss, sdr
from jukesep.train.step import ParamEMA, adam_with_warmup, cosine_decay, train_step
from jukesep.train.tasks import AutoencoderTask
from tests.conftest import write_corpus

TINY = dict(width=8, depth=1, emb_width=8, codebook_size=32, excerpt=4096, batch_size=4, warmup=2, lr=3e-3,
            workers=0, val_excerpts=1, linf_k=64, log_every=1, device="cpu")
TINY_FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), {"train": 3, "valid": 1})


def tiny(corpus, out, **kw) -> TrainConfig:
    values = dict(TINY, data=str(corpus), out=str(out), stage="vqvae", stem="drums", steps=30, val_every=30,
                  ckpt_every=30)
    values.update(kw)
    return from_flat(values)


def test_losses_by_hand():
    x = torch.zeros(2, 1, 4096)
    assert lmix(x, x) == 0 and multi_resolution_stft_loss(x, x) == 0
    y = x.clone()
    y[0, 0, 0] = 2.0  # one error of 2: mse = 4 / 8192, top-k mean = 4 / (2 * 2048)
    assert torch.isclose(lmix(y, x), torch.tensor(4 / 8192 + 0.02 * 4 / 4096))
    s = torch.randn(3, 1, 1000)
    assert torch.allclose(sdr(0.5 * s, s), torch.full((3,), 10 * torch.log10(torch.tensor(4.0))), atol=1e-4)
    assert sdr(s, s).min() > 60
    assert torch.allclose(sdr(torch.zeros(1, 10), torch.zeros(1, 10)), torch.zeros(1))  # 1e-7 guards
    with pytest.raises(ShapeError, match="differ in shape"):
        lmix(x, x[..., :100])
    with pytest.raises(ShapeError, match=r"\[B x 1 x T\]"):
        Bandwidth.measure(torch.zeros(2, 2, 100))


def test_bandwidth_makes_the_stage1_loss_level_independent(corpus):
    x = torch.randn(4, 1, 4096)
    quiet, loud = Bandwidth.measure(0.01 * x), Bandwidth.measure(x)
    assert quiet.l2 == pytest.approx(1e-4 * loud.l2, rel=1e-4)
    assert quiet.spec == pytest.approx(0.01 * loud.spec, rel=1e-4)
    assert loud.l2 == pytest.approx(1.0, rel=0.05)
    task = AutoencoderTask(tiny(corpus, "unused"))
    bandwidth = task.calibrate([{"target": a} for a in 0.05 * x])
    assert bandwidth.l2 == pytest.approx(0.0025, rel=0.05)
    silent = lambda y: Reconstruction(torch.zeros_like(y), None, torch.tensor(0.0), {})  # noqa: E731
    _, terms = task.loss(silent, {"target": 0.05 * x})
    # A silent estimate of typical audio costs about 1 (+ the linf share) in each term, whatever its level.
    assert 0.9 < terms["recon"] < 2 and 0.9 < terms["stft"] < 1.1, terms


@pytest.mark.parametrize("stage,stem", [("vqvae", "drums"), ("foundation", "")])
def test_stage1_loss_falls_and_codebook_moves(corpus, tmp_path, stage, stem):
    result = train(tiny(corpus, tmp_path / "run", stage=stage, stem=stem, steps=40, val_every=40, ckpt_every=40))
    losses = result["losses"]
    assert len(losses) == 40 and sum(losses[-5:]) < 0.8 * sum(losses[:5]), losses
    model, data = load_model(result["best"], expect_kind="vqvae")
    assert model.quantizer.k.abs().sum() > 0  # initialised from data, then moved by EMA
    assert data["metadata"]["steps"] == 40 and "val_sdr" in data["metadata"]
    assert (tmp_path / "run" / "config.json").exists() and list((tmp_path / "run" / "tb").iterdir())
    history = json.loads((tmp_path / "run" / "val_history.json").read_text())
    assert [h["step"] for h in history] == [40] and history[0]["sdr"] == data["metadata"]["val_sdr"]


def test_resume_continues_with_the_same_state(corpus, tmp_path):
    straight = train(tiny(corpus, tmp_path / "a", steps=12, val_every=6, ckpt_every=6))
    train(tiny(corpus, tmp_path / "b", steps=6, val_every=6, ckpt_every=6))
    with pytest.raises(JukesepError, match="already holds a run"):
        train(tiny(corpus, tmp_path / "b", steps=12))
    resumed = train(tiny(corpus, tmp_path / "b", steps=12, val_every=6, ckpt_every=6), resume=True)
    assert resumed["steps"] == 12 and resumed["losses"] == straight["losses"][6:]
    a, _ = load_model(tmp_path / "a" / "last.pt")
    b, _ = load_model(tmp_path / "b" / "last.pt")
    for key, value in a.state_dict().items():
        assert torch.allclose(value, b.state_dict()[key], atol=1e-6), key


def test_resume_after_hard_kill(corpus, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "jukesep", "train", "vqvae", "--data", str(corpus), "--out", str(out),
           "--stem", "bass", "--steps", "400", "--ckpt-every", "5", "--val-every", "400", *TINY_FLAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "train_state.pt").exists() and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = torch.load(out / "train_state.pt", weights_only=True)  # never half-written
    assert 5 <= state["step"] < 400
    done = subprocess.run(cmd[:cmd.index("--steps")] + ["--steps", str(state["step"] + 5), "--resume"]
                          + TINY_FLAGS, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"trained {state['step'] + 5} steps" in done.stdout


def test_stage2_loss_falls_and_bundle_separates(corpus, tmp_path, capsys):
    flags = ["--data", str(corpus), "--steps", "25", "--val-every", "25", "--ckpt-every", "25", *TINY_FLAGS]
    assert main(["train", "all", "--stems", "vocals,bass", "--out", str(tmp_path / "all"), *flags]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "separator.pt" in out
    enc = train(tiny(corpus, tmp_path / "enc", stage="encoder", stem="bass", steps=25,
                     vqvae=str(tmp_path / "all" / "vqvae-bass" / "best.pt")))
    assert sum(enc["losses"][-5:]) < 0.8 * sum(enc["losses"][:5]), enc["losses"]
    song = corpus / "valid" / "v0" / "mixture.wav"
    assert main(["separate", str(song), "--model", str(tmp_path / "all" / "separator.pt"),
                 "-o", str(tmp_path / "sep")]) == 0
    [named] = (tmp_path / "sep").iterdir()  # the model's output folder (its name is the separate command's)
    assert sorted(p.name for p in (named / "mixture").iterdir()) == ["bass.wav", "vocals.wav"]
    assert main(["bundle", str(tmp_path / "b.pt"), "--stem",
                 f"bass={tmp_path / 'all/vqvae-bass/best.pt'},{tmp_path / 'enc/best.pt'}"]) == 0


@pytest.mark.skipif(shutil.which("torchrun") is None and not os.path.exists(
    os.path.join(os.path.dirname(sys.executable), "torchrun")), reason="torchrun not found")
def test_two_gloo_ranks_keep_one_codebook(corpus, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run(
        [torchrun if os.path.exists(torchrun) else "torchrun", "--standalone", "--nproc_per_node=2", "-m", "jukesep",
         "train", "vqvae", "--data", str(corpus), "--out", str(tmp_path / "ddp"), "--stem", "drums",
         "--steps", "6", "--val-every", "3", "--ckpt-every", "3", *TINY_FLAGS],
        capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "codebook identical on all 2 ranks" in result.stdout
    model, data = load_model(tmp_path / "ddp" / "last.pt")
    assert data["metadata"]["steps"] == 6 and model.quantizer.k.abs().sum() > 0


def test_resume_needs_only_the_run_folder_even_after_a_move(corpus, tmp_path, capsys):
    flags = ["--data", str(corpus), "--stem", "bass", "--val-every", "5", "--ckpt-every", "5", *TINY_FLAGS]
    assert main(["train", "vqvae", "--out", str(tmp_path / "a"), "--steps", "5", *flags]) == 0
    (tmp_path / "a").rename(tmp_path / "b")
    assert main(["train", "vqvae", "--resume", "--out", str(tmp_path / "b"), "--steps", "8"]) == 0
    assert "trained 8 steps" in capsys.readouterr().out
    assert json.loads((tmp_path / "b" / "val_history.json").read_text())[-1]["step"] == 8
    assert not (tmp_path / "a").exists()


def test_parameter_ema_ramps_up_its_decay():
    model = torch.nn.Linear(2, 2, bias=False)
    ema = ParamEMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(100):
        ema.update(model)
    # a fixed 0.999 would still be 90% the initial weights after 100 steps; the ramp follows the model
    assert torch.allclose(ema.params["weight"], model.weight, atol=1e-3)


def test_train_step_clips_steps_schedules_and_averages():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer, schedule = adam_with_warmup(model.parameters(), lr=0.1, warmup=4)
    ema = ParamEMA(model, decay=0.5)
    x = torch.randn(8, 4)

    def loss():
        value = 1000 * model(x).pow(2).mean()
        return value, {"half": value / 2}

    result = train_step(model, optimizer, loss, clip=1.0, schedule=schedule, ema=ema)
    assert not result.loss.requires_grad and result.logs["half"].item() == pytest.approx(result.loss.item() / 2)
    assert result.grad_norm > 1.0  # measured before clipping
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert total == pytest.approx(1.0, rel=1e-4)  # ... and clipped to 1
    assert schedule.get_last_lr()[0] == pytest.approx(0.1 * 2 / 4)  # warm-up: second step's rate
    assert ema.updates == 1 and not torch.equal(ema.params["weight"], before["weight"])
    unclipped = train_step(model, optimizer, loss)  # no clip, schedule or EMA
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert unclipped.grad_norm == pytest.approx(total.item()) and ema.updates == 1


def test_architecture_flags_reach_the_saved_model(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--data", str(corpus), "--out", str(out), "--stem", "drums", "--steps", "2",
                 "--val-every", "2", "--ckpt-every", "2", "--down-t", "2", "--stride-t", "4",
                 "--dilation-cycle", "1", *TINY_FLAGS]) == 0
    model, _ = load_model(out / "best.pt", expect_kind="vqvae")
    assert (model.cfg.down_t, model.cfg.stride_t, model.cfg.hop_length, model.cfg.dilation_cycle) == (2, 4, 16, 1)
    assert (model.cfg.width, model.cfg.codebook_size) == (TINY["width"], TINY["codebook_size"])
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["down_t"] == 2 and saved["model"]["stride_t"] == 4 and "width" not in saved
    assert load_saved(out / "config.json").model == model.cfg  # config.json round-trips
    # a pretrained init brings its own architecture: an architecture flag is refused, not ignored
    assert main(["train", "vqvae", "--data", str(corpus), "--out", str(tmp_path / "t"), "--stem", "drums",
                 "--init", f"foundation:{out / 'best.pt'}", "--width", "16"]) == 1
    assert "--width set the architecture of a scratch model" in capsys.readouterr().err


def test_resume_refuses_changed_flags_and_reads_old_configs(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    flags = ["--data", str(corpus), "--out", str(out), "--stem", "drums", "--val-every", "2", "--ckpt-every", "2",
             *TINY_FLAGS]
    assert main(["train", "vqvae", "--steps", "2", *flags]) == 0
    capsys.readouterr()
    assert main(["train", "vqvae", "--resume", "--steps", "4", *flags, "--lr", "0.5", "--depth", "2"]) == 1
    err = capsys.readouterr().err
    assert "only --steps, --minutes, --bf16 may change" in err and "--lr 0.5 (the run has 0.003)" in err
    assert "--depth 2 (the run has 1)" in err and json.loads((out / "val_history.json").read_text())[-1]["step"] == 2
    assert main(["train", "encoder", "--resume", "--out", str(out), "--steps", "4"]) == 1  # another stage
    assert "--stage 'encoder' (the run has 'vqvae')" in capsys.readouterr().err
    # a run saved by older versions: flat model fields beside the training ones
    saved = json.loads((out / "config.json").read_text())
    old = {k: v for k, v in saved.items() if k != "model"}
    old.update({k: saved["model"][k] for k in ("width", "depth", "emb_width", "codebook_size")})
    (out / "config.json").write_text(json.dumps(old))
    assert main(["train", "vqvae", "--resume", "--out", str(out), "--steps", "4", "--minutes", "5"]) == 0
    assert "trained 4 steps" in capsys.readouterr().out


def test_help_shows_field_comments_and_the_presets_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["train", "vqvae", "--help"])
    paper = " ".join(capsys.readouterr().out.split())
    assert "--excerpt INT samples per example (8.9 s at 44.1 kHz) (default: 393216)" in paper
    assert "--down-t INT down-sampling steps (default: 3)" in paper
    with pytest.raises(SystemExit):
        main(["train", "all", "--preset", "small", "--help"])
    small = " ".join(capsys.readouterr().out.split())
    assert "(default: 16384)" in small and "(default: 393216)" not in small and "(default: runs/all)" in small


@pytest.mark.parametrize("stage", ["foundation", "vqvae", "encoder", "all"])
def test_help_offers_only_the_flags_a_stage_uses_and_excerpt_in_samples(capsys, stage):
    with pytest.raises(SystemExit):
        main(["train", stage, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--excerpt INT samples per example" in text
    assert ("--stem " in text) == (stage in ("vqvae", "encoder")) and ("--vqvae " in text) == (stage == "encoder")
    if stage == "all":  # the default it shows is the one it uses
        assert "RUN/vqvae-STEM and RUN/encoder-STEM" in text and "(default: runs/all)" in text
        assert "runs/run" not in text


def _progress_lines(text: str, desc: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(f"{desc}: ") and " step (" in line]


def test_a_log_file_gets_progress_lines_before_the_end(corpus, tmp_path):
    """Output to a pipe (nohup, docker, a script's log): periodic plain lines, not silence until the end."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "jukesep", "train", "vqvae", "--data", str(corpus), "--out", str(out), "--stem", "bass",
         "--steps", "12", "--val-every", "12", "--ckpt-every", "12", *TINY_FLAGS],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        env=dict(os.environ, JUKESEP_LOG_INTERVAL="0", OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout[-3000:]
    lines = done.stdout.splitlines()
    progress = _progress_lines(done.stdout, "vqvae bass")
    end = next(i for i, line in enumerate(lines) if line.startswith("trained 12 steps"))
    assert len(progress) >= 3 and lines.index(progress[0]) < end, done.stdout
    assert "/12 step" in progress[0] and "step/s" in progress[0] and "loss=" in progress[-1]
    assert "val_sdr=" in progress[-1]  # the validation at the end
    assert lines[end + 1] == (f"stopped: reached --steps 12; to train longer: jukesep train vqvae --resume "
                              f"--out {out} --steps N (N > 12) or --minutes M")


def test_progress_counts_toward_the_time_budget_and_the_end_says_what_stopped(corpus, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setenv("JUKESEP_LOG_INTERVAL", "0")
    out = tmp_path / "run"
    flags = ["--data", str(corpus), "--out", str(out), "--stem", "bass", "--val-every", "100000",
             "--ckpt-every", "100000", *TINY_FLAGS]
    assert main(["train", "vqvae", "--steps", "100000", "--minutes", "0.03", *flags]) == 0
    captured = capsys.readouterr()
    totals = [int(line.split("/")[1].split()[0]) for line in _progress_lines(captured.err, "vqvae bass")]
    assert totals and totals[-1] < 100000, totals[-5:]  # the steps 1.8 s allow, not --steps
    step = json.loads((out / "val_history.json").read_text())[-1]["step"]
    assert f"stopped: time budget (--minutes 0.03) used at step {step} of 100000; to continue: " \
           f"jukesep train vqvae --resume --out {out} (add --steps N or --minutes M" in captured.out
    assert main(["train", "vqvae", "--resume", "--out", str(out), "--steps", str(step + 2), "--minutes", "0"]) == 0
    assert f"stopped: reached --steps {step + 2}" in capsys.readouterr().out


def test_cosine_decay_ends_a_run_at_rate_zero_and_a_resume_stretches_it(corpus, tmp_path):
    def state() -> tuple[float, dict]:
        saved = torch.load(tmp_path / "run" / "train_state.pt", weights_only=True)
        return saved["optimizer"]["param_groups"][0]["lr"], saved["model"]

    train(tiny(corpus, tmp_path / "run", steps=6, val_every=3, ckpt_every=3, warmup=1, lr_decay="cosine"))
    rate, before = state()
    assert rate == 0.0
    train(tiny(corpus, tmp_path / "run", steps=12, val_every=3, ckpt_every=3, warmup=1, lr_decay="cosine"),
          resume=True)
    rate, after = state()
    assert rate == 0.0
    # at a rate of 0 Adam would not move the weights: the longer budget restarted the decay part-way
    trained = [k for k, v in before.items() if v.is_floating_point() and not torch.equal(v, after[k])]
    assert any(k.startswith("encoders.") for k in trained), trained


def test_cosine_decay_follows_the_budget_in_steps_or_minutes():
    now = [0.0]
    assert Budget(100).progress(25) == 0.25
    timed = Budget(1000, minutes=2, clock=lambda: now[0])
    now[0] = 30.0
    assert timed.progress(10) == pytest.approx(0.25)  # time, not steps, is further on
    assert timed.progress(10, earlier_minutes=2) == pytest.approx(2.5 / 4)  # a resumed run: 2 + 2 minutes
    now[0] = 1000.0
    assert timed.progress(10) == 1.0
    assert [cosine_decay(p) for p in (0.0, 0.5, 1.0, 2.0)] == pytest.approx([1.0, 0.5, 0.0, 0.0])
    factor = [1.0]
    model = torch.nn.Linear(2, 1)
    optimizer, schedule = adam_with_warmup(model.parameters(), lr=0.1, warmup=2, decay=lambda: factor[0])
    schedule.step()
    factor[0] = 0.25
    schedule.step()
    assert schedule.get_last_lr()[0] == pytest.approx(0.1 * 0.25)  # warm-up over, times the decay


def test_budget_estimates_the_steps_the_time_limit_allows():
    now = [0.0]
    budget = Budget(1000, minutes=1, start_step=50, clock=lambda: now[0])
    assert budget.expected_steps(50) == 1000 and budget.stop_reason(50) is None  # no speed measured yet
    now[0] = 6.0  # 10 steps in 6 s; 54 s left at 5/3 steps a second
    assert budget.expected_steps(60) == 150
    assert Budget(100, minutes=1, clock=lambda: now[0]).expected_steps(60) == 100  # --steps comes first
    now[0] = 61.0
    assert budget.stop_reason(120) == "minutes" and budget.stop_reason(1000) == "steps"
    assert Budget(10).expected_steps(3) == 10


def test_an_interrupted_run_says_how_to_continue(corpus, tmp_path, capsys, monkeypatch):
    from jukesep.train import loop
    calls = []

    def stop_at_third(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return train_step(*args, **kw)

    monkeypatch.setattr(loop, "train_step", stop_at_third)
    out = tmp_path / "run"
    assert main(["train", "vqvae", "--data", str(corpus), "--out", str(out), "--stem", "bass", "--steps", "30",
                 *TINY_FLAGS]) == 130
    err = capsys.readouterr().err
    assert f"interrupted at step 2 of 30; to continue: jukesep train vqvae --resume --out {out}" in err
    assert torch.load(out / "train_state.pt", weights_only=True)["step"] == 2


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, corpus):
    from jukesep.checkpoint import save_model
    from jukesep.models import VQVAE, Encoder
    from tests.conftest import tiny_config
    root = tmp_path_factory.mktemp("bad")
    write_corpus(root / "no-valid", {"train": 1})
    (root / "junk.pt").write_bytes(b"not a model")
    save_model(root / "encoder.pt", "encoder", Encoder(tiny_config()), {})
    save_model(root / "vqvae.pt", "vqvae", VQVAE(tiny_config()), {})
    return {"CORPUS": str(corpus), "ROOT": str(root)}


TRAIN_ONLY = [f for f in TINY_FLAGS if not f.startswith(("--width", "--depth", "--emb-width", "--codebook-size"))]
BAD = {  # name: (arguments after `jukesep train`, with CORPUS and ROOT filled in; the error's words)
    "unknown stem": ("vqvae --stem voice", "unknown stem 'voice'"),
    "unknown stem, encoder": ("encoder --stem voice --vqvae ROOT/vqvae.pt", "unknown stem 'voice'"),
    "no stem": ("vqvae", "needs --stem"),
    "no --data": ("vqvae --stem bass --data=", "--data is required"),
    "--data missing": ("vqvae --stem bass --data ROOT/nothing", "no such folder"),
    "--data is a file": ("vqvae --stem bass --data ROOT/junk.pt", "no such folder"),
    "--data without a valid split": ("vqvae --stem bass --data ROOT/no-valid", "no valid/ folder"),
    "--val-split missing": ("vqvae --stem bass --val-split test", "no such split folder"),
    "no --vqvae": ("encoder --stem bass", "needs --vqvae"),
    "--vqvae missing": ("encoder --stem bass --vqvae ROOT/nothing.pt", "no such model file"),
    "--vqvae not a model": ("encoder --stem bass --vqvae ROOT/junk.pt", "not a readable model file"),
    "--vqvae an encoder": ("encoder --stem bass --vqvae ROOT/encoder.pt", "a vqvae model is needed"),
    "--init missing": ("vqvae --stem bass --init foundation:ROOT/nothing.pt", "no such model file"),
    "--init jukebox missing": ("vqvae --stem bass --init jukebox:ROOT/nothing.pt", "no such checkpoint"),
    "--init not a model": ("vqvae --stem bass --init jukebox:ROOT/junk.pt", "not a readable model file"),
    "--init an encoder": ("vqvae --stem bass --init foundation:ROOT/encoder.pt", "a vqvae model is needed"),
    "--init unknown kind": ("vqvae --stem bass --init ROOT/vqvae.pt", "--init must be scratch"),
    # was a 37-line traceback from torch's STFT padding (the seed one: 36 lines)
    "--excerpt under the STFT's": ("vqvae --stem bass --excerpt 1000", "too short for the STFT loss"),
    "--excerpt off the hop": ("vqvae --stem bass --excerpt 4100", "multiple of the model's hop length"),
    "--excerpt off the hop, encoder": ("encoder --stem bass --vqvae ROOT/vqvae.pt --excerpt 4100", "hop length"),
    "--excerpt longer than the songs": ("vqvae --stem bass --excerpt 400000", "no song of at least --excerpt 400000"),
    "--workers negative": ("vqvae --stem bass --workers -1", "--workers must be"),  # was a traceback
    "--seed negative": ("vqvae --stem bass --seed -1", "--seed must be"),  # was a traceback
    "--lr nan": ("vqvae --stem bass --lr nan", "--lr must be"),  # was a traceback
    "--linf-k negative": ("vqvae --stem bass --linf-k -5", "--linf-k must be at least 1"),  # was a traceback
    "--val-excerpts 0": ("vqvae --stem bass --val-excerpts 0", "--val-excerpts must be at least 1"),
    "--minutes negative": ("vqvae --stem bass --minutes -1", "--minutes must be"),
    "--param-ema 2": ("vqvae --stem bass --param-ema 2", "--param-ema must be"),
    "foundation --stem": ("foundation --stem vocals", "train foundation takes no --stem"),
    "foundation --vqvae": ("foundation --vqvae ROOT/vqvae.pt", "train foundation takes no --vqvae"),
    "vqvae --vqvae": ("vqvae --stem bass --vqvae ROOT/vqvae.pt", "train vqvae takes no --vqvae"),
    "--resume without a run": ("vqvae --stem bass --resume", "holds no run to resume"),
    "all: unknown stem": ("all --stems voice", "unknown stem 'voice'"),
    "all: no stem": ("all --stems ,", "--stems names no stem"),
    "all: --data without a valid split": ("all --stems bass --data ROOT/no-valid", "no valid/ folder"),
    "all: --init missing": ("all --stems bass --init foundation:ROOT/nothing.pt", "no such model file"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_flags_are_one_line_errors_that_write_nothing(bad_inputs, tmp_path, capsys, name):
    words, expected = BAD[name]
    args = words.replace("ROOT", bad_inputs["ROOT"]).split()
    out = tmp_path / "run"
    tiny = TRAIN_ONLY if "--init" in args else TINY_FLAGS  # a pretrained --init brings its architecture
    argv = ["train", args[0], "--out", str(out), "--data", bad_inputs["CORPUS"], "--steps", "1", *tiny, *args[1:]]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("jukesep: error: ") and expected in err[0], err
    assert not out.exists()
