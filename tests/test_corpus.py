import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jukesep.errors import JukesepError

corpus = pytest.importorskip("jukesep.corpus")
from jukesep.corpus import SPLITS, STEMS, corpus_stats, plan_corpus, render_corpus  # noqa: E402
from jukesep.corpus.render import FILES, SF2_DIRS, Tools  # noqa: E402

HAVE_FLUIDSYNTH = shutil.which("fluidsynth") is not None and any((d / "FluidR3_GM.sf2").is_file() for d in SF2_DIRS)
needs_fluidsynth = pytest.mark.skipif(not HAVE_FLUIDSYNTH,
                                      reason="needs apt packages fluidsynth and fluid-soundfont-gm")
SECONDS = 3.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """4 songs of 3 s (2 train, 1 valid, 1 test), rendered once for the module."""
    out = tmp_path_factory.mktemp("corpus") / "c"
    summary = render_corpus(out, minutes=4 * SECONDS / 60, seed=7, jobs=2, song_seconds=SECONDS, progress=False)
    return out, summary


def songs(out: Path) -> list[Path]:
    return sorted(p for s in SPLITS for p in (out / s).iterdir() if p.is_dir())


def read(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    assert rate == 44100
    return data.T


@needs_fluidsynth
def test_layout_and_additivity(tiny):
    out, summary = tiny
    assert summary["songs"] == 4 and summary["rendered"] == 4
    assert summary["per_split"] == {"train": 2, "valid": 1, "test": 1}
    assert (out / "corpus.json").is_file()
    for song in songs(out):
        assert sorted(p.name for p in song.iterdir()) == sorted(FILES)
        stems = {s: read(song / f"{s}.wav") for s in STEMS}
        for s in STEMS:
            assert sf.info(str(song / f"{s}.wav")).subtype == "FLOAT"
            assert stems[s].shape == (2, int(SECONDS * 44100))
        mix = read(song / "mixture.wav")
        assert np.max(np.abs(mix - sum(stems.values()))) < 1e-6
        assert np.max(np.abs(mix)) <= 1.0
        meta = json.loads((song / "meta.json").read_text())
        assert meta["split"] == song.parent.name and meta["name"] == song.name
        assert 70 <= meta["tempo_bpm"] <= 170 and meta["key"]
        for s in STEMS:
            info = meta["stems"][s]
            sung = info.get("engine") == "pysinsy"
            assert info["instruments"] and all(sung or 0 <= i["gm_program"] <= 127 for i in info["instruments"])
            assert "soundfont" in info or info.get("engine") == "pysinsy"
    assert not list(out.glob("*/.tmp-*"))


@needs_fluidsynth
def test_stems_sound_where_meta_says(tiny):
    out, _ = tiny
    for song in songs(out):
        meta = json.loads((song / "meta.json").read_text())
        for s in STEMS:
            audio = read(song / f"{s}.wav")
            for start, end in meta["stems"][s]["plays"]:
                seg = audio[:, int(start * 44100):int(end * 44100)]
                if seg.shape[1] < 441:
                    continue
                rms = np.sqrt(np.mean(seg ** 2))
                assert 20 * np.log10(rms + 1e-12) > -60, (song.name, s, start, end)


@needs_fluidsynth
def test_splits_share_no_material(tiny):
    out, _ = tiny
    ids = {}
    for song in songs(out):
        m = json.loads((song / "meta.json").read_text())["material"]
        key = m.get("work") or m["id"]
        ids.setdefault(key, set()).add(song.parent.name)
    assert all(len(splits) == 1 for splits in ids.values())
    # and in a bigger plan (no rendering): music21 works and procedural streams stay in one split
    plan = plan_corpus("unused", minutes=400, seed=3, song_seconds=30)
    owner = {}
    for job in plan:
        m = job["material"]
        key = m.get("work") or m["id"]
        assert owner.setdefault(key, job["split"]) == job["split"]
    assert len({tuple(j["entropy"]) for j in plan}) == len(plan)


@needs_fluidsynth
def test_deterministic_and_resume(tiny, tmp_path):
    out, _ = tiny
    first = songs(out)[0]
    # same seed → same bytes: re-render one song elsewhere
    job = next(j for j in plan_corpus(tmp_path, 4 * SECONDS / 60, 7, SECONDS) if j["name"] == first.name)
    from jukesep.corpus.render import render_song
    render_song(job)
    for f in FILES:
        if f.endswith(".wav"):
            assert (first / f).read_bytes() == (Path(job["folder"]) / f).read_bytes(), f
    # resume: delete one song, only it is rebuilt, the others are untouched
    victim = songs(out)[-1]
    before = {p: p.stat().st_mtime_ns for p in songs(out) if p != victim}
    shutil.rmtree(victim)
    (victim.parent / f".tmp-{victim.name}-stale").mkdir()  # leftover of an interrupted run
    summary = render_corpus(out, minutes=4 * SECONDS / 60, seed=7, jobs=1, song_seconds=SECONDS, progress=False)
    assert summary["rendered_names"] == [victim.name] and summary["skipped"] == 3
    assert sorted(p.name for p in victim.iterdir()) == sorted(FILES)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())
    assert not list(out.glob("*/.tmp-*"))
    with pytest.raises(JukesepError, match="seed"):
        render_corpus(out, minutes=0.1, seed=8, song_seconds=SECONDS, progress=False)


