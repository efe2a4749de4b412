"""Audio I/O, the one module that decodes, checks, resamples and writes audio files.

Audio in jukesep is `np.ndarray[C x T]` float32 in [-1, 1]. soundfile reads wav/flac/ogg/aiff;
anything else (mp3, m4a, MUSDB18's .stem.mp4, video...) goes through ffmpeg. Writing converts to
integers after an explicit clip policy, so nothing can wrap around, and every file is written
atomically (`jukesep.atomic`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from .atomic import atomic_paths
from .errors import AudioError, InvalidAudioError, SilentAudioError, UnreadableAudioError

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3", ".m4a", ".mp4",
                    ".aac", ".wma", ".webm", ".mka", ".wv", ".ape"}
FORMATS = ("wav", "flac", "mp3")
BITS = {"wav": (16, 24, 32), "flac": (16, 24), "mp3": (16,)}  # 32 = float wav; mp3 has no bit depth
CLIP_MODES = ("rescale", "clamp", "none")
SILENCE_PEAK = 1e-6  # -120 dBFS: below this there is nothing to separate
MAX_CHANNELS = 32
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class AudioInfo(NamedTuple):
    """What a file's header declares, read without decoding the audio."""
    rate: int
    channels: int
    frames: int  # per channel (estimated from the duration for compressed formats)
    streams: int  # audio streams in the container (5 in a MUSDB18 .stem.mp4)


# -- decoding ------------------------------------------------------------------------------------

def _ffmpeg(tool: str = "ffmpeg") -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise UnreadableAudioError(f"{tool} is not installed; it is needed for this file type "
                                   "(Debian/Ubuntu: apt install ffmpeg; macOS: brew install ffmpeg)")
    return exe


def _check_file(path: Path) -> None:
    if not path.exists():
        raise UnreadableAudioError(f"{path}: no such file")
    if not path.is_file():
        raise UnreadableAudioError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise UnreadableAudioError(f"{path}: empty file (0 bytes)")


def probe(path: str | os.PathLike) -> AudioInfo:
    """The rate, channels, length and stream count a file declares, without decoding it."""
    path = Path(path)
    _check_file(path)
    try:
        info = sf.info(str(path))
        return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), 1)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        pass
    probe = subprocess.run([_ffmpeg("ffprobe"), "-v", "error", "-select_streams", "a", "-show_entries",
                            "stream=sample_rate,channels,duration:format=duration", "-of", "json", str(path)],
                           capture_output=True, text=True)
    data = json.loads(probe.stdout or "{}") if probe.returncode == 0 else {}
    streams = data.get("streams") or []
    if not streams:
        raise UnreadableAudioError(f"{path}: not a readable audio file (no audio stream could be decoded)")
    try:
        rate, channels = int(streams[0]["sample_rate"]), int(streams[0]["channels"])
        seconds = float(streams[0].get("duration") or data.get("format", {}).get("duration") or 0.0)
    except (KeyError, TypeError, ValueError):
        raise UnreadableAudioError(f"{path}: not a readable audio file (its header is malformed)") from None
    return AudioInfo(rate, channels, int(round(seconds * rate)), len(streams))


