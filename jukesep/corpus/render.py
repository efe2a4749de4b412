"""Rendering one song: a MIDI file per stem through FluidSynth (vocals through pysinsy when it is
installed), light effects with pedalboard, levels, and an atomic write of the song folder."""
from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import types
from pathlib import Path

import numpy as np

from ..atomic import atomic_dir
from ..audio import fit_length, read_audio, resample
from ..errors import JukesepError
from . import compose
from .compose import MIN_NOTE_SECONDS, STEMS, Song, Track

RATE = 44100
FILES = tuple(f"{s}.wav" for s in STEMS) + ("mixture.wav", "meta.json")
SF2_DIRS = [Path("/usr/share/sounds/sf2"), Path("/usr/share/sounds/sf3"), Path("/usr/share/soundfonts")]
# soundfont file name → (Debian package, role)
SOUNDFONTS = {
    "FluidR3_GM.sf2": ("fluid-soundfont-gm", "gm"),
    "MuseScore_General.sf3": ("musescore-general-soundfont", "gm"),
    "MuseScore_General_Lite.sf3": ("musescore-general-soundfont-small", "gm"),
    "TimGM6mb.sf2": ("timgm6mb-soundfont", "gm"),
    "sf_GMbank.sf2": ("csound-soundfont", "gm"),
    "Black_Pearl_4_LV2.sf2": ("avldrums.lv2-soundfont", "drumkit"),
    "Red_Zeppelin_4_LV2.sf2": ("avldrums.lv2-soundfont", "drumkit"),
    # FM synthesis, unlike every sampled font above: the held-out-timbre split's only font.
    "OPL-3_FM_128M.sf2": ("opl3-soundfont", "heldout"),
}
HELDOUT_FONT = "OPL-3_FM_128M.sf2"
GM_KITS = [0, 8, 16, 24, 25, 32, 40]  # standard, room, power, electronic, TR-808, jazz, brush


def family(font: str) -> str:
    """The full and the small MuseScore font are one family (the same samples, fewer of them)."""
    return "MuseScore_General" if font.startswith("MuseScore_General") else font


class Tools:
    """Where FluidSynth and the soundfonts are; raises JukesepError naming the package to install."""

    def __init__(self, sf2_dirs=None, heldout_fonts=(HELDOUT_FONT,)):
        unknown = sorted(set(heldout_fonts) - set(SOUNDFONTS))
        if unknown or not heldout_fonts:
            raise JukesepError(f"unknown held-out soundfont {', '.join(unknown) or '(none given)'}; "
                               f"choose from {', '.join(SOUNDFONTS)}")
        self.fluidsynth = shutil.which("fluidsynth")
        if self.fluidsynth is None:
            raise JukesepError("fluidsynth is not installed; it renders the corpus "
                               "(Debian/Ubuntu: apt install fluidsynth fluid-soundfont-gm)")
        found = {}
        for d in sf2_dirs or SF2_DIRS:
            for name in SOUNDFONTS:
                p = Path(d) / name
                if p.is_file():
                    real = p.resolve()  # MuseScore_General.sf3 may be a link to the Lite one
                    key = real.name if real.name in SOUNDFONTS else name
                    found.setdefault(key, str(real))
        if "FluidR3_GM.sf2" not in found:
            raise JukesepError("the General MIDI soundfont FluidR3_GM.sf2 is missing "
                               "(Debian/Ubuntu: apt install fluid-soundfont-gm; optional extra timbres: "
                               "musescore-general-soundfont-small avldrums.lv2-soundfont)")
        # held-out fonts never train, nor do their family's; OPL-3 never trains, held out or not
        self.heldout_fonts = tuple(sorted(set(heldout_fonts)))
        held = {family(n) for n in self.heldout_fonts}
        self.gm = sorted(n for n in found if SOUNDFONTS[n][1] == "gm" and family(n) not in held)
        if "MuseScore_General.sf3" in self.gm and "MuseScore_General_Lite.sf3" in self.gm:
            self.gm.remove("MuseScore_General_Lite.sf3")  # same family: keep the full one
        self.kits = sorted(n for n in found if SOUNDFONTS[n][1] == "drumkit" and family(n) not in held)
        if not self.gm:
            raise JukesepError("every installed GM soundfont is held out: none is left for the training splits")
        self.heldout = sorted(n for n in found if n in self.heldout_fonts and SOUNDFONTS[n][1] != "drumkit")
        self.heldout_kits = sorted(n for n in found if n in self.heldout_fonts and SOUNDFONTS[n][1] == "drumkit")
        self.paths = found
        self.singer = pysinsy_available()

    def check_heldout(self) -> None:
        missing = [n for n in self.heldout_fonts if n not in self.paths]
        if missing:
            packages = " ".join(sorted({SOUNDFONTS[n][0] for n in missing}))
            raise JukesepError(f"the held-out-timbre split needs {', '.join(missing)} "
                               f"(Debian/Ubuntu: apt install {packages})")
        if not self.heldout:
            raise JukesepError("the held-out fonts are drum kits only; hold out a melodic font too")


