"""Hostile-but-fair input to the CLI and the API: every case ends in a clean one-line error before
any work, or in correct output; Ctrl-C stops at once and leaves nothing half-written."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jukesep import Separator
from jukesep.checkpoint import load_model, save_model
from jukesep.errors import AudioError, CheckpointError
from tests.conftest import RATE, music, random_separator, tiny_config


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "jukesep", *map(str, args)], capture_output=True, text=True,
                          **kwargs)


def files_under(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("flags,message", [
    (["--stems", "vocals,vocals"], "repeat"),
    (["--segment", "nan"], "segment"), (["--segment", "inf"], "segment"), (["--segment", "0.00001"], "segment"),
    (["--context", "nan"], "context"), (["--context", "inf"], "context"),
    (["--format", "flac", "--bits", "32"], "flac output takes 16, 24"),
    (["--format", "mp3", "--bits", "24"], "apply to mp3"), (["--mp3", "--int24"], "apply to mp3"),
    (["--mp3", "--mp3-bitrate", "100"], "invalid choice"),
    (["--clip", "none"], "only works with float wav"),
    (["--jobs", "0"], "--jobs"),
    (["--two-stems", "guitar"], "stem guitar not in this model"),
])
def test_bad_options_fail_before_any_work(tmp_path, tiny_model_file, song, flags, message):
    out = tmp_path / "out"
    result = run_cli("separate", song, "--model", tiny_model_file, "-o", out, *flags)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr  # 2: a usage error
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert not [p for p in files_under(out) if "." in p.rsplit("/", 1)[-1]]  # no file written at all


def test_truncated_flac_is_an_error_not_short_stems(tmp_path, tiny_model_file):
    full = tmp_path / "full.flac"
    sf.write(full, music(3.0).T, RATE)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    result = run_cli("separate", cut, "--model", tiny_model_file, "-o", tmp_path / "out")
    assert result.returncode == 1 and "damaged or truncated" in result.stderr and "Traceback" not in result.stderr
    assert files_under(tmp_path / "out") in ([], ["tiny"])


def test_loud_input_keeps_the_stems_balance(tmp_path, tiny_model_file):
    song = tmp_path / "loud.wav"
    sf.write(song, 7.35 * music(1.0).T / np.abs(music(1.0)).max(), RATE, subtype="FLOAT")
    result = run_cli("separate", song, "--model", tiny_model_file, "-o", tmp_path / "out", "--two-stems", "vocals")
    assert result.returncode == 0 and "lowered by" in result.stderr
    vocals, _ = sf.read(tmp_path / "out/tiny/loud/vocals.wav", dtype="float32")
    rest, _ = sf.read(tmp_path / "out/tiny/loud/no_vocals.wav", dtype="float32")
    mixture, _ = sf.read(song, dtype="float32")
    gain = np.abs(mixture).max() and (np.abs(vocals + rest).max() / np.abs(mixture).max())
    np.testing.assert_allclose(vocals + rest, gain * mixture, atol=2e-4)  # one gain: they still add up


def test_oversized_model_config_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.pt"
    save_model(path, "separator", random_separator(("vocals",)))
    data = torch.load(path, weights_only=True)
    data["config"]["stems"]["vocals"]["width"] = 65536
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="width must be an integer from 1 to") as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_ctrl_c_stops_at_once_and_writes_nothing(tmp_path):
    model = tmp_path / "slow.pt"
    save_model(model, "separator", random_separator(cfg=tiny_config(width=32, depth=4)))
    song = tmp_path / "long.wav"
    sf.write(song, music(240.0).T, RATE)
    out = tmp_path / "out"
    # Ctrl-C reaches the program as at a terminal even when the tests run in a background job (`... &`
    # in a script), which starts its children with SIGINT ignored.
    proc = subprocess.Popen([sys.executable, "-m", "jukesep", "separate", str(song), "--model", str(model), "-o",
                             str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6)  # imports, model load, decoding: the separation is under way by then
    assert proc.poll() is None, "the separation finished before the interrupt; make the song longer"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    waited = time.monotonic() - sent
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    assert waited < 2.0, waited
    assert files_under(out) in ([], ["tiny"], ["slow"])  # at most the empty model folder


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(["float32", "float64", "int16", "int32", "uint8", "bool", "complex64"]),
       channels=st.integers(0, 3), frames=st.integers(0, 3000), one_d=st.booleans(),
       rate=st.sampled_from([8000, 22050, 44100, 48000, 96000, 999, 10**6]),
       special=st.sampled_from([None, "nan", "inf", "silent", "huge"]), seed=st.integers(0, 2**16))
def test_separate_takes_any_array_or_refuses_it_cleanly(dtype, channels, frames, one_d, rate, special, seed):
    rng = np.random.default_rng(seed)
    audio = rng.uniform(-1, 1, size=(frames,) if one_d else (channels, frames))
    if special == "nan" and audio.size:
        audio.flat[rng.integers(audio.size)] = np.nan
    elif special == "inf" and audio.size:
        audio.flat[rng.integers(audio.size)] = np.inf
    elif special == "silent":
        audio[:] = 0
    elif special == "huge":
        audio = audio * 1e30
    if np.issubdtype(np.dtype(dtype), np.integer) or dtype == "bool":
        info = np.iinfo(dtype) if dtype != "bool" else None
        audio = audio > 0 if info is None else np.clip(np.nan_to_num(audio) * info.max, info.min, info.max)
    audio = audio.astype(dtype)
    try:
        out = SEPARATOR.separate(audio, rate)
    except AudioError as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    assert set(out) == set(SEPARATOR.stems)
    for stem in out.values():
        assert stem.shape == audio.shape and stem.dtype == np.float32 and np.isfinite(stem).all()


SEPARATOR = Separator(random_separator(("vocals", "bass")), device="cpu")


def test_the_property_test_sees_both_outcomes():
    ok = SEPARATOR.separate(music(0.1), RATE)
    assert ok["vocals"].shape == (2, int(0.1 * RATE))
    with pytest.raises(AudioError):
        SEPARATOR.separate(np.zeros((2, 100), np.float32), RATE)


def test_process_is_not_left_with_part_files_on_error(tmp_path, tiny_model_file, song, monkeypatch):
    import jukesep.audio as audio
    made = []

    class FullDisk(audio.AudioWriter):
        def write(self, block, last=False):
            made.append(self)
            if len(made) == 3:  # the third output: the disk is full
                raise OSError(28, "No space left on device", "stem.wav")
            super().write(block, last)

    monkeypatch.setattr(audio, "AudioWriter", FullDisk)
    from jukesep.cli import main
    assert main(["separate", str(song), "--model", str(tiny_model_file), "-o", str(tmp_path / "out")]) == 1
    assert files_under(tmp_path / "out") == ["tiny"]  # no song folder, no stem, no scratch file


def test_block_by_block_path_applies_the_header_rules(tmp_path, tiny_model_file):
    many = tmp_path / "many.wav"
    sf.write(many, np.tile(music(0.3).T, (1, 20)), RATE)  # 40 channels
    result = run_cli("separate", many, "--model", tiny_model_file, "-o", tmp_path / "out")
    assert result.returncode == 1 and "40 channels is more than the 32 supported" in result.stderr
    assert files_under(tmp_path / "out") in ([], ["tiny"])
