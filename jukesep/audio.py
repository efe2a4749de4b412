"""Audio I/O, the one module that decodes, checks, resamples and writes audio files.

Audio in jukesep is `np.ndarray[C x T]` float32 in [-1, 1]. soundfile reads and writes
wav/flac/ogg/aiff; PyAV (FFmpeg's libraries, shipped in its wheel: no system ffmpeg) decodes
everything else (mp3, m4a/aac, opus, MUSDB18's .stem.mp4, video) and encodes mp3. Writing converts to
integers after an explicit clip policy, so nothing can wrap around, and every file is written
atomically (`jukesep.atomic`).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

from .atomic import atomic_path, atomic_paths
from .errors import AudioError, InvalidAudioError, SilentAudioError, TooLongAudioError, UnreadableAudioError

AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".aif", ".aiff", ".mp3", ".m4a", ".mp4",
                    ".aac", ".wma", ".webm", ".mka", ".wv", ".ape"}
FORMATS = ("wav", "flac", "mp3")
BITS = {"wav": (16, 24, 32), "flac": (16, 24), "mp3": (16,)}  # 32 = float wav; mp3 has no bit depth
CLIP_MODES = ("rescale", "clamp", "none")
SILENCE_PEAK = 1e-6  # -120 dBFS: below this there is nothing to separate
MAX_CHANNELS = 32
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MP3_BITRATES = (96, 128, 160, 192, 224, 256, 320)  # kbit/s
AV_SAMPLE_TYPES = {"u8": "u1", "s16": "<i2", "s32": "<i4", "s64": "<i8", "flt": "<f4", "dbl": "<f8"}
SEEK_PREROLL = 0.5  # seconds decoded and dropped before a seek target (MDCT overlap)
MP3_BLOCK = 1152 * 64  # samples handed to the encoder at a time
ENCODED = {"mp3": ("mp3", "libmp3lame", MP3_RATES), "opus": ("ogg", "libopus", (48000,))}  # container, codec, rates
SOUNDFILE_EXTENSIONS = {".wav", ".wave", ".flac", ".ogg", ".oga", ".aif", ".aiff", ".aifc", ".au", ".caf", ".w64"}


class AudioInfo(NamedTuple):
    """What a file's header declares, read without decoding the audio."""
    rate: int
    channels: int
    frames: int  # per channel (estimated from the duration for compressed formats)
    streams: int  # audio streams in the container (5 in a MUSDB18 .stem.mp4)


# -- decoding ------------------------------------------------------------------------------------

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
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        try:
            info = sf.info(str(path))
            return AudioInfo(int(info.samplerate), int(info.channels), int(info.frames), 1)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
            pass  # a misnamed file: let FFmpeg's demuxers have a go
    with _open_av(path) as container:
        streams = container.streams.audio
        first = streams[0]
        rate, channels = first.codec_context.sample_rate, first.codec_context.channels
        if first.duration is not None and first.time_base is not None:
            seconds = float(first.duration * first.time_base)
        else:
            seconds = (container.duration or 0) / 1_000_000  # av.time_base
        if not rate or not channels:
            raise UnreadableAudioError(f"{path}: not a readable audio file (its header is malformed)")
        return AudioInfo(int(rate), int(channels), int(round(seconds * rate)), len(streams))


@contextmanager
def _open_av(path: Path):
    """`av.open` with its failures as one-line UnreadableAudioError; at least one audio stream."""
    import av
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError, OSError) as exc:
        raise UnreadableAudioError(f"{path}: not a readable audio file ({_reason(exc)})") from None
    try:
        if not container.streams.audio:
            raise UnreadableAudioError(f"{path}: not a readable audio file (no audio stream could be decoded)")
        yield container
    except av.FFmpegError as exc:
        raise UnreadableAudioError(f"{path}: could not be decoded ({_reason(exc)})") from None
    finally:
        container.close()


def av_errors() -> tuple:
    """PyAV's exception types, imported only when something is written or decoded with it."""
    import av
    return (av.FFmpegError,)



def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def read_audio(path: str | os.PathLike, check: bool = True, start: int = 0, frames: int | None = None,
               stream: int = 0, max_samples: int | None = None) -> tuple[np.ndarray, int]:
    """Decode `frames` samples (all when None) from sample `start` of audio stream `stream`.

    Returns (`np.ndarray[C x T]` float32, sample rate). With `check`, the audio is checked
    (`check_audio`: non-empty, finite, not silent) so callers can rely on it. With `max_samples`,
    a file that decodes to more samples (all channels together) raises TooLongAudioError as soon
    as decoding passes that many, whatever its header claims: memory stays bounded.
    """
    path = Path(path)
    _check_file(path)
    try:
        if stream != 0 or path.suffix.lower() not in SOUNDFILE_EXTENSIONS:
            raise RuntimeError("not for soundfile")
        if max_samples is not None:  # libsndfile decodes no more than the frames its header declares
            check_size(path, probe(path), max_samples, None)
        data, rate = sf.read(str(path), start=start, frames=-1 if frames is None else frames,
                             dtype="float32", always_2d=True)
        audio = np.ascontiguousarray(data.T)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        audio, rate = _read_av(path, start, frames, stream, max_samples)
    if check:
        check_audio(audio, rate, str(path))
    return audio, int(rate)