# ---------------------------------------------------------------- pysinsy
def pysinsy_available() -> bool:
    try:
        _import_pysinsy()
        return True
    except Exception:  # noqa: BLE001 - any failure means: sing with GM voices instead
        return False


def _import_pysinsy():
    if "pkg_resources" not in sys.modules:
        try:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import pkg_resources  # noqa: F401  (pysinsy needs it; setuptools>=81 dropped it)
        except ImportError:  # a minimal stand-in for what pysinsy uses of it
            shim = types.ModuleType("pkg_resources")

            def resource_filename(package, name):
                import importlib.util
                spec = importlib.util.find_spec(package)
                return str(Path(spec.origin).parent / name)
            shim.resource_filename = resource_filename
            sys.modules["pkg_resources"] = shim
    import pysinsy
    return pysinsy


STEP_NAMES = [("C", 0), ("C", 1), ("D", 0), ("D", 1), ("E", 0), ("F", 0), ("F", 1), ("G", 0), ("G", 1),
              ("A", 0), ("A", 1), ("B", 0)]
DIVISIONS = 12  # per quarter: 16ths and triplets


def musicxml(track: Track, tempo: float, beats: float) -> str:
    """One-part MusicXML in 4/4 with a leading bar of rest (pysinsy otherwise pads ~2 s of silence),
    notes tied across barlines, no fermatas."""
    events, t = [], 0.0
    q = lambda b: int(round(b * DIVISIONS))  # noqa: E731
    for n in sorted(track.notes, key=lambda n: n.start):
        s, e = q(n.start + 4), q(n.start + 4 + n.dur)
        if s < t:
            s = t
        if e - s < 1:
            continue
        if s > t:
            events.append((None, t, s, None))
        events.append((n.pitch, s, e, n.lyric or "ら"))
        t = e
    end = q(beats + 8)  # a final bar of rest after the song
    end += (-end) % (4 * DIVISIONS)
    events.append((None, t, end, None))
    bar = 4 * DIVISIONS
    measures: dict[int, list[str]] = {}
    for pitch, s, e, lyric in events:
        first = True
        while s < e:
            m = s // bar
            piece_end = min(e, (m + 1) * bar)
            dur = piece_end - s
            if pitch is None:
                xml = f"<note><rest/><duration>{dur}</duration></note>"
            else:
                step, alter = STEP_NAMES[pitch % 12]
                ties = ""
                notations = ""
                if not first:
                    ties += '<tie type="stop"/>'
                    notations += '<tied type="stop"/>'
                if piece_end < e:
                    ties += '<tie type="start"/>'
                    notations += '<tied type="start"/>'
                lyr = (f"<lyric><syllabic>single</syllabic><text>{lyric}</text></lyric>" if first else "")
                xml = (f"<note><pitch><step>{step}</step>{'<alter>1</alter>' if alter else ''}"
                       f"<octave>{pitch // 12 - 1}</octave></pitch><duration>{dur}</duration>{ties}"
                       f"{'<notations>' + notations + '</notations>' if notations else ''}{lyr}</note>")
            measures.setdefault(m, []).append(xml)
            first = False
            s = piece_end
    head = (f"<attributes><divisions>{DIVISIONS}</divisions><key><fifths>0</fifths></key><time><beats>4</beats>"
            f"<beat-type>4</beat-type></time></attributes><direction placement=\"above\"><direction-type>"
            f"<metronome><beat-unit>quarter</beat-unit><per-minute>{tempo:g}</per-minute></metronome>"
            f"</direction-type><sound tempo=\"{tempo:g}\"/></direction>")
    body = "".join(f"<measure number=\"{m + 1}\">{head if m == 0 else ''}{''.join(measures[m])}</measure>"
                   for m in sorted(measures))
    return ('<?xml version="1.0" encoding="UTF-8"?><score-partwise version="3.0"><part-list><score-part id="P1">'
            f'<part-name>Voice</part-name></score-part></part-list><part id="P1">{body}</part></score-partwise>')