@needs_fluidsynth
def test_stats_and_cli(tiny, capsys):
    import argparse

    from jukesep.corpus import cli
    out, _ = tiny
    stats = corpus_stats(out)
    assert stats["songs"] == 4 and stats["max_mixture_error"] < 1e-6
    assert stats["splits"]["train"]["minutes"] == pytest.approx(2 * SECONDS / 60, abs=1e-3)
    for s in STEMS:
        assert stats["splits"]["train"]["stems"][s]["rms_dbfs"] < 0
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["corpus", "stats", str(out), "--json"])
    assert args.func(args) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 4
    args = parser.parse_args(["corpus", "stats", str(out)])
    assert args.func(args) == 0
    table = capsys.readouterr().out.splitlines()
    assert "4 complete songs" in table[0] and table[2].startswith("train") and "dBFS/silent" in table[1]
    args = parser.parse_args(["corpus", "render", str(out), "--minutes", str(4 * SECONDS / 60), "--seed", "7",
                              "--song-seconds", str(SECONDS)])
    assert args.func(args) == 0
    assert "4 already there" in capsys.readouterr().out


def test_missing_tools_are_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JukesepError, match="apt install fluidsynth"):
        render_corpus(tmp_path / "c", minutes=0.1, song_seconds=3, progress=False)
    if HAVE_FLUIDSYNTH:
        monkeypatch.undo()
        with pytest.raises(JukesepError, match="fluid-soundfont-gm"):
            Tools(sf2_dirs=[tmp_path])
    with pytest.raises(JukesepError, match="minutes"):
        plan_corpus(tmp_path, minutes=0)


HAVE_HELDOUT = any((d / "OPL-3_FM_128M.sf2").is_file() for d in SF2_DIRS)


@needs_fluidsynth
@pytest.mark.skipif(not HAVE_HELDOUT, reason="needs apt package opl3-soundfont")
def test_heldout_split_uses_only_timbres_training_never_uses(tiny, tmp_path):
    out = tmp_path / "c"
    summary = render_corpus(out, minutes=SECONDS / 60, seed=7, song_seconds=SECONDS, progress=False,
                            heldout_minutes=SECONDS / 60, splits=(1, 0, 0))
    assert summary["per_split"]["heldout"] == 1
    [song] = (out / "heldout").iterdir()
    meta = json.loads((song / "meta.json").read_text())
    assert meta["soundfonts_used"] == ["OPL-3_FM_128M.sf2"] and meta["timbres"] == "held out"
    assert meta["vocals_engine"] != "pysinsy"  # the training voice is a timbre too
    for train_song in songs(tiny[0]) + sorted((out / "train").iterdir()):
        assert "OPL-3_FM_128M.sf2" not in json.loads((train_song / "meta.json").read_text())["soundfonts_used"]
    assert "heldout" in corpus_stats(out)["splits"]
    with pytest.raises(JukesepError, match="heldout-minutes"):
        plan_corpus(tmp_path, minutes=1, heldout_minutes=-1)