def check_size(path: Path, info: AudioInfo, max_samples: int, decoded: int | None) -> None:
    """TooLongAudioError when the header's length (or `decoded` frames so far) over all channels
    passes `max_samples`."""
    frames = info.frames if decoded is None else decoded
    if frames * info.channels > max_samples:
        limit = max_samples // max(1, info.channels) / info.rate
        said = "" if decoded is None else f" (its header says {info.frames / info.rate:.1f} s)"
        raise TooLongAudioError(f"{path}: decodes to more than {limit:.1f} s of {info.channels} channels at "
                                f"{info.rate} Hz, the most allowed here{said}")


def _read_av(path: Path, start: int, frames: int | None, stream: int,
             max_samples: int | None = None) -> tuple[np.ndarray, int]:
    """Decode with PyAV, frame by frame, into one `np.ndarray[C x T]` float32."""
    info = probe(path)
    if max_samples is not None:
        check_size(path, info, max_samples, None)
    if stream >= info.streams:
        raise UnreadableAudioError(f"{path}: has {info.streams} audio streams, stream {stream} was asked for")
    stop = None if frames is None else start + frames
    with _open_av(path) as container:
        source = container.streams.audio[stream]
        origin = source.start_time or 0  # e.g. an mp3 encoder's delay: sample 0 is at this pts
        if start > SEEK_PREROLL * info.rate:
            # Land well before `start`: lossy decoders need a few frames to settle after a seek
            # (MDCT overlap); the samples before `start` are dropped below.
            container.seek(origin + int((start / info.rate - SEEK_PREROLL) / source.time_base), stream=source)
        pieces, position = [], None
        for frame in _frames(container, source, path, info):
            if position is None:
                position = 0 if frame.pts is None else round(float((frame.pts - origin) * frame.time_base) * info.rate)
            block = _as_float(frame)
            lo, hi = max(0, start - position), block.shape[1] if stop is None else max(0, stop - position)
            if lo < hi:
                pieces.append(block[:, lo:hi])
            position += block.shape[1]
            if stop is not None and position >= stop:
                break
            if max_samples is not None:  # headers can lie: count what really decodes
                check_size(path, info, max_samples, position)
    channels = info.channels
    audio = np.concatenate(pieces, axis=1) if pieces else np.zeros((channels, 0), np.float32)
    if frames is None and not start:
        check_complete(path, audio.shape[1], info)
    return np.ascontiguousarray(audio, dtype=np.float32), info.rate


def _as_float(frame) -> np.ndarray:
    """A decoded PyAV frame → `np.ndarray[C x n]` float32, integer PCM scaled as soundfile does.
    Read plane by plane: PyAV lists one plane too many for 8-channel planar frames, and its
    `to_ndarray` (and resampler) then read past the frame."""
    dtype = np.dtype(AV_SAMPLE_TYPES[frame.format.name.rstrip("p")])
    channels, n = frame.layout.nb_channels, frame.samples
    if frame.format.is_planar:
        data = np.stack([np.frombuffer(frame.planes[c], dtype, count=n) for c in range(channels)])
    else:
        data = np.frombuffer(frame.planes[0], dtype, count=n * channels).reshape(n, channels).T
    return to_float(data)


def _frames(container, source, path: Path, info: AudioInfo):
    """The stream's decoded frames; a decoding error after some audio means the file is damaged."""
    import av
    decoded = 0
    try:
        for frame in container.decode(source):
            decoded += frame.samples
            yield frame
    except av.FFmpegError as exc:
        if not decoded:
            raise
        raise UnreadableAudioError(f"{path}: damaged or truncated: decoding failed after {decoded / info.rate:.2f} s "
                                   f"of {info.frames / info.rate:.2f} s ({_reason(exc)})") from None


def check_complete(path: Path, decoded: int, info: AudioInfo) -> None:
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
    check_peak(peak_of(audio), name)


def peak_of(audio: np.ndarray) -> float:
    """Largest |sample|; NaN or inf when there is one (they propagate), with no temporary array."""
    return max(float(audio.max(initial=0.0)), -float(audio.min(initial=0.0)))