def despike(wav: np.ndarray, sr: int, limit: float = 4.0) -> tuple[np.ndarray, int]:
    """Tame HTS vocoder pops: 10 ms frames louder than `limit` x the 90th percentile of voiced frames
    are turned down to that level (gain interpolated between frames). Returns (audio, frames touched)."""
    hop = sr // 100
    nf = len(wav) // hop
    if nf == 0:
        return wav, 0
    frames = np.sqrt((wav[:nf * hop].reshape(nf, hop) ** 2).mean(axis=1))
    voiced = frames[frames > 1e-3]
    if voiced.size == 0:
        return wav, 0
    ceiling = limit * float(np.percentile(voiced, 90))
    gain = np.minimum(1.0, ceiling / np.maximum(frames, 1e-12))
    touched = int(np.sum(gain < 1.0))
    if touched == 0:
        return wav, 0
    for _ in range(2):  # spread each cut to its neighbours so the pop's edges go too
        gain = np.minimum(gain, np.minimum(np.r_[gain[1:], 1.0], np.r_[1.0, gain[:-1]]))
    centers = np.arange(nf) * hop + hop / 2
    g = np.interp(np.arange(len(wav)), centers, gain)
    return wav * g, touched


def sing(track: Track, song: Song, n: int, tmp: Path, rng: np.random.Generator, tries: int = 3):
    """Mono float32 of length n at 44.1 kHz sung by pysinsy, or None when every try glitched.
    A glitchy take is sung again with other (random) syllables."""
    pysinsy = _import_pysinsy()
    path = tmp / "vocals.xml"
    for attempt in range(tries):
        if attempt:
            for note in track.notes:
                note.lyric = compose.KANA[int(rng.integers(len(compose.KANA)))]
        path.write_text(musicxml(track, song.tempo, song.beats), encoding="utf-8")
        wav, sr = pysinsy.synthesize(str(path))
        wav = np.asarray(wav, dtype=np.float64) / 32768.0
        wav = wav[int(round(song.seconds(4) * sr)):]  # the leading bar of rest
        if np.all(np.isfinite(wav)) and np.max(np.abs(wav), initial=0.0) < 2.0:  # else: blown up, sing again
            wav, touched = despike(wav, sr)
            out = resample(wav.astype(np.float32), sr, RATE)
            return fit_length(out, n), attempt + 1, touched
    return None, tries, 0