def read_audio(path: str | os.PathLike, check: bool = True, start: int = 0, frames: int | None = None,
               stream: int = 0) -> tuple[np.ndarray, int]:
    """Decode `frames` samples (all when None) from sample `start` of audio stream `stream`.

    Returns (`np.ndarray[C x T]` float32, sample rate). With `check`, the audio is checked
    (`check_audio`: non-empty, finite, not silent) so callers can rely on it.
    """
    path = Path(path)
    _check_file(path)
    try:
        if stream != 0:
            raise RuntimeError("soundfile reads one stream only")
        data, rate = sf.read(str(path), start=start, frames=-1 if frames is None else frames,
                             dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(data.T)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        audio, rate = _read_ffmpeg(path, start, frames, stream)
    if check:
        check_audio(audio, rate, str(path))
    return audio, int(rate)


def _read_ffmpeg(path: Path, start: int, frames: int | None, stream: int) -> tuple[np.ndarray, int]:
    info = probe(path)
    if stream >= info.streams:
        raise UnreadableAudioError(f"{path}: has {info.streams} audio streams, stream {stream} was asked for")
    window = ["-ss", f"{start / info.rate:.6f}"] if start else []
    if frames is not None:
        window += ["-t", f"{frames / info.rate:.6f}"]
    decoded = subprocess.run([_ffmpeg(), "-v", "error", "-nostdin", *window, "-i", str(path), "-map", f"0:a:{stream}",
                              "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(info.channels), "-ar", str(info.rate),
                              "pipe:1"], capture_output=True)
    if decoded.returncode != 0:
        reason = decoded.stderr.decode(errors="replace").strip().splitlines()
        raise UnreadableAudioError(f"{path}: ffmpeg could not decode it ({reason[-1] if reason else 'unknown error'})")
    samples = np.frombuffer(decoded.stdout, dtype="<f4")
    usable = len(samples) - len(samples) % info.channels
    audio = samples[:usable].reshape(-1, info.channels).T
    if frames is None and not start:
        _check_complete(path, audio.shape[1], info)
    return np.ascontiguousarray(audio if frames is None else audio[:, :frames]), info.rate


def _check_complete(path: Path, decoded: int, info: AudioInfo) -> None:
    """A file that decodes to much less than its header declares is damaged (e.g. cut short);
    separating what remains would silently give short stems."""
    missing = info.frames - decoded
    if missing > 0.1 * info.rate + 0.01 * info.frames:
        raise UnreadableAudioError(f"{path}: damaged or truncated: it declares {info.frames / info.rate:.2f} s "
                                   f"but only {decoded / info.rate:.2f} s decode")


def check_audio(audio: np.ndarray, rate: int, name: str = "audio") -> None:
    """Raise an `AudioError` subclass for audio nothing sensible can be done with."""
    if audio.ndim != 2:
        raise InvalidAudioError(f"{name}: expected [channels x samples], got shape {audio.shape}")
    channels, length = audio.shape
    if length == 0 or channels == 0:
        raise InvalidAudioError(f"{name}: contains no audio samples")
    if channels > MAX_CHANNELS:
        raise InvalidAudioError(f"{name}: {channels} channels is more than the {MAX_CHANNELS} supported "
                                "(is the array transposed? expected [channels x samples])")
    if not 1000 <= rate <= 768000:
        raise InvalidAudioError(f"{name}: implausible sample rate {rate} Hz")
    if not np.isfinite(audio).all():
        raise InvalidAudioError(f"{name}: contains NaN or infinite samples")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise SilentAudioError(f"{name}: is silent (peak below -120 dBFS); there is nothing to separate")


def to_float(audio) -> np.ndarray:
    """Any numeric array → float32, integer PCM scaled to [-1, 1) as soundfile reads it."""
    array = np.asarray(audio)
    if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise InvalidAudioError(f"audio must be real numbers, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.unsignedinteger):
        half = 2.0 ** (8 * array.dtype.itemsize - 1)
        return ((array.astype(np.float64) - half) / half).astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return (array / 2.0 ** (8 * array.dtype.itemsize - 1)).astype(np.float32)
    return array.astype(np.float32, copy=False)


def list_audio_files(folder: Path) -> list[Path]:
    """Audio files (by extension) under `folder`, recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))


# -- sample rate and length ----------------------------------------------------------------------

def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """`np.ndarray[C x T]` (or `[T]`) → the same at `rate_out` (soxr, high quality)."""
    if rate_in == rate_out:
        return audio
    import soxr
    out = soxr.resample(np.ascontiguousarray(audio.T), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad `np.ndarray[... x T]` to exactly `length` samples."""
    if audio.shape[-1] >= length:
        return np.ascontiguousarray(audio[..., :length])
    return np.pad(audio, [(0, 0)] * (audio.ndim - 1) + [(0, length - audio.shape[-1])])


# -- writing -------------------------------------------------------------------------------------

def check_output(fmt: str, bits: int, clip: str, channels: int | None = None) -> None:
    """Raise AudioError for an output setting that cannot be honoured, before any work is done."""
    if fmt not in FORMATS:
        raise AudioError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    if clip not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {clip!r} (choose from {', '.join(CLIP_MODES)})")
    if fmt != "mp3" and bits not in BITS[fmt]:
        raise AudioError(f"{fmt} output takes {', '.join(map(str, BITS[fmt]))} bits, not {bits}"
                         + (" (32 = float is wav only)" if bits == 32 else ""))
    if clip == "none" and not (fmt == "wav" and bits == 32):
        raise AudioError("clip mode 'none' only works with float wav output (--bits 32)")
    if fmt == "mp3" and channels is not None and channels > 2:
        raise AudioError(f"mp3 holds at most 2 channels, this audio has {channels}; use wav or flac")


def pcm_gain(tracks, clip: str) -> float:
    """The gain the clip policy applies: with 'rescale', one gain for all `tracks` of a song (so
    stems keep their balance and still add up) that brings the loudest peak to full scale; else 1."""
    if clip != "rescale":
        return 1.0
    peak = max((float(np.abs(a).max()) for a in tracks if np.size(a)), default=0.0)
    return 1.0 / peak if peak > 1.0 else 1.0


def prepare_for_pcm(audio: np.ndarray, clip: str, gain: float = 1.0) -> np.ndarray:
    """Apply the clip policy: 'rescale' multiplies by `gain` (`pcm_gain`: no distortion, quieter),
    'clamp' clips samples to [-1, 1], 'none' leaves values as they are (only valid for float output)."""
    if clip == "rescale" and gain != 1.0:
        return audio * np.float32(gain)
    if clip == "clamp":
        return np.clip(audio, -1.0, 1.0)
    return audio


def _to_int(audio: np.ndarray, bits: int) -> np.ndarray:
    scale = 2 ** (bits - 1) - 1
    ints = np.round(np.clip(audio, -1.0, 1.0) * scale).astype(np.int32)
    if bits == 16:
        return ints.astype(np.int16)
    return ints << 8  # soundfile reads int32 as left-justified 32-bit PCM; PCM_24 keeps the top 24


def _write_file(path: Path, audio: np.ndarray, rate: int, fmt: str, bits: int, clip: str, gain: float) -> None:
    audio = prepare_for_pcm(np.asarray(audio, dtype=np.float32), clip, gain)
    if fmt == "mp3":
        _write_mp3(path, audio, rate)
    elif fmt == "wav" and bits == 32:
        sf.write(str(path), audio.T, rate, format="WAV", subtype="FLOAT")
    else:
        sf.write(str(path), _to_int(audio, bits).T, rate, format=fmt.upper(), subtype=f"PCM_{bits}")


def _write_mp3(path: Path, audio: np.ndarray, rate: int) -> None:
    # MP3 knows only rates up to 48 kHz; ffmpeg resamples anything else to the nearest it can hold.
    out_rate = rate if rate in MP3_RATES else min(MP3_RATES, key=lambda r: (abs(r - rate), -r))
    result = subprocess.run([_ffmpeg(), "-v", "error", "-nostdin", "-y", "-f", "f32le", "-ar", str(rate),
                             "-ac", str(audio.shape[0]), "-i", "pipe:0", "-codec:a", "libmp3lame", "-b:a",
                             "320k", "-ar", str(out_rate), "-f", "mp3", str(path)],
                            input=np.ascontiguousarray(audio.T, dtype="<f4").tobytes(), capture_output=True)
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path}: ffmpeg could not encode mp3 ({reason[-1] if reason else 'unknown'})")


def write_stems(paths_audio: dict[Path, np.ndarray], rate: int, fmt: str = "wav", bits: int = 16,
                clip: str = "rescale") -> float:
    """Write several files all-or-nothing: only when every one is complete are they renamed into
    place. Existing files are replaced whole, never left half-written. Returns the gain that the
    clip policy applied to all of them (1.0 when nothing was too loud)."""
    for audio in paths_audio.values():
        check_output(fmt, bits, clip, np.shape(audio)[0])
    paths = [Path(p) for p in paths_audio]
    gain = pcm_gain(paths_audio.values(), clip)
    try:
        with atomic_paths(paths) as temps:
            for tmp, audio in zip(temps, paths_audio.values()):
                _write_file(tmp, audio, rate, fmt, bits, clip, gain)
    except sf.LibsndfileError as exc:
        raise AudioError(f"cannot write {paths[0].parent}: {exc}") from None
    except OSError as exc:
        raise AudioError(f"cannot write {exc.filename or paths[0].parent}: {exc.strerror or exc}") from None
    return gain


def write_audio(path, audio: np.ndarray, rate: int, fmt: str | None = None, bits: int = 16,
                clip: str = "rescale") -> float:
    """Write one file atomically; the format defaults to the file's extension. Returns the clip gain."""
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    return write_stems({Path(path): audio}, rate, fmt, bits, clip)