def check_peak(peak: float, name: str, silent_too: bool = True) -> None:
    """InvalidAudioError for NaN/inf samples; SilentAudioError (with `silent_too`) below -120 dBFS."""
    if not np.isfinite(peak):
        raise InvalidAudioError(f"{name}: contains NaN or infinite samples")
    if silent_too and peak < SILENCE_PEAK:
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


def float_writer(path: str | os.PathLike, rate: int, channels: int) -> sf.SoundFile:
    """An open float32 wav for scratch audio written block by block (`write(np.ndarray[n x C])`)."""
    return sf.SoundFile(str(path), "w", rate, channels, "FLOAT")


def blocks(path: str | os.PathLike, frames: int = 1 << 18):
    """A wav/flac file as consecutive `np.ndarray[n x C]` float32 blocks, and its length in frames:
    (length, iterator)."""
    def read():  # the file is opened when reading starts and closed when it ends or is abandoned
        with sf.SoundFile(str(path)) as source:
            yield from source.blocks(frames, dtype="float32", always_2d=True)

    return sf.info(str(path)).frames, read()


def waveform_peaks(path: Path, bins: int, block: int = 1 << 18) -> list[list[float]]:
    """[[min, max], ...] per bin over all channels of a written audio file, read block by block
    (memory stays flat in the song's length), rounded for a small JSON."""
    frames, data_blocks = blocks(path, block)
    bins = max(1, min(bins, frames))
    edges = np.linspace(0, frames, bins + 1).astype(np.int64)
    lows, highs = np.full(bins, np.inf), np.full(bins, -np.inf)
    start = 0
    for data in data_blocks:
        end = start + len(data)
        first = int(np.searchsorted(edges, start, side="right")) - 1
        last = int(np.searchsorted(edges, end - 1, side="right")) - 1
        local = np.maximum(edges[first:last + 1] - start, 0)  # where each bin starts in this block
        lows[first:last + 1] = np.minimum(lows[first:last + 1], np.minimum.reduceat(data.min(axis=1), local))
        highs[first:last + 1] = np.maximum(highs[first:last + 1], np.maximum.reduceat(data.max(axis=1), local))
        start = end
    return [[round(float(lo), 3), round(float(hi), 3)] for lo, hi in zip(lows, highs)]


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

def check_output(fmt: str, bits: int, clip: str, channels: int | None = None, bitrate: int = 320) -> None:
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
    if fmt == "mp3" and bitrate not in MP3_BITRATES:
        raise AudioError(f"mp3 bitrate must be one of {', '.join(map(str, MP3_BITRATES))} kbit/s, not {bitrate}")
    if fmt == "mp3" and channels is not None and channels > 2:
        raise AudioError(f"mp3 holds at most 2 channels, this audio has {channels}; use wav or flac")


def pcm_gain(tracks, clip: str) -> float:
    """The gain the clip policy applies: with 'rescale', one gain for all `tracks` of a song (so
    stems keep their balance and still add up) that brings the loudest peak to full scale; else 1."""
    return gain_for_peak(max((float(np.abs(a).max()) for a in tracks if np.size(a)), default=0.0), clip)


def gain_for_peak(peak: float, clip: str) -> float:
    """`pcm_gain` from the songs' loudest peak."""
    return 1.0 / peak if clip == "rescale" and peak > 1.0 else 1.0


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


class AudioWriter:
    """Writes one audio file block by block (`write` takes `np.ndarray[C x n]` float32, already
    clip-prepared): wav/flac through soundfile, mp3 (and Opus in Ogg, for previews) through PyAV's
    encoder (resampled with a soxr stream when the rate is not one the codec holds); `bitrate` in
    kbit/s for all channels. Integers are made here, so nothing wraps around."""

    def __init__(self, path: Path, rate: int, channels: int, fmt: str, bits: int = 16, bitrate: int = 320):
        self.fmt, self.bits = fmt, bits
        if fmt not in ENCODED:
            subtype = "FLOAT" if bits == 32 else f"PCM_{bits}"
            self.file = sf.SoundFile(str(path), "w", rate, channels, subtype, format=fmt.upper())
            return
        import av
        import soxr
        container, codec, rates = ENCODED[fmt]
        out_rate = rate if rate in rates else min(rates, key=lambda r: (abs(r - rate), -r))
        self.resampler = soxr.ResampleStream(rate, out_rate, channels, dtype="float32", quality="HQ") \
            if out_rate != rate else None
        self.layout, self.rate, self.pts, self.flushed = "mono" if channels == 1 else "stereo", out_rate, 0, False
        self.container = av.open(str(path), "w", format=container)
        self.stream = self.container.add_stream(codec, rate=out_rate, layout=self.layout)
        self.stream.bit_rate = bitrate * 1000

    def write(self, block: np.ndarray, last: bool = False) -> None:
        if self.fmt not in ENCODED:
            self.file.write(block.T if self.bits == 32 else _to_int(block, self.bits).T)
            return
        if self.resampler is not None:
            block = self.resampler.resample_chunk(np.ascontiguousarray(block.T), last=last).T
            self.flushed = last
        for begin in range(0, block.shape[1], MP3_BLOCK):
            self._encode(np.ascontiguousarray(block[:, begin:begin + MP3_BLOCK], dtype=np.float32))

    def _encode(self, block: np.ndarray) -> None:
        import av
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self.layout)
        frame.sample_rate, frame.pts = self.rate, self.pts
        self.pts += block.shape[1]
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        if self.fmt not in ENCODED:
            self.file.close()
            return
        if self.resampler is not None and not self.flushed:  # the resampler's tail
            self.write(np.zeros((1 if self.layout == "mono" else 2, 0), np.float32), last=True)
        self.container.mux(self.stream.encode(None))
        self.container.close()


