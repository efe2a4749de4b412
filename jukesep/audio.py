"""Reading and writing audio. Audio in jukesep is `np.ndarray[C x T]` float32 in [-1, 1].

soundfile reads wav/flac/ogg/aiff; anything else (mp3, m4a, video...) goes through ffmpeg.
Writing converts to integers ourselves after an explicit clip policy, so nothing can wrap around.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import AudioError

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3", ".m4a", ".mp4",
                    ".aac", ".wma", ".webm", ".mka", ".wv", ".ape"}
FORMATS = ("wav", "flac", "mp3")
WAV_BITS = (16, 24, 32)  # 32 = float
CLIP_MODES = ("rescale", "clamp", "none")
SILENCE_PEAK = 1e-6  # -120 dBFS: below this there is nothing to separate
MAX_CHANNELS = 32
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def _ffmpeg(tool: str = "ffmpeg") -> str:
    exe = shutil.which(tool)
    if exe is None:
        raise AudioError(f"{tool} is not installed; it is needed for this file type "
                         "(Debian/Ubuntu: apt install ffmpeg; macOS: brew install ffmpeg)")
    return exe


def read_audio(path: str | os.PathLike, check: bool = True) -> tuple[np.ndarray, int]:
    """Decode any audio file. Returns (`np.ndarray[C x T]` float32, sample rate). With `check`,
    it is validated (non-empty, finite, not silent) so callers can rely on it."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if not path.is_file():
        raise AudioError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(data.T)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        audio, rate = _read_ffmpeg(path)
    if check:
        validate_audio(audio, rate, str(path))
    return audio, int(rate)


def _read_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    probe = subprocess.run([_ffmpeg("ffprobe"), "-v", "error", "-select_streams", "a:0", "-show_entries",
                            "stream=sample_rate,channels", "-of", "json", str(path)],
                           capture_output=True, text=True)
    streams = json.loads(probe.stdout or "{}").get("streams") if probe.returncode == 0 else None
    if not streams:
        raise AudioError(f"{path}: not a readable audio file (no audio stream could be decoded)")
    rate, channels = int(streams[0]["sample_rate"]), int(streams[0]["channels"])
    decoded = subprocess.run([_ffmpeg(), "-v", "error", "-nostdin", "-i", str(path), "-map", "0:a:0",
                              "-f", "f32le", "-acodec", "pcm_f32le", "-ac", str(channels), "-ar", str(rate),
                              "pipe:1"], capture_output=True)
    if decoded.returncode != 0:
        reason = decoded.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path}: ffmpeg could not decode it ({reason[-1] if reason else 'unknown error'})")
    samples = np.frombuffer(decoded.stdout, dtype="<f4")
    usable = len(samples) - len(samples) % channels
    return np.ascontiguousarray(samples[:usable].reshape(-1, channels).T), rate


def validate_audio(audio: np.ndarray, rate: int, name: str = "audio") -> None:
    """Raise AudioError for audio nothing sensible can be done with."""
    if audio.ndim != 2:
        raise AudioError(f"{name}: expected [channels x samples], got shape {audio.shape}")
    channels, length = audio.shape
    if length == 0 or channels == 0:
        raise AudioError(f"{name}: contains no audio samples")
    if channels > MAX_CHANNELS:
        raise AudioError(f"{name}: {channels} channels is more than the {MAX_CHANNELS} supported "
                         "(is the array transposed? expected [channels x samples])")
    if not 1000 <= rate <= 768000:
        raise AudioError(f"{name}: implausible sample rate {rate} Hz")
    if not np.isfinite(audio).all():
        raise AudioError(f"{name}: contains NaN or infinite samples")
    if float(np.abs(audio).max()) < SILENCE_PEAK:
        raise AudioError(f"{name}: is silent (peak below -120 dBFS); there is nothing to separate")


def prepare_for_pcm(audio: np.ndarray, clip: str) -> np.ndarray:
    """Apply the clip policy: 'rescale' divides the whole signal by its peak if it exceeds 1
    (no distortion, quieter), 'clamp' clips samples to [-1, 1], 'none' leaves values as they are
    (only valid for float output)."""
    if clip not in CLIP_MODES:
        raise AudioError(f"unknown clip mode {clip!r} (choose from {', '.join(CLIP_MODES)})")
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if clip == "rescale" and peak > 1.0:
        return audio / peak
    if clip == "clamp":
        return np.clip(audio, -1.0, 1.0)
    return audio


def _to_int(audio: np.ndarray, bits: int) -> np.ndarray:
    scale = 2 ** (bits - 1) - 1
    ints = np.round(np.clip(audio, -1.0, 1.0) * scale).astype(np.int32)
    if bits == 16:
        return ints.astype(np.int16)
    return ints << 8  # soundfile reads int32 as left-justified 32-bit PCM; PCM_24 keeps the top 24


def _write_file(path: Path, audio: np.ndarray, rate: int, fmt: str, bits: int, clip: str) -> None:
    if fmt not in FORMATS:
        raise AudioError(f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})")
    if fmt == "wav" and bits not in WAV_BITS:
        raise AudioError(f"wav output takes 16, 24 or 32 (float) bits, not {bits}")
    if clip == "none" and not (fmt == "wav" and bits == 32):
        raise AudioError("clip mode 'none' only works with float wav output (--bits 32)")
    audio = prepare_for_pcm(np.asarray(audio, dtype=np.float32), clip)
    if fmt == "mp3":
        _write_mp3(path, audio, rate)
    elif fmt == "wav" and bits == 32:
        sf.write(str(path), audio.T, rate, format="WAV", subtype="FLOAT")
    else:
        bits = 16 if (fmt == "flac" and bits == 32) else bits
        sf.write(str(path), _to_int(audio, bits).T, rate, format=fmt.upper(), subtype=f"PCM_{bits}")


def _write_mp3(path: Path, audio: np.ndarray, rate: int) -> None:
    if audio.shape[0] > 2:
        raise AudioError(f"mp3 holds at most 2 channels, this audio has {audio.shape[0]}; use wav or flac")
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
                clip: str = "rescale") -> None:
    """Write several files all-or-nothing: each goes to a temporary name beside its target, and
    only when every one is complete are they renamed into place. Existing files are replaced
    whole, never left half-written."""
    temps: dict[Path, Path] = {}
    try:
        for path, audio in paths_audio.items():
            path = Path(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".{fmt}.part", dir=path.parent)
            os.close(fd)
            temps[path] = Path(tmp)
            _write_file(Path(tmp), audio, rate, fmt, bits, clip)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    except OSError as exc:
        raise AudioError(f"cannot write {exc.filename or 'output'}: {exc.strerror or exc}") from None
    finally:
        for tmp in temps.values():
            tmp.unlink(missing_ok=True)


def write_audio(path, audio: np.ndarray, rate: int, fmt: str | None = None, bits: int = 16,
                clip: str = "rescale") -> None:
    """Write one file atomically; the format defaults to the file's extension."""
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    write_stems({Path(path): audio}, rate, fmt, bits, clip)


def list_audio_files(folder: Path) -> list[Path]:
    """Audio files (by extension) under `folder`, recursively, sorted."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not p.name.startswith("."))
