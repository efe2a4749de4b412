"""Symbolic material for the corpus: songs as note lists per stem, either generated procedurally
(progression in a random key, bass on the roots, drum grooves with fills, a sung melody) or
arranged from a Bach chorale of the `music21` corpus (soprano sung, alto/tenor played, bass on bass).

Times are in beats (quarter notes) at a constant tempo; `Song.seconds(beat)` converts.
Everything random is drawn from the `numpy.random.Generator` passed in, so a song is a pure
function of its seed.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np

from ..defaults import STEMS

PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = {
    "major": [(0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 3), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0),
              (0, 2, 3, 4), (3, 4, 2, 5), (0, 0, 3, 4), (3, 0, 4, 5)],
    "minor": [(0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4), (0, 0, 3, 4),
              (0, 6, 5, 4)],
}
# GM programs (0-based) per role of the "other" stem; voices 52-54 stay out of "other".
OTHER_PROGRAMS = {
    "pad": [16, 17, 18, 19, 20, 48, 49, 50, 51, 61, 88, 89, 90, 91, 92, 93, 94, 95],
    "block": [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 24, 25, 26, 27, 48, 56, 61, 62],
    "arpeggio": [0, 1, 4, 6, 8, 9, 10, 11, 12, 13, 24, 25, 26, 46, 80, 81, 82, 87, 98],
    "strum": [24, 25, 26, 27, 28, 29, 30],
    "lead": [40, 41, 56, 57, 60, 64, 65, 66, 68, 71, 73, 80, 81, 84, 85, 87, 22, 29, 30],
}
BASS_PROGRAMS = [32, 33, 34, 35, 36, 37, 38, 39]
VOICE_PROGRAMS = [52, 53, 54]  # Choir Aahs, Voice Oohs, Synth Voice (GM fallback for vocals)
KICK, SNARE, RIM, CLAP, HH, PEDAL_HH, OPEN_HH, CRASH, RIDE, RIDE_BELL, TAMB = 36, 38, 37, 39, 42, 44, 46, 49, 51, 53, 54
TOMS = (50, 48, 47, 45, 43, 41)
KANA = "らりるれろなにぬねのまみむめもあいうえおさしすせそたてとかきくけこはほやよわ"
MIN_NOTE_SECONDS = 0.05  # FluidSynth mishandles shorter notes


@dataclass
class Note:
    pitch: int
    start: float  # beats
    dur: float  # beats
    vel: int = 90
    lyric: str | None = None


@dataclass
class Track:
    name: str
    program: int  # GM program 0-127 (for drums: the kit)
    notes: list[Note] = field(default_factory=list)
    drum: bool = False
    pan: int = 64  # MIDI CC10


@dataclass
class Song:
    tempo: float
    key: str
    beats: float  # length in beats
    tracks: dict[str, list[Track]]
    material: dict
    sections: list[dict] = field(default_factory=list)

    def seconds(self, beat: float) -> float:
        return beat * 60.0 / self.tempo


# ---------------------------------------------------------------- harmony helpers
def scale_pitch(root: int, scale, degree: int) -> int:
    """Pitch class offset (may exceed 12) of a scale degree, counted from the key's root."""
    octave, step = divmod(degree, 7)
    return root + scale[step] + 12 * octave


def chord_pcs(root: int, scale, degree: int, seventh: bool) -> list[int]:
    tones = [scale_pitch(root, scale, degree + i) for i in ((0, 2, 4, 6) if seventh else (0, 2, 4))]
    return [t % 12 for t in tones]


def place(pc: int, low: int, high: int, rng: np.random.Generator | None = None) -> int:
    """A pitch of class `pc` inside [low, high] (random octave among those that fit)."""
    options = [p for p in range(low, high + 1) if p % 12 == pc % 12]
    if not options:
        return low + (pc - low) % 12
    return int(options[0] if rng is None else rng.choice(options))


def voicing(pcs: list[int], center: int) -> list[int]:
    """Close voicing of pitch classes around `center`."""
    return sorted(center - 6 + (pc - (center - 6)) % 12 for pc in pcs)