def write_stems(paths_audio: dict[Path, np.ndarray], rate: int, fmt: str = "wav", bits: int = 16,
                clip: str = "rescale", bitrate: int = 320) -> float:
    """Write several files all-or-nothing: only when every one is complete are they renamed into
    place. Existing files are replaced whole, never left half-written. Returns the gain that the
    clip policy applied to all of them (1.0 when nothing was too loud)."""
    for audio in paths_audio.values():
        check_output(fmt, bits, clip, np.shape(audio)[0], bitrate)
    gain = pcm_gain(paths_audio.values(), clip)
    sources = {Path(p): (np.shape(a)[0], lambda a=a: [np.asarray(a, dtype=np.float32)]) for p, a in paths_audio.items()}
    write_files(sources, rate, fmt, bits, clip, gain, bitrate)
    return gain


def write_files(sources: dict, rate: int, fmt: str, bits: int, clip: str, gain: float, bitrate: int = 320) -> None:
    """Write several files all-or-nothing from blocks: `sources` maps each path to (channels, a
    function returning its `np.ndarray[C x n]` float32 blocks), which get the clip policy (with
    `gain`) on the way. Only when every file is complete are they renamed into place; errors are
    one-line AudioErrors."""
    paths = [Path(p) for p in sources]
    try:
        with atomic_paths(paths) as temps:
            for tmp, (channels, blocks_of) in zip(temps, sources.values()):
                writer = AudioWriter(tmp, rate, channels, fmt, bits, bitrate)
                try:
                    for block in blocks_of():
                        writer.write(prepare_for_pcm(block, clip, gain))
                finally:
                    writer.close()
    except sf.LibsndfileError as exc:
        raise AudioError(f"cannot write {paths[0].parent}: {exc}") from None
    except av_errors() as exc:
        raise AudioError(f"cannot encode {fmt} in {paths[0].parent}: {_reason(exc)}") from None
    except OSError as exc:
        raise AudioError(f"cannot write {exc.filename or paths[0].parent}: {exc.strerror or exc}") from None


def write_audio(path, audio: np.ndarray, rate: int, fmt: str | None = None, bits: int = 16,
                clip: str = "rescale", bitrate: int = 320) -> float:
    """Write one file atomically; the format defaults to the file's extension. Returns the clip gain."""
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    return write_stems({Path(path): audio}, rate, fmt, bits, clip, bitrate)


def write_opus(source: str | os.PathLike, target: str | os.PathLike, bitrate: int = 64) -> None:
    """An Opus/Ogg copy of a wav/flac file at 48 kHz and `bitrate` kbit/s per channel, written block
    by block (more than 2 channels are folded to stereo: Opus in Ogg holds more only with channel
    mappings browsers do not all play)."""
    info = sf.info(str(source))
    channels = 1 if info.channels == 1 else 2
    with atomic_path(target) as tmp:
        writer = AudioWriter(tmp, info.samplerate, channels, "opus", bitrate=bitrate * channels)
        try:
            for block in blocks(source)[1]:
                writer.write(np.ascontiguousarray(_fold(block, channels).T))
        finally:
            writer.close()


def _fold(block: np.ndarray, channels: int) -> np.ndarray:
    """`np.ndarray[n x C]` → `[n x channels]`: extra channels averaged into left and right."""
    if block.shape[1] == channels:
        return block
    return np.stack([block[:, 0::2].mean(axis=1), block[:, 1::2].mean(axis=1)], axis=1).astype(np.float32)
