import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from jukesep.audio import read_audio
from jukesep.checkpoint import save_model
from jukesep.cli import main
from jukesep.models import VQVAE
from tests.conftest import RATE, music, tiny_config

STEMS = {"vocals", "drums", "bass", "other"}


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jukesep", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def outputs(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_separate_smoke_subprocess(tmp_path, tiny_model_file, song):
    result = run_cli("separate", song, "-o", tmp_path / "out", "--model", tiny_model_file)
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path / "out") == [f"tiny/song/{s}.wav" for s in sorted(STEMS)]
    audio, rate = read_audio(tmp_path / "out/tiny/song/vocals.wav", check=False)
    assert rate == RATE and audio.shape == (2, int(1.5 * RATE))


def test_folder_formats_and_stem_choices(tmp_path, tiny_model_file):
    (tmp_path / "in").mkdir()
    sf.write(tmp_path / "in/a.flac", music(0.5).T, RATE)
    sf.write(tmp_path / "in/b.wav", music(0.4, 48000, 1).T, 48000)
    out = tmp_path / "out"
    assert main(["separate", str(tmp_path / "in"), "-o", str(out), "--model", str(tiny_model_file),
                 "--stems", "bass,drums", "--format", "flac", "--bits", "24"]) == 0
    assert outputs(out) == ["tiny/a/bass.flac", "tiny/a/drums.flac", "tiny/b/bass.flac", "tiny/b/drums.flac"]
    assert sf.info(str(out / "tiny/b/bass.flac")).samplerate == 48000
    assert main(["separate", str(tmp_path / "in/a.flac"), "-o", str(out), "--model", str(tiny_model_file),
                 "--two-stems", "vocals", "--bits", "32", "--clip", "none"]) == 0
    vocals, _ = read_audio(out / "tiny/a/vocals.wav", check=False)
    rest, _ = read_audio(out / "tiny/a/no_vocals.wav", check=False)
    mix, _ = read_audio(tmp_path / "in/a.flac")
    np.testing.assert_allclose(vocals + rest, mix, atol=1e-6)


def test_six_channels_8k_and_96k_work(tmp_path, tiny_model_file):
    for name, rate, channels in (("six", RATE, 6), ("low", 8000, 2), ("high", 96000, 2)):
        sf.write(tmp_path / f"{name}.wav", music(0.5, rate, channels).T, rate)
    assert main(["separate", *(str(tmp_path / f"{n}.wav") for n in ("six", "low", "high")), "-o",
                 str(tmp_path / "out"), "--model", str(tiny_model_file), "--stems", "vocals"]) == 0
    for name, rate, channels in (("six", RATE, 6), ("low", 8000, 2), ("high", 96000, 2)):
        info = sf.info(str(tmp_path / f"out/tiny/{name}/vocals.wav"))
        assert (info.samplerate, info.channels, info.frames) == (rate, channels, int(0.5 * rate))


def bad_input(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    if kind == "corrupt":
        path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "silent":
        sf.write(path, np.zeros((44100, 2)), RATE)
    elif kind == "short":
        sf.write(path, np.full((1, 2), 0.3), 8000)
    elif kind == "nan":
        data = music(0.2).T.copy()
        data[100, 0] = np.nan
        sf.write(path, data, RATE, subtype="FLOAT")
    return path  # "missing": never written


@pytest.mark.parametrize("kind,message", [("missing", "no such file"), ("corrupt", "not a readable audio"),
                                          ("empty", "empty file"), ("silent", "silent"),
                                          ("short", "too short"), ("nan", "NaN")])
def test_bad_input_one_line_error_no_output(tmp_path, tiny_model_file, kind, message):
    result = run_cli("separate", bad_input(tmp_path, kind), "-o", tmp_path / "out", "--model", tiny_model_file)
    assert result.returncode == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("jukesep:")]
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert outputs(tmp_path / "out") == []


def test_bad_file_is_skipped_others_are_done(tmp_path, tiny_model_file, song):
    bad = bad_input(tmp_path, "corrupt")
    result = run_cli("separate", bad, song, "-o", tmp_path / "out", "--model", tiny_model_file)
    assert result.returncode == 1 and "skipped" in result.stderr
    assert len(outputs(tmp_path / "out")) == 4


def test_unwritable_output_folder(tmp_path, tiny_model_file, song):
    (tmp_path / "file").write_text("not a folder")
    result = run_cli("separate", song, "-o", tmp_path / "file" / "out", "--model", tiny_model_file)
    assert result.returncode == 1 and "not writable" in result.stderr and "Traceback" not in result.stderr


def test_existing_output_is_replaced_atomically(tmp_path, tiny_model_file, song):
    target = tmp_path / "out/tiny/song/vocals.wav"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    assert main(["separate", str(song), "-o", str(tmp_path / "out"), "--model", str(tiny_model_file)]) == 0
    assert read_audio(target, check=False)[0].shape == (2, int(1.5 * RATE))
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("problem", ["wrong_arch", "garbage", "vqvae_kind", "missing"])
def test_bad_model_files(tmp_path, song, problem):
    model = tmp_path / "m.pt"
    if problem == "wrong_arch":
        save_model(model, "vqvae", VQVAE(tiny_config()))
        data = torch.load(model, weights_only=True)
        data.update(kind="separator", config={"stems": {"vocals": dict(data["config"], depth=2)}},
                    state={f"stems.vocals.{k}": v for k, v in data["state"].items()})
        torch.save(data, model)
    elif problem == "garbage":
        model.write_bytes(b"\x00" * 1000)
    elif problem == "vqvae_kind":
        save_model(model, "vqvae", VQVAE(tiny_config()))
    result = run_cli("separate", song, "-o", tmp_path / "out", "--model", model)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists() or outputs(tmp_path / "out") == []


