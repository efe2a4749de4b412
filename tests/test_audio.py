import numpy as np
import pytest
import soundfile as sf

from jukesep.audio import read_audio, write_audio, write_stems
from jukesep.errors import AudioError
from tests.conftest import RATE, music


def encode_with_pyav(path, audio, rate, codec):
    """A compressed file (m4a/aac, opus...) made with PyAV: no system ffmpeg is needed."""
    import av
    layout = "stereo" if audio.shape[0] == 2 else "mono"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio, np.float32), format="fltp", layout=layout)
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize("ext,bits,tol", [("wav", 16, 1e-4), ("wav", 24, 1e-6), ("wav", 32, 0),
                                          ("flac", 16, 1e-4), ("flac", 24, 1e-6)])
def test_write_read_round_trip(tmp_path, ext, bits, tol):
    audio = music(0.5)
    write_audio(tmp_path / f"x.{ext}", audio, RATE, bits=bits)
    back, rate = read_audio(tmp_path / f"x.{ext}")
    assert rate == RATE and back.shape == audio.shape
    np.testing.assert_allclose(back, audio, atol=tol)
    if ext == "wav":
        assert sf.info(str(tmp_path / f"x.{ext}")).subtype == {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}[bits]


@pytest.mark.parametrize("ext", ["ogg", "aiff"])
def test_soundfile_formats(tmp_path, ext):
    sf.write(tmp_path / f"x.{ext}", music(0.5).T, RATE)
    audio, rate = read_audio(tmp_path / f"x.{ext}")
    assert audio.shape[0] == 2 and rate == RATE


def test_mp3_m4a_and_opus_without_system_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no ffmpeg binary can be found: PyAV does it all
    write_audio(tmp_path / "x.mp3", music(1.0), RATE, bitrate=192)
    audio, rate = read_audio(tmp_path / "x.mp3")
    assert rate == RATE and audio.shape == (2, RATE)
    assert np.corrcoef(audio[0, 2000:-2000], music(1.0)[0, 2000:-2000])[0, 1] > 0.99
    encode_with_pyav(tmp_path / "x.m4a", music(1.0), RATE, "aac")
    encode_with_pyav(tmp_path / "x.opus", music(1.0, 48000), 48000, "libopus")
    for name in ("x.m4a", "x.opus"):
        audio, rate = read_audio(tmp_path / name)
        assert audio.shape[0] == 2 and np.abs(audio).max() > 0.1 and abs(audio.shape[1] - rate) < 3000


def test_windows_of_compressed_files_match_the_whole(tmp_path):
    write_audio(tmp_path / "x.mp3", music(3.0), RATE)
    whole, _ = read_audio(tmp_path / "x.mp3")
    part, _ = read_audio(tmp_path / "x.mp3", check=False, start=80000, frames=20000)
    np.testing.assert_allclose(part, whole[:, 80000:100000], atol=1e-6)


def test_clipping_never_wraps(tmp_path):
    loud = np.array([[0.5, 1.5, -2.0, 0.25]], np.float32).repeat(100, axis=1)
    write_audio(tmp_path / "clamp.wav", loud, RATE, clip="clamp")
    back, _ = read_audio(tmp_path / "clamp.wav")
    assert back.max() > 0.99 and back.min() < -0.99  # clipped at full scale, not wrapped negative
    assert back[0, 150] > 0.99 and back[0, 250] < -0.99
    write_audio(tmp_path / "rescale.wav", loud, RATE, clip="rescale")
    back, _ = read_audio(tmp_path / "rescale.wav")
    np.testing.assert_allclose(back, loud / 2.0, atol=1e-4)
    write_audio(tmp_path / "float.wav", loud, RATE, bits=32, clip="none")
    np.testing.assert_allclose(read_audio(tmp_path / "float.wav")[0], loud)
    with pytest.raises(AudioError, match="only works with float wav"):
        write_audio(tmp_path / "x.wav", loud, RATE, bits=16, clip="none")


def test_existing_file_is_replaced_whole_or_not_at_all(tmp_path):
    target = tmp_path / "x.wav"
    target.write_bytes(b"old")
    with pytest.raises(AudioError):
        write_stems({target: music(0.1), tmp_path / "y.wav": music(0.1, channels=40)}, RATE, "mp3")
    assert target.read_bytes() == b"old" and not (tmp_path / "y.wav").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]  # no temporary files left
    write_audio(target, music(0.1), RATE)
    assert read_audio(target)[0].shape == (2, 4410)


@pytest.mark.parametrize("content,message", [(None, "no such file"), (b"", "empty file"),
                                             (b"RIFF\x00\x00garbage" * 50, "not a readable audio file")])
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message):
        read_audio(path)


def test_silent_file(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros((4410, 2)), RATE)
    with pytest.raises(AudioError, match="silent"):
        read_audio(tmp_path / "silence.wav")
    assert read_audio(tmp_path / "silence.wav", check=False)[0].shape == (2, 4410)


def test_mp3_of_96k_audio_is_written_at_48k(tmp_path):
    write_audio(tmp_path / "x.mp3", music(0.5, 96000), 96000)
    audio, rate = read_audio(tmp_path / "x.mp3")
    assert rate == 48000 and audio.shape[0] == 2
    with pytest.raises(AudioError, match="at most 2 channels"):
        write_audio(tmp_path / "y.mp3", music(0.5, channels=6), RATE)


def test_eight_channel_compressed_audio(tmp_path):
    # PyAV lists a ninth plane for 8-channel planar frames; reading it crashed the process
    audio = np.concatenate([music(0.5, channels=2, seed=s) for s in range(4)])
    import av
    with av.open(str(tmp_path / "x.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=RATE, layout="7.1")
        interleaved = np.ascontiguousarray(audio.T).reshape(1, -1)  # PyAV's planar path has the same bug
        frame = av.AudioFrame.from_ndarray(interleaved, format="flt", layout="7.1")
        frame.sample_rate = RATE
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    back, rate = read_audio(tmp_path / "x.m4a")
    assert back.shape[0] == 8 and rate == RATE and np.abs(back).max() > 0.1


def test_max_samples_stops_the_decode(tmp_path):
    from jukesep.errors import TooLongAudioError
    write_audio(tmp_path / "x.mp3", music(3.0), RATE)
    write_audio(tmp_path / "x.wav", music(3.0), RATE)
    for name in ("x.mp3", "x.wav"):
        assert read_audio(tmp_path / name, max_samples=2 * 4 * RATE)[0].shape == (2, 3 * RATE)
        with pytest.raises(TooLongAudioError, match="decodes to more than 2.0 s"):
            read_audio(tmp_path / name, max_samples=2 * 2 * RATE)