# ---------------------------------------------------------------- procedural song
FORMS = [
    ["intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"],
    ["intro", "verse", "verse", "chorus", "break", "chorus", "outro"],
    ["verse", "chorus", "verse", "chorus", "chorus"],
    ["intro", "chorus", "verse", "bridge", "chorus", "outro"],
]
SECTION_BARS = {"intro": (2, 4), "verse": (4, 8), "chorus": (4, 8), "bridge": (4, 4), "break": (2, 4), "outro": (2, 4)}
# probability that a stem plays in a section
ACTIVITY = {
    "intro": {"vocals": 0.0, "drums": 0.5, "bass": 0.5, "other": 1.0},
    "verse": {"vocals": 0.9, "drums": 0.85, "bass": 0.9, "other": 0.9},
    "chorus": {"vocals": 1.0, "drums": 1.0, "bass": 1.0, "other": 1.0},
    "bridge": {"vocals": 0.6, "drums": 0.6, "bass": 0.7, "other": 1.0},
    "break": {"vocals": 0.3, "drums": 0.8, "bass": 0.4, "other": 0.5},
    "outro": {"vocals": 0.2, "drums": 0.5, "bass": 0.7, "other": 1.0},
}


def procedural_song(rng: np.random.Generator, seconds: float, material: dict) -> Song:
    tempo = float(rng.integers(70, 171))
    root = int(rng.integers(12))
    mode = "major" if rng.random() < 0.6 else "minor"
    scale = MAJOR if mode == "major" else MINOR
    bars = max(1, math.ceil(seconds * tempo / 60 / 4))
    # sections, each with its own progression and its own set of playing stems
    form = FORMS[int(rng.integers(len(FORMS)))]
    progs = {}
    sections, bar = [], 0
    while bar < bars:
        for kind in form:
            if bar >= bars:
                break
            lo, hi = SECTION_BARS[kind]
            n = int(rng.choice([b for b in (2, 4, 8) if lo <= b <= hi] or [lo]))
            if kind not in progs:
                progs[kind] = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
            active = {s: bool(rng.random() < p) for s, p in ACTIVITY[kind].items()}
            sections.append({"kind": kind, "bar": bar, "bars": min(n, bars - bar), "active": active})
            bar += n
    if bars <= 4:  # short songs: everything plays
        for sec in sections:
            sec["active"] = {s: True for s in STEMS}
    for stem in STEMS:  # every stem plays somewhere
        if not any(sec["active"][stem] for sec in sections):
            best = max(sections, key=lambda s: (s["kind"] == "chorus", s["bars"]))
            best["active"][stem] = True
    # one chord per bar (two at slow tempi), from each section's progression
    chords = []  # (start beat, length, degree)
    per_bar = 2 if tempo < 95 and rng.random() < 0.5 else 1
    sevenths = rng.random() < 0.35
    for sec in sections:
        prog = progs[sec["kind"]]
        for i in range(sec["bars"] * per_bar):
            chords.append(((sec["bar"] * 4) + i * 4 / per_bar, 4 / per_bar, prog[i % len(prog)]))
    swing = float(rng.choice([0.0, 0.0, 0.0, 0.33, 0.5])) if tempo < 130 else 0.0
    song = Song(tempo=tempo, key=f"{PITCH_NAMES[root]} {mode}", beats=bars * 4.0, tracks={}, material=material,
                sections=[{"kind": s["kind"], "start_bar": s["bar"], "bars": s["bars"],
                           "stems": [k for k, v in s["active"].items() if v]} for s in sections])

    def active_at(stem: str, beat: float) -> bool:
        b = int(beat // 4)
        return any(s["bar"] <= b < s["bar"] + s["bars"] and s["active"][stem] for s in sections)

    def section_end(beat: float) -> bool:
        b = int(beat // 4)
        return any(s["bar"] + s["bars"] - 1 == b for s in sections)

    song.tracks["drums"] = [drum_track(rng, bars, active_at, section_end, swing, sections)]
    song.tracks["bass"] = [bass_track(rng, chords, root, scale, sevenths, active_at, swing)]
    song.tracks["other"] = other_tracks(rng, chords, root, scale, sevenths, active_at, swing)
    song.tracks["vocals"] = [vocal_track(rng, chords, root, scale, sevenths, active_at, bars)]
    return song


def _swing(beat: float, swing: float) -> float:
    frac = beat % 1.0
    return beat + swing / 3 if abs(frac - 0.5) < 1e-6 else beat


GROOVES = {  # 16 steps per bar: kick, snare, hat steps, open-hat steps
    "rock": ([0, 8], [4, 12], range(0, 16, 2), []),
    "rock2": ([0, 6, 8], [4, 12], range(0, 16, 2), []),
    "pop16": ([0, 7, 8], [4, 12], range(16), []),
    "four": ([0, 4, 8, 12], [4, 12], [0, 4, 8, 12], [2, 6, 10, 14]),
    "half": ([0, 10], [8], range(0, 16, 2), []),
    "funk": ([0, 3, 10], [4, 12], range(16), [14]),
    "break": ([0, 10, 11], [4, 12], range(0, 16, 2), [7]),
    "ride": ([0, 10], [4, 12], [0, 4, 6, 8, 12, 14], []),
}


def drum_track(rng, bars, active_at, section_end, swing, sections) -> Track:
    style = str(rng.choice(list(GROOVES)))
    alt = str(rng.choice(list(GROOVES)))
    kick, snare, hats, opens = GROOVES[style]
    hat_note = RIDE if style == "ride" or rng.random() < 0.15 else (PEDAL_HH if rng.random() < 0.1 else HH)
    snare_note = CLAP if style == "four" and rng.random() < 0.5 else SNARE
    ghost = rng.random() < 0.4
    fill_every = int(rng.choice([4, 8]))
    base_vel = int(rng.integers(80, 115))
    notes = []

    def hit(pitch, step_beat, vel):
        t = _swing(step_beat, swing)
        v = int(np.clip(vel + rng.integers(-12, 13), 20, 127))
        notes.append(Note(pitch, t, 0.25, v))

    section_starts = {s["bar"] for s in sections}
    for bar in range(bars):
        b0 = bar * 4.0
        if not active_at("drums", b0):
            continue
        k, s, h, o = (kick, snare, hats, opens)
        if bar % 8 >= 4 and rng.random() < 0.3:  # a variation in the second half of phrases
            k, s, h, o = GROOVES[alt]
        fill = section_end(b0) or (bar % fill_every == fill_every - 1 and rng.random() < 0.6)
        fill_from = 16 - 4 * int(rng.integers(1, 3)) if fill else 16
        if bar in section_starts or not active_at("drums", b0 - 4):
            hit(CRASH, b0, base_vel + 5)
        for step in range(16):
            t = b0 + step / 4
            if step >= fill_from:
                if rng.random() < 0.85:
                    tom = TOMS[min(len(TOMS) - 1, (step - fill_from) * len(TOMS) // (16 - fill_from))]
                    hit(SNARE if rng.random() < 0.3 else tom, t, base_vel)
                continue
            if step in k or (rng.random() < 0.04 and step % 2 == 0):
                hit(KICK, t, base_vel + 5)
            if step in s:
                hit(snare_note, t, base_vel)
            elif ghost and step % 2 == 1 and rng.random() < 0.15:
                hit(SNARE, t, 40)
            if step in o:
                hit(OPEN_HH, t, base_vel - 10)
            elif step in h and not (bar in section_starts and step == 0):
                hit(hat_note, t, base_vel - (0 if step % 4 == 0 else 20))
    return Track("drums", program=0, notes=notes, drum=True, pan=64)


def bass_track(rng, chords, root, scale, sevenths, active_at, swing) -> Track:
    style = str(rng.choice(["whole", "halves", "eighths", "root5", "octaves", "walk", "synco"]))
    low = int(rng.integers(28, 34))
    notes = []
    synco = sorted(set([0] + [int(x) for x in rng.choice(16, size=4, replace=False)]))
    for i, (start, length, degree) in enumerate(chords):
        if not active_at("bass", start):
            continue
        pcs = chord_pcs(root, scale, degree, sevenths)
        r = place(pcs[0], low, low + 11)
        fifth = r + 7
        nxt = place(chord_pcs(root, scale, chords[(i + 1) % len(chords)][2], False)[0], low, low + 11)
        vel = int(rng.integers(85, 120))
        if style == "whole":
            notes.append(Note(r, start, length * 0.95, vel))
        elif style == "halves":
            for k in range(int(length // 2) or 1):
                notes.append(Note(r if k % 2 == 0 else fifth, start + 2 * k, 1.9, vel))
        elif style in ("eighths", "octaves"):
            for k in range(int(length * 2)):
                p = r + (12 if style == "octaves" and k % 2 else 0)
                notes.append(Note(p, _swing(start + k / 2, swing), 0.45, vel - 10 * (k % 2)))
        elif style == "root5":
            for k in range(int(length)):
                notes.append(Note([r, r, fifth, r + 12][k % 4] if k % 2 == 0 else r, start + k, 0.9, vel))
        elif style == "walk":
            tones = [r, place(pcs[1], r, r + 12), fifth, nxt + (1 if rng.random() < 0.5 else -1)]
            for k in range(int(length)):
                notes.append(Note(tones[k % 4] if k < length - 1 else tones[3], start + k, 0.9, vel))
        else:
            steps = [s for s in synco if s < length * 4]
            for j, s in enumerate(steps):
                end = steps[j + 1] if j + 1 < len(steps) else length * 4
                notes.append(Note(r if j % 3 else r, start + s / 4, max(0.25, (end - s) / 4 * 0.9), vel))
    return Track("bass", program=int(rng.choice(BASS_PROGRAMS)), notes=notes, pan=64)


def other_tracks(rng, chords, root, scale, sevenths, active_at, swing) -> list[Track]:
    roles = [str(rng.choice(["pad", "block", "arpeggio", "strum"]))]
    if rng.random() < 0.5:
        roles.append(str(rng.choice(["pad", "arpeggio", "lead"])))
    tracks = []
    for n, role in enumerate(roles):
        center = int(rng.integers(58, 72)) + (12 if n == 1 and role != "pad" else 0)
        notes = []
        rhythms = [[0], [0, 2], [0, 1, 2, 3], [0.5, 1.5, 2.5, 3.5], [0, 1.5, 3], [0, 0.75, 2, 2.75]]
        rhythm = rhythms[int(rng.integers(len(rhythms)))]
        arp_step = float(rng.choice([0.5, 0.25, 1 / 3])) if role == "arpeggio" else 0.5
        lead_pcs = None
        for start, length, degree in chords:
            if not active_at("other", start):
                continue
            pcs = chord_pcs(root, scale, degree, sevenths)
            chord = voicing(pcs, center)
            vel = int(rng.integers(60, 105))
            if role == "pad":
                notes += [Note(p, start, length, vel - 15) for p in chord]
            elif role == "block":
                hits = [r for r in rhythm if r < length] or [0]
                for j, r in enumerate(hits):
                    end = hits[j + 1] if j + 1 < len(hits) else length
                    notes += [Note(p, _swing(start + r, swing), max(0.2, (end - r) * 0.9), vel) for p in chord]
            elif role == "strum":
                for j, r in enumerate([x for x in (0, 1, 1.5, 2.5, 3) if x < length]):
                    up = j % 2 == 1
                    for q, p in enumerate(sorted(chord + [chord[0] - 12], reverse=up)):
                        notes.append(Note(p, start + r + q * 0.02, 0.45, vel - (15 if up else 0)))
            elif role == "arpeggio":
                tones = chord + [chord[0] + 12, chord[1] + 12]
                order = tones + tones[-2:0:-1] if rng.random() < 0.5 else tones
                k = 0
                while k * arp_step < length - 1e-6:
                    notes.append(Note(order[k % len(order)], start + k * arp_step, arp_step * 0.95, vel - 5 * (k % 2)))
                    k += 1
            else:  # lead: a riff on chord tones, repeated per chord
                if lead_pcs is None:
                    lead_pcs = [int(x) for x in rng.integers(0, 4, size=4)]
                    lead_rhythm = sorted(rng.choice(np.arange(0, 4, 0.5), size=4, replace=False))
                for j, (idx, r) in enumerate(zip(lead_pcs, lead_rhythm)):
                    if r < length:
                        notes.append(Note(chord[idx % len(chord)] + 12 * (idx // 3), start + r, 0.45, vel))
        tracks.append(Track(role, program=int(rng.choice(OTHER_PROGRAMS[role])), notes=notes,
                            pan=int(np.clip(64 + rng.integers(-40, 41), 0, 127))))
    return tracks


RHYTHM_CELLS = [[1.0], [0.5, 0.5], [1.5, 0.5], [0.75, 0.25], [2.0], [0.5, 1.0, 0.5]]


def vocal_track(rng, chords, root, scale, sevenths, active_at, bars) -> Track:
    center = int(rng.integers(65, 72))
    low, high = center - 7, center + 9
    notes = []
    phrase = int(rng.choice([2, 4]))
    cur = place(root, low, high)
    motif = None
    for bar in range(bars):
        b0 = bar * 4.0
        if not active_at("vocals", b0):
            continue
        last_of_phrase = bar % phrase == phrase - 1
        if motif is None or rng.random() < 0.4:
            cells = []
            total = 0.0
            while total < 4:
                cell = RHYTHM_CELLS[int(rng.integers(len(RHYTHM_CELLS)))]
                if total + sum(cell) > 4:
                    cell = [4 - total]
                cells += cell
                total += sum(cell)
            motif = cells
        t = b0
        limit = b0 + (2.5 if last_of_phrase else 4.0)  # breathe at the end of phrases
        for d in motif:
            if t >= limit - 1e-6:
                break
            d = min(d, limit - t)
            chord = next((c for c in reversed(chords) if c[0] <= t + 1e-6), chords[0])
            pcs = chord_pcs(root, scale, chord[2], sevenths)
            strong = abs(t - round(t)) < 1e-6 and int(round(t)) % 2 == 0
            if strong:
                cands = [place(pc, low, high) for pc in pcs] + [place(pc, low, high) + 12 for pc in pcs]
                cands = [c for c in cands if low <= c <= high] or [cur]
                cur = int(min(cands, key=lambda c: abs(c - cur) + rng.random() * 4))
            else:
                deg = [scale_pitch(root, scale, k) for k in range(-14, 21)]
                deg = sorted(p for p in (x + 12 * o for x in deg for o in range(2, 8)) if low <= p <= high)
                i = int(np.argmin([abs(p - cur) for p in deg]))
                i = int(np.clip(i + rng.choice([-2, -1, -1, 1, 1, 2, 0]), 0, len(deg) - 1))
                cur = deg[i]
            if rng.random() < 0.08:  # an occasional rest inside the phrase
                t += d
                continue
            notes.append(Note(cur, t, d * 0.97, int(rng.integers(75, 115)), lyric=KANA[int(rng.integers(len(KANA)))]))
            t += d
    return Track("vocals", program=int(rng.choice(VOICE_PROGRAMS)), notes=notes, pan=64)


# ---------------------------------------------------------------- music21 chorales
def chorale_paths() -> list[str]:
    """Bach chorales shipped with music21 (corpus-relative names, sorted); [] without music21."""
    try:
        from music21 import corpus
    except ImportError:
        return []
    names = []
    for p in corpus.getComposer("bach"):
        s = str(p).replace("\\", "/")
        name = s.split("/corpus/", 1)[-1]
        if "bwv" in name:
            names.append(name)
    return sorted(set(names))


def material_split(name: str, fractions=(0.8, 0.1, 0.1)) -> int:
    """Which split (0, 1, 2) may use a corpus work: a fixed hash, so splits never share a work."""
    h = int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big") / 2.0 ** 64
    edges = np.cumsum(fractions) / sum(fractions)
    return int(np.searchsorted(edges, h, side="right"))


def chorale_song(rng: np.random.Generator, seconds: float, name: str, material: dict) -> Song | None:
    """Soprano → vocals, bass → bass, alto/tenor → other, plus a procedural groove; None if unusable."""
    from music21 import corpus
    score = corpus.parse(name)
    parts = list(score.parts)
    if len(parts) != 4:
        return None
    voices = []
    for part in parts:
        flat = part.stripTies().flatten().notes
        notes = [(float(n.offset), float(n.quarterLength), int(n.pitch.midi)) for n in flat
                 if not n.isChord and n.quarterLength > 0]
        if not notes:
            return None
        voices.append(notes)
    length = max(o + d for o, d, _ in voices[0])
    try:
        k = score.analyze("key")
        tonic, mode = k.tonic.pitchClass, k.mode
    except Exception:  # noqa: BLE001 - analysis is best effort
        tonic, mode = 0, "major"
    shift = int(rng.integers(-5, 7))
    tempo = float(rng.integers(70, 141))
    total_beats = seconds * tempo / 60
    pick = 0.0
    if length % 4:
        pick = (4 - length % 4) % 4  # pad to whole bars so repeats stay in time
    period = length + pick
    repeats = max(1, math.ceil(total_beats / period))
    def looped(voice, transpose, lyric=False):
        out = []
        for r in range(repeats):
            for o, d, p in voice:
                if r * period + o < total_beats:
                    out.append(Note(p + shift + transpose, r * period + o, d * 0.97, int(rng.integers(70, 110)),
                                    lyric=KANA[int(rng.integers(len(KANA)))] if lyric else None))
        return out

    song = Song(tempo=tempo, key=f"{PITCH_NAMES[(tonic + shift) % 12]} {mode}", beats=math.ceil(total_beats / 4) * 4.0,
                tracks={}, material=material)
    lift = 12 if np.mean([p for _, _, p in voices[0]]) + shift < 62 else 0
    song.tracks["vocals"] = [Track("soprano", int(rng.choice(VOICE_PROGRAMS)), looped(voices[0], lift, True))]
    bass_prog = int(rng.choice(BASS_PROGRAMS + [32, 33, 43]))
    song.tracks["bass"] = [Track("bass", bass_prog, looped(voices[3], -12 if bass_prog != 43 else 0))]
    if rng.random() < 0.5:
        prog = int(rng.choice(OTHER_PROGRAMS["pad"] + OTHER_PROGRAMS["block"]))
        song.tracks["other"] = [Track("alto+tenor", prog, looped(voices[1], 0) + looped(voices[2], 0))]
    else:
        alto = int(rng.choice(OTHER_PROGRAMS["pad"] + OTHER_PROGRAMS["lead"]))
        alto_notes = looped(voices[1], 0)
        tenor = int(rng.choice(OTHER_PROGRAMS["block"] + OTHER_PROGRAMS["pad"]))
        song.tracks["other"] = [Track("alto", alto, alto_notes, pan=40),
                                Track("tenor", tenor, looped(voices[2], 0), pan=88)]
    bars = int(song.beats // 4)
    drum_from = int(rng.choice([0, 0, 2, 4])) if bars > 6 else 0
    sections = [{"kind": "chorale", "bar": 0, "bars": bars, "active": {s: True for s in STEMS}}]
    song.tracks["drums"] = [drum_track(rng, bars, lambda stem, beat: beat >= drum_from * 4,
                                       lambda beat: int(beat // 4) % 8 == 7, 0.0, sections)]
    song.sections = [{"kind": "chorale", "start_bar": 0, "bars": bars, "stems": list(STEMS)}]
    return song