def test_unknown_model_name(tmp_path, song):
    result = run_cli("separate", song, "-o", tmp_path / "out", "--model", "no-such-model")
    assert result.returncode == 1 and "no such model file or shipped model name" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_bad_stem_name(tmp_path, song, tiny_model_file):
    result = run_cli("separate", song, "--model", tiny_model_file, "--stems", "piano", "-o", tmp_path)
    assert result.returncode == 1 and "stem piano not in this model" in result.stderr


def test_info(tiny_model_file, capsys):
    assert main(["info", str(tiny_model_file)]) == 0
    text = capsys.readouterr().out
    assert "stems:    vocals, drums, bass, other" in text and "trained_on: nothing" in text
    assert "width=8" in text


def test_demucs_habits_work(tmp_path, tiny_model_file, song):
    out = tmp_path / "out"
    result = run_cli(song, "-n", tiny_model_file, "-d", "cpu", "--mp3", "--mp3-bitrate", "192", "--two-stems",
                     "vocals", "-o", out, "--shifts", "1", "--clip-mode", "clamp")
    assert result.returncode == 0, result.stderr
    assert outputs(out) == ["tiny/song/no_vocals.mp3", "tiny/song/vocals.mp3"]
    assert read_audio(out / "tiny/song/vocals.mp3", check=False)[0].shape[0] == 2
    result = run_cli("separate", song, "-n", tiny_model_file, "--int24", "-o", out, "--filename",
                     "{track}-{stem}.{ext}", "--stems", "bass")
    assert result.returncode == 0, result.stderr
    assert sf.info(str(out / "tiny/song-bass.wav")).subtype == "PCM_24"
    result = run_cli("separate", song, "-n", tiny_model_file, "--float32", "-o", out, "--stems", "bass")
    assert sf.info(str(out / "tiny/song/bass.wav")).subtype == "FLOAT"


def test_same_named_songs_never_overwrite_each_other(tmp_path, tiny_model_file):
    for folder in ("a", "b"):
        (tmp_path / "in" / folder).mkdir(parents=True)
        sf.write(tmp_path / "in" / folder / "song.wav", music(0.3).T, RATE)
    out = tmp_path / "out"
    result = run_cli("separate", tmp_path / "in", "-n", tiny_model_file, "-o", out, "--stems", "vocals")
    assert result.returncode == 1 and "would both be written to song/vocals.wav" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (out / "tiny").exists()
    result = run_cli("separate", tmp_path / "in", "-n", tiny_model_file, "-o", out, "--stems", "vocals",
                     "--filename", "{folder}/{track}/{stem}.{ext}")
    assert result.returncode == 0, result.stderr
    assert outputs(out) == ["tiny/a/song/vocals.wav", "tiny/b/song/vocals.wav"]


def test_output_folder_is_named_by_the_model_not_its_file(tmp_path, song):
    from tests.conftest import random_separator
    model = tmp_path / "separator.pt"
    save_model(model, "separator", random_separator(), {"run": "runs/corpus-w16"})
    assert main(["separate", str(song), "--model", str(model), "-o", str(tmp_path / "out"), "--stems", "bass"]) == 0
    assert outputs(tmp_path / "out") == ["corpus-w16/song/bass.wav"]


def test_outputs_follow_the_umask(tmp_path, tiny_model_file, song):
    import os
    old = os.umask(0o022)
    try:
        assert main(["separate", str(song), "--model", str(tiny_model_file), "-o", str(tmp_path / "out")]) == 0
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "out").rglob("*.wav")} == {"0o644"}


def test_unknown_model_lists_shipped_names(tmp_path, song):
    result = run_cli("separate", song, "-n", "htdemucs", "-o", tmp_path / "out")
    assert result.returncode == 1 and "shipped: default" in result.stderr


def test_separate_logs_progress_when_not_on_a_terminal_and_reads_m4a_without_ffmpeg(tmp_path, tiny_model_file):
    import os

    from tests.test_audio import encode_with_pyav
    song = tmp_path / "song.m4a"
    encode_with_pyav(song, music(1.0), RATE, "aac")
    env = dict(os.environ, JUKESEP_LOG_INTERVAL="0", PATH="/nonexistent")  # no ffmpeg can be found
    result = subprocess.run([sys.executable, "-m", "jukesep", "separate", str(song), "--mp3", "-n",
                             str(tiny_model_file), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "song.m4a: 1.0/1.0 s (" in result.stderr  # periodic lines in seconds of audio, not a silent wait
    assert outputs(tmp_path / "out") == [f"tiny/song/{s}.mp3" for s in sorted(STEMS)]


def test_info_system_says_what_precision_auto_picks(capsys, monkeypatch):
    from jukesep import hardware
    assert main(["info", "--system", "-d", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "precision (auto):" in text and "cpu flags:" in text
    monkeypatch.undo()  # the real choice, not conftest's float32 default
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    import torch
    assert hardware.choose_precision(torch.device("cpu")) == "bfloat16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")  # a cap below AVX512-BF16: oneDNN would emulate bf16
    assert hardware.choose_precision(torch.device("cpu")) == "float32"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert hardware.choose_precision(torch.device("cpu")) == "bfloat16"
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2"}))
    assert hardware.choose_precision(torch.device("cpu")) == "float32"


def test_output_to_a_closed_pipe_ends_quietly():
    """`jukesep info default | true`: the reader leaves first; no error message, the SIGPIPE status."""
    reader = subprocess.run(f"{sys.executable} -m jukesep info default | true; echo ${{PIPESTATUS[0]}} >&2",
                            shell=True, executable="/bin/bash", capture_output=True, text=True)
    assert reader.stderr.strip() == "141", reader.stderr