@needs_fluidsynth
def test_a_missing_heldout_font_stops_before_any_song_renders(tmp_path):
    fonts = tmp_path / "fonts"
    fonts.mkdir()
    gm = next(d / "FluidR3_GM.sf2" for d in SF2_DIRS if (d / "FluidR3_GM.sf2").is_file())
    (fonts / "FluidR3_GM.sf2").symlink_to(gm)  # the GM font only: no OPL-3
    with pytest.raises(JukesepError, match="opl3-soundfont"):
        render_corpus(tmp_path / "c", minutes=SECONDS / 60, seed=7, song_seconds=SECONDS, progress=False,
                      heldout_minutes=SECONDS / 60, sf2_dirs=[fonts])
    assert not (tmp_path / "c").exists()


def installed(name: str) -> bool:
    return any((d / name).is_file() for d in SF2_DIRS)


@needs_fluidsynth
@pytest.mark.skipif(not (installed("Red_Zeppelin_4_LV2.sf2") and installed("MuseScore_General_Lite.sf3")),
                    reason="needs apt packages avldrums.lv2-soundfont and musescore-general-soundfont-small")
def test_heldout_fonts_are_a_choice_and_a_heldout_split_renders_alone(tmp_path):
    out, held = tmp_path / "c", ["FluidR3_GM.sf2", "Red_Zeppelin_4_LV2.sf2"]
    summary = render_corpus(out, minutes=0, seed=7, song_seconds=SECONDS, progress=False,
                            heldout_minutes=2 * SECONDS / 60, heldout_fonts=held)
    assert summary["per_split"] == {"train": 0, "valid": 0, "test": 0, "heldout": 2}
    for song in sorted((out / "heldout").iterdir()):
        meta = json.loads((song / "meta.json").read_text())
        assert set(meta["soundfonts_used"]) <= set(held) and meta["timbres"] == "held out"
    with pytest.raises(JukesepError, match="heldout_fonts"):  # the same folder with other held-out fonts
        render_corpus(out, minutes=SECONDS / 60, seed=7, song_seconds=SECONDS, progress=False)
    train = render_corpus(tmp_path / "t", minutes=2 * SECONDS / 60, seed=7, song_seconds=SECONDS, progress=False,
                          splits=(1, 0, 0), heldout_fonts=held)
    for name in train["rendered_names"]:
        meta = json.loads((tmp_path / "t" / "train" / name / "meta.json").read_text())
        assert not set(meta["soundfonts_used"]) & set(held) and meta.get("timbres") == "training"
        assert "Red_Zeppelin" not in meta["stems"]["drums"].get("kit", "")


@needs_fluidsynth
def test_heldout_fonts_are_checked(tmp_path):
    with pytest.raises(JukesepError, match="unknown held-out soundfont nope.sf2"):
        Tools(heldout_fonts=["nope.sf2"])
    with pytest.raises(JukesepError, match="none is left"):
        Tools(heldout_fonts=sorted(n for n, (_, role) in corpus.render.SOUNDFONTS.items() if role == "gm"))
    if installed("Black_Pearl_4_LV2.sf2"):
        with pytest.raises(JukesepError, match="drum kits only"):
            Tools(heldout_fonts=["Black_Pearl_4_LV2.sf2"]).check_heldout()
    if installed("MuseScore_General_Lite.sf3"):  # holding out one MuseScore font holds out its family
        tools = Tools(heldout_fonts=["MuseScore_General_Lite.sf3"])
        assert tools.heldout == ["MuseScore_General_Lite.sf3"]
        assert not any(n.startswith("MuseScore") for n in tools.gm) and "FluidR3_GM.sf2" in tools.gm
    with pytest.raises(JukesepError, match="minutes"):
        plan_corpus(tmp_path, minutes=0)
    from jukesep.cli import build_parser
    args = build_parser().parse_args(["corpus", "render", str(tmp_path / "c"), "--minutes", "0",
                                      "--heldout-minutes", "1", "--heldout-fonts", "nope.sf2"])
    with pytest.raises(JukesepError, match="unknown held-out soundfont"):
        args.func(args)