# ---------------------------------------------------------------- FluidSynth
def write_midi(path: Path, tracks: list[Track], tempo: float, drum_channel: int = 9) -> None:
    import mido
    tpb = 480
    mf = mido.MidiFile(ticks_per_beat=tpb)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=int(round(60_000_000 / tempo)), time=0))
    mf.tracks.append(meta)
    min_beats = MIN_NOTE_SECONDS * tempo / 60
    channels = [c for c in range(16) if c != 9]
    for i, track in enumerate(tracks):
        ch = drum_channel if track.drum else channels[i % len(channels)]
        mt = mido.MidiTrack()
        mt.append(mido.Message("control_change", channel=ch, control=0, value=0, time=0))
        mt.append(mido.Message("program_change", channel=ch, program=track.program, time=0))
        mt.append(mido.Message("control_change", channel=ch, control=7, value=100, time=0))
        mt.append(mido.Message("control_change", channel=ch, control=10, value=track.pan, time=0))
        events = []
        for n in track.notes:
            if n.dur < min_beats or not 0 <= n.pitch <= 127:
                continue  # FluidSynth trap: very short notes
            on, off = int(round(n.start * tpb)), int(round((n.start + n.dur) * tpb))
            events.append((off, 0, n.pitch, 0))  # offs sort before ons at the same tick
            events.append((on, 1, n.pitch, int(np.clip(n.vel, 1, 127))))
        events.sort()
        now = 0
        for tick, kind, pitch, vel in events:
            msg = "note_on" if kind else "note_off"
            mt.append(mido.Message(msg, channel=ch, note=pitch, velocity=vel, time=tick - now))
            now = tick
        mf.tracks.append(mt)
    mf.save(str(path))


def fluidsynth(tools: Tools, soundfont: str, midi: Path, wav: Path, n: int, timeout: float) -> np.ndarray:
    cmd = [tools.fluidsynth, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-O", "float", "-T", "wav",
           "-o", "synth.dynamic-sample-loading=1", "-o", "synth.cpu-cores=1",
           "-F", str(wav), "-r", str(RATE), tools.paths[soundfont], str(midi)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise JukesepError(f"fluidsynth took more than {timeout:.0f} s on {midi.name}; stopped") from None
    if proc.returncode != 0 or not wav.exists():
        raise JukesepError(f"fluidsynth failed on {midi.name}: {(proc.stderr or proc.stdout).strip()[-200:]}")
    data, rate = read_audio(wav, check=False)
    if rate != RATE:
        raise JukesepError(f"fluidsynth wrote {rate} Hz instead of {RATE}")
    return fit_length(data, n)


# ---------------------------------------------------------------- effects and levels
def effects(audio: np.ndarray, stem: str, rng: np.random.Generator) -> tuple[np.ndarray, list[dict]]:
    try:
        import pedalboard as pb
    except ImportError:
        return audio, []
    chain, desc = [], []

    def add(plugin, **kw):
        chain.append(plugin(**kw))
        desc.append({"effect": plugin.__name__, **{k: round(float(v), 3) for k, v in kw.items()}})

    if rng.random() < 0.7:
        add(pb.Compressor, threshold_db=float(rng.uniform(-30, -10)), ratio=float(rng.uniform(1.5, 6)),
            attack_ms=float(rng.uniform(2, 30)), release_ms=float(rng.uniform(50, 300)))
    if rng.random() < 0.5:
        add(pb.LowShelfFilter, cutoff_frequency_hz=float(rng.uniform(80, 300)), gain_db=float(rng.uniform(-6, 6)))
    if rng.random() < 0.5:
        add(pb.HighShelfFilter, cutoff_frequency_hz=float(rng.uniform(3000, 9000)), gain_db=float(rng.uniform(-6, 6)))
    if rng.random() < 0.3:
        add(pb.PeakFilter, cutoff_frequency_hz=float(rng.uniform(300, 4000)), gain_db=float(rng.uniform(-6, 6)),
            q=float(rng.uniform(0.5, 2)))
    if rng.random() < 0.25:  # saturation: harmonics the clean renders lack
        add(pb.Distortion, drive_db=float(rng.uniform(2, 14)))
    if stem != "bass" and rng.random() < 0.6:
        add(pb.Reverb, room_size=float(rng.uniform(0.1, 0.8)), wet_level=float(rng.uniform(0.05, 0.3)),
            dry_level=float(rng.uniform(0.7, 1.0)), damping=float(rng.uniform(0.2, 0.8)))
    if not chain:
        return audio, []
    out = pb.Pedalboard(chain)(np.ascontiguousarray(audio, dtype=np.float32), RATE, reset=True)
    return np.asarray(out, dtype=np.float32), desc


def pan_mono(mono: np.ndarray, pan: float) -> np.ndarray:
    angle = (pan + 1) * np.pi / 4
    return np.stack([mono * np.cos(angle), mono * np.sin(angle)]).astype(np.float32) * np.float32(np.sqrt(2))


def note_ranges(song: Song, tracks: list[Track], song_seconds: float, gap: float = 0.75) -> list[list[float]]:
    """Merged [start, end] seconds where a stem's notes sound."""
    min_beats = MIN_NOTE_SECONDS * song.tempo / 60
    spans = sorted((song.seconds(n.start), song.seconds(n.start + max(n.dur, 0.25)))
                   for t in tracks for n in t.notes if n.dur >= min_beats and song.seconds(n.start) < song_seconds)
    out: list[list[float]] = []
    for s, e in spans:
        e = min(e, song_seconds)
        if out and s <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [[round(s, 3), round(e, 3)] for s, e in out]


def write_float_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> None:
    """IEEE-float wav with no timestamped PEAK chunk (libsndfile adds one), so equal audio → equal bytes."""
    data = np.ascontiguousarray(audio.T, dtype="<f4").tobytes()
    channels, frames = audio.shape
    fmt = struct.pack("<HHIIHHH", 3, channels, rate, rate * 4 * channels, 4 * channels, 32, 0)
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 12 + 8 + len(data)) + b"WAVE")
        f.write(b"fmt " + struct.pack("<I", len(fmt)) + fmt)
        f.write(b"fact" + struct.pack("<II", 4, frames))
        f.write(b"data" + struct.pack("<I", len(data)) + data)


# ---------------------------------------------------------------- one song
def song_complete(folder: Path) -> bool:
    return folder.is_dir() and all((folder / f).is_file() for f in FILES)


def render_song(job: dict) -> dict:
    """Render job["name"] into job["folder"] unless it is complete. Returns its meta (or a skip note)."""
    folder = Path(job["folder"])
    if song_complete(folder):
        return {"name": job["name"], "split": job["split"], "skipped": True}
    tools = Tools(job.get("sf2_dirs"), job.get("heldout_fonts") or (HELDOUT_FONT,))
    heldout = bool(job.get("heldout"))
    if heldout:
        tools.check_heldout()
    melodic = tools.heldout if heldout else tools.gm
    seconds = float(job["song_seconds"])
    n = int(round(seconds * RATE))
    rng = np.random.default_rng(np.random.SeedSequence(job["entropy"]))
    song = None
    if job["material"]["kind"] == "music21":
        song = compose.chorale_song(rng, seconds, job["material"]["work"], dict(job["material"]))
    if song is None:
        material = {"kind": "procedural", "id": job["material"].get("id") or job["name"],
                    "seed_entropy": job["entropy"]}
        if job["material"]["kind"] != "procedural":
            material["fallback_from"] = job["material"]
        song = compose.procedural_song(rng, seconds, material)

    stems, meta_stems = {}, {}
    with atomic_dir(folder) as tmp:
        work = tmp / "work"
        work.mkdir()
        for stem in STEMS:
            tracks = song.tracks[stem]
            info: dict = {}
            audio = None
            if stem == "vocals" and tools.singer and not heldout and rng.random() < 0.85:
                mono, takes, touched = sing(tracks[0], song, n, work, rng)
                if mono is not None:
                    audio = pan_mono(mono, float(rng.uniform(-0.15, 0.15)))
                    info.update(engine="pysinsy", voice="nitech_jp_song070_f001", lyrics="random Japanese kana",
                                takes=takes, despiked_10ms_frames=touched)
                else:
                    info["pysinsy_failed"] = f"{takes} blown-up takes"
            if audio is None:
                if stem == "drums":
                    kit_fonts = melodic + tools.heldout_kits if heldout else tools.gm + tools.kits
                    font = kit_fonts[int(rng.integers(len(kit_fonts)))]
                    if font in tools.kits + tools.heldout_kits:
                        # AVL kits: a melodic preset with GM note numbers (no 35: use 36)
                        tracks = [Track(t.name, 0, [compose.Note(36 if x.pitch == 35 else x.pitch, x.start, x.dur,
                                                                 x.vel) for x in t.notes], drum=False, pan=t.pan)
                                  for t in tracks]
                        info["kit"] = Path(font).stem
                    else:
                        for t in tracks:
                            t.program = int(rng.choice(GM_KITS))
                        info["kit"] = f"GM bank 128 program {tracks[0].program}"
                else:
                    font = melodic[int(rng.integers(len(melodic)))]
                    if stem == "vocals":
                        info["engine"] = "fluidsynth GM voice"
                midi = work / f"{stem}.mid"
                write_midi(midi, tracks, song.tempo)
                audio = fluidsynth(tools, font, midi, work / f"{stem}.wav", n, timeout=60 + 2 * seconds)
                info["soundfont"] = font
                info["package"] = SOUNDFONTS[font][0]
            audio, fx = effects(audio, stem, rng)
            ranges = note_ranges(song, tracks, seconds)
            sung = info.get("engine") == "pysinsy"
            info.update(instruments=[{"name": t.name, "gm_program": None if sung else t.program,
                                      "drum_channel": t.drum,
                                      "notes": len(t.notes), "pan_cc": t.pan} for t in tracks],
                        effects=fx, plays=ranges)
            stems[stem] = audio
            meta_stems[stem] = info
        # levels: each stem to a random loudness over where it plays, then one gain for headroom
        for stem, audio in stems.items():
            mask = np.zeros(n, bool)
            for s, e in meta_stems[stem]["plays"]:
                mask[int(s * RATE):int(e * RATE)] = True
            rms = float(np.sqrt(np.mean(audio[:, mask] ** 2))) if mask.any() else 0.0
            target = float(rng.uniform(-24, -16)) + (2.0 if stem == "vocals" else 0.0)
            gain = 10 ** (target / 20) / rms if rms > 1e-7 else 1.0
            stems[stem] = (audio * np.float32(gain)).astype(np.float32)
            meta_stems[stem]["gain_db"] = round(20 * np.log10(gain), 2)
        fade = np.ones(n, np.float32)
        k = min(n, int(0.05 * RATE))
        fade[n - k:] = np.linspace(1, 0, k, dtype=np.float32)
        mix64 = sum(stems[s].astype(np.float64) * fade for s in STEMS)
        peak = float(np.max(np.abs(mix64))) if n else 0.0
        head = 0.95 / peak if peak > 0.95 else 1.0
        for s in STEMS:
            stems[s] = (stems[s] * fade * np.float32(head)).astype(np.float32)
            write_float_wav(tmp / f"{s}.wav", stems[s])
        mixture = sum(stems[s].astype(np.float64) for s in STEMS).astype(np.float32)
        write_float_wav(tmp / "mixture.wav", mixture)
        meta = {
            "name": job["name"], "split": job["split"], "corpus_seed": job["seed"], "seed_entropy": job["entropy"],
            "seconds": seconds, "sample_rate": RATE, "tempo_bpm": song.tempo, "key": song.key,
            "time_signature": "4/4", "material": song.material, "sections": song.sections,
            "stems": meta_stems, "headroom_gain_db": round(20 * np.log10(head), 2),
            "soundfonts_used": sorted({v["soundfont"] for v in meta_stems.values() if "soundfont" in v}),
            "vocals_engine": meta_stems["vocals"].get("engine"),
            "timbres": "held out" if heldout else "training",
            "generator": job.get("generator", "jukesep.corpus 2"),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
        shutil.rmtree(work)
    return meta
