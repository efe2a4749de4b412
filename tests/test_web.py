"""`jukesep serve`: the web app's API, job queue, persistence, limits and CLI (tiny model, fast)."""
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import zipfile

import av
import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

import warnings  # noqa: E402

with warnings.catch_warnings():  # Starlette >= 1.x suggests httpx2; httpx works
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from jukesep.api import Separator  # noqa: E402
from jukesep.checkpoint import save_model  # noqa: E402
from jukesep.errors import CheckpointError, JukesepError, TooShortAudioError, UnreadableAudioError  # noqa: E402
from jukesep.web import create_app  # noqa: E402
from jukesep.web.cli import main as serve_main  # noqa: E402
from jukesep.web.jobs import user_message  # noqa: E402
from jukesep.web.modelcard import model_card  # noqa: E402
from jukesep.web.progress import STAGES, EtaClock  # noqa: E402
from jukesep.web.store import JobStore  # noqa: E402
from tests.conftest import RATE, music, random_separator  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
STEMS = ["vocals", "drums", "bass", "other"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, "separator", random_separator(), {"trained_on": "test"})
    return path


@pytest.fixture(scope="module")
def separator(model_file):
    # short chunks, so a song of a second has several progress steps
    return Separator.from_pretrained(model_file, device="cpu", segment=0.25)


class SlowSeparator:
    """The real separator, slowed down per chunk so tests can watch queue and progress. The worker
    only calls `separate_file_to` (the one door); everything else is the real separator's."""

    def __init__(self, inner, delay=0.05):
        self.inner, self.delay = inner, delay
        self.paths = []  # what the worker asked to separate

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def separate_file_to(self, path, targets, *args, progress=None, **kwargs):
        self.paths.append(path)

        def slow(done, total):
            time.sleep(self.delay)
            if progress:
                progress(done, total)
        return self.inner.separate_file_to(path, targets, *args, progress=slow, **kwargs)


class GatedSeparator(SlowSeparator):
    """Holds every separation until `gate` is set, so the queue can be inspected."""

    def __init__(self, inner, delay=0.0):
        super().__init__(inner, delay)
        self.gate = threading.Event()

    def separate_file_to(self, path, targets, *args, **kwargs):
        assert self.gate.wait(30)
        return super().separate_file_to(path, targets, *args, **kwargs)


def silent_wav(seconds=0.25):
    buf = io.BytesIO()
    sf.write(buf, np.zeros((int(RATE * seconds), 2), np.float32), RATE, format="WAV")
    return buf.getvalue()


def wav_bytes(seconds, channels=2, seed=0, subtype="PCM_16", rate=RATE):
    audio = music(seconds, rate, channels, seed)
    buf = io.BytesIO()
    sf.write(buf, audio.T, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def upload(client, data, name="song.wav"):
    return client.post("/api/jobs", files={"file": (name, data, "application/octet-stream")})


def wait(client, job_id, timeout=60, statuses=("done", "failed")):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def decode(content):
    audio, rate = sf.read(io.BytesIO(content), dtype="float32", always_2d=True)
    return audio.T, rate


def test_upload_progress_result_download(tmp_path, separator):
    app = create_app(SlowSeparator(separator), tmp_path / "data")
    data = wav_bytes(1.0)
    with TestClient(app) as client:
        assert client.get("/").status_code == 200
        assert client.get("/static/app.js").status_code == 200
        cfg = client.get("/api/config").json()
        assert cfg["stems"] == STEMS and cfg["max_upload_mb"] == 200 and cfg["max_minutes"] == 20

        response = upload(client, data, "My Song.wav")
        assert response.status_code == 201, response.text
        job = response.json()
        assert job["status"] in ("queued", "running") and job["name"] == "My Song.wav"
        assert job["duration"] == pytest.approx(1.0) and job["rate"] == RATE and job["channels"] == 2

        seen = []
        while job["status"] not in ("done", "failed"):
            job = client.get(f"/api/jobs/{job['id']}").json()
            if job["status"] == "running":
                seen.append((job["progress"]["phase"], job["progress"]["fraction"]))
            time.sleep(0.02)
        assert job["status"] == "done", job
        fractions = [f for phase, f in seen if phase == "separating"]
        assert fractions and 0 < max(fractions) <= 1 and fractions == sorted(fractions)

        original, _ = decode(data)
        assert [s["name"] for s in job["stems"]] == STEMS
        for stem in job["stems"] + [job["mixture"]]:
            r = client.get(stem["url"])
            assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
            audio, rate = decode(r.content)
            assert rate == RATE and audio.shape == original.shape
            assert np.abs(audio).max() > 0
        mixture, _ = decode(client.get(job["mixture"]["url"]).content)
        assert np.allclose(mixture, original, atol=1e-4)
        named = client.get(job["stems"][0]["download"])
        assert "attachment" in named.headers["content-disposition"]
        assert "My%20Song%20-%20vocals.wav" in named.headers["content-disposition"]

        r = client.get(job["zip"])
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        assert "My%20Song%20-%20stems.zip" in r.headers["content-disposition"]
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert sorted(archive.namelist()) == sorted(f"My Song/{s}.wav" for s in STEMS)
            for name in archive.namelist():
                assert decode(archive.read(name))[0].shape == original.shape

        peaks = client.get(job["peaks"]).json()
        assert peaks["duration"] == pytest.approx(1.0)
        assert set(peaks["tracks"]) == set(STEMS) | {"mixture"}
        assert all(lo <= hi for lo, hi in peaks["tracks"]["vocals"])

        # the upload itself is not kept once the stems exist; nothing is named after the user's file
        folder = tmp_path / "data" / "jobs" / job["id"]
        assert sorted(p.name for p in folder.iterdir()) == ["peaks.json", "previews", "stems", "stems.zip"]


def test_rejections_have_clear_json_errors_and_leave_nothing(tmp_path, separator):
    # 0.1 MB and 0.01 minutes (0.6 s)
    app = create_app(separator, tmp_path / "data", max_upload_mb=0.1, max_minutes=0.01)
    with TestClient(app) as client:
        cases = [
            (wav_bytes(1.0, subtype="FLOAT"), "big.wav", 413, "larger than the 0.1 MB upload limit"),
            (wav_bytes(0.9, channels=1), "long.wav", 422, "the limit is 0.01 minutes"),
            (os.urandom(20000), "noise.mp3", 422, "not an audio file"),
            (b"<html>hello</html>" * 100, "page.wav", 422, "not an audio file"),
            (b"", "empty.flac", 422, "empty"),
            (np.zeros((RATE // 4, 2), np.int16).tobytes(), "raw.wav", 422, "not an audio file"),
            (wav_bytes(5 / RATE, channels=1), "blip.wav", 422, "too short to separate"),  # < one hop of 8
            (wav_bytes(0.01, channels=33), "many.wav", 422, "33 channels is more than"),
        ]
        for data, name, status, message in cases:
            for how in ("multipart", "raw"):
                if how == "multipart":
                    r = upload(client, data, name)
                else:
                    r = client.post("/api/jobs", content=data, headers={"X-Filename": name})
                assert r.status_code == status, (name, how, r.text)
                assert message in r.json()["error"], (name, how, r.json())
                assert "/" not in r.json()["error"].split(":")[0]  # no server path in the message
        r = client.post("/api/jobs", data={"other": "x"}, files={"nofile": ("a.wav", b"x")})
        assert r.status_code == 422 and "no file" in r.json()["error"]
        r = client.post("/api/jobs", content=b"x" * 200_000, headers={"Content-Length": "200000"})
        assert r.status_code == 413
        assert list((tmp_path / "data" / "jobs").iterdir()) == []

        # the server and its worker are fine afterwards
        r = upload(client, wav_bytes(0.5, channels=1), "ok.wav")
        assert r.status_code == 201, r.text
        assert wait(client, r.json()["id"])["status"] == "done"

        assert client.get("/api/jobs/" + "A" * 22).status_code == 404
        assert client.get("/api/jobs/..%2F..%2Fetc").status_code == 404
        assert client.get(f"/api/jobs/{r.json()['id']}/audio/..%2Fpeaks.json").status_code == 404
        assert client.get(f"/api/jobs/{r.json()['id']}/audio/guitar.wav").status_code == 404
        assert client.get("/api/jobs/nope").json() == {"error": "no such job (it may have expired)"}


class DecodeCounter:
    """Counts every decode in this process (read_audio decodes wav through soundfile.read)."""

    def __init__(self, monkeypatch):
        self.calls = []
        real = sf.read

        def counted(file, *args, **kwargs):
            self.calls.append(str(file))
            return real(file, *args, **kwargs)
        monkeypatch.setattr(sf, "read", counted)


def test_a_song_is_decoded_once_by_the_worker_through_separate_file(tmp_path, separator, monkeypatch):
    gated = GatedSeparator(separator)  # holds the worker before it decodes
    decodes = DecodeCounter(monkeypatch)
    with TestClient(create_app(gated, tmp_path / "data")) as client:
        r = upload(client, wav_bytes(0.5), "once.wav")
        assert r.status_code == 201, r.text
        assert decodes.calls == []  # the upload handler reads the header only
        gated.gate.set()
        job = wait(client, r.json()["id"])
        assert job["status"] == "done", job
        assert len(gated.paths) == 1 and decodes.calls == [str(gated.paths[0])]


def test_non_audio_and_too_long_uploads_are_refused_from_the_header(tmp_path, separator, monkeypatch):
    decodes = DecodeCounter(monkeypatch)
    with TestClient(create_app(separator, tmp_path / "data", max_minutes=0.01)) as client:
        for data, name, message in [(b"GIF89a" + bytes(5000), "picture.wav", "not an audio file"),
                                    (wav_bytes(2.0), "long.wav", "the limit is 0.01 minutes")]:
            r = client.post("/api/jobs", content=data, headers={"X-Filename": name})
            assert r.status_code == 422 and message in r.json()["error"], (name, r.text)
    assert decodes.calls == []
    assert list((tmp_path / "data" / "jobs").iterdir()) == []


def test_content_problems_fail_the_job_with_a_clear_reason(tmp_path, separator):
    # silence and NaN show only when the whole song is decoded: the worker does that, the job says why
    nan = io.BytesIO()
    audio = music(0.5, RATE, 2, 0).T.copy()
    audio[100] = np.nan
    sf.write(nan, audio, RATE, format="WAV", subtype="FLOAT")
    with TestClient(create_app(separator, tmp_path / "data")) as client:
        for data, name, message in [(silent_wav(), "quiet.wav", "silent"), (nan.getvalue(), "nan.wav", "NaN")]:
            r = upload(client, data, name)
            assert r.status_code == 201, r.text
            job = wait(client, r.json()["id"])
            assert job["status"] == "failed" and message in job["error"], job
            assert job["error"].startswith(f"{name}: ") and str(tmp_path) not in job["error"]
            assert client.get(f"/api/jobs/{job['id']}/zip").status_code == 409
        # the worker goes on with the next song
        r = upload(client, wav_bytes(0.3), "fine.wav")
        assert wait(client, r.json()["id"])["status"] == "done"


def test_job_errors_are_told_by_type_and_never_show_server_paths(tmp_path):
    path = tmp_path / "jobs" / "abc" / "input.mp3"
    broken = UnreadableAudioError(f"{path}: ffmpeg could not decode it (Invalid data found)")
    assert user_message(broken, path, "song.mp3") == "song.mp3: this is not an audio file that can be decoded"
    short = TooShortAudioError(f"{path}: too short to separate (3 samples at 44100 Hz; at least 8 are needed)")
    assert user_message(short, path, "song.mp3").startswith("song.mp3: too short to separate (3 samples")


def test_audio_is_recognised_by_content_not_extension(tmp_path, separator):
    app = create_app(separator, tmp_path / "data", max_upload_mb=1)
    with TestClient(app) as client:
        r = upload(client, wav_bytes(0.4), "actually-a-wav.txt")
        assert r.status_code == 201, r.text
        assert wait(client, r.json()["id"])["status"] == "done"
        # a streamed (chunked) upload is cut off at the limit too
        r = client.post("/api/jobs", content=(b"\1" * 2**18 for _ in range(8)), headers={"X-Filename": "big.wav"})
        assert r.status_code == 413 and "1 MB upload limit" in r.json()["error"]


def test_file_names_never_become_paths_and_ids_are_random(tmp_path, separator):
    app = create_app(separator, tmp_path / "data")
    with TestClient(app) as client:
        ids = []
        for name in ["../../escape.wav", "..\\..\\win.FLAC", "/etc/passwd", "na\x00me.wav;rm -rf", "x" * 500 + ".wav"]:
            r = upload(client, wav_bytes(0.3, channels=1), name)
            assert r.status_code == 201, (name, r.text)
            job = r.json()
            ids.append(job["id"])
            assert "/" not in job["name"] and "\\" not in job["name"] and "\x00" not in job["name"]
            folder = tmp_path / "data" / "jobs" / job["id"]
            assert [p.name for p in folder.iterdir() if p.name.startswith("input")] in (
                [], ["input.wav"], ["input.flac"], ["input"])
        assert len(set(ids)) == len(ids) and all(len(i) >= 22 for i in ids)
        for job_id in ids:
            assert wait(client, job_id)["status"] == "done"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir() if not p.name.startswith("jobs.sqlite3")) == ["jobs"]


def test_concurrent_submissions_all_finish_without_mix_up(tmp_path, separator):
    gated = GatedSeparator(separator)
    app = create_app(gated, tmp_path / "data", workers=2)
    lengths = [0.3, 0.45, 0.6, 0.75, 0.9]
    songs = {i: wav_bytes(s, channels=1 + i % 2, seed=i) for i, s in enumerate(lengths)}
    with TestClient(app) as client:
        results = {}

        def submit(i):
            results[i] = upload(client, songs[i], f"song{i}.wav")

        threads = [threading.Thread(target=submit, args=(i,)) for i in songs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r.status_code == 201 for r in results.values()), [r.text for r in results.values()]
        ids = [r.json()["id"] for r in results.values()]
        deadline = time.monotonic() + 30
        while sum(client.get(f"/api/jobs/{i}").json()["status"] == "running" for i in ids) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        jobs = [client.get(f"/api/jobs/{i}").json() for i in ids]  # two workers busy, three waiting in order
        assert sorted(j["status"] for j in jobs) == ["queued"] * 3 + ["running"] * 2
        assert sorted(j["queue_ahead"] for j in jobs if j["status"] == "queued") == [0, 1, 2]
        gated.gate.set()
        for i, r in results.items():
            job = wait(client, r.json()["id"])
            assert job["status"] == "done", job
            assert job["name"] == f"song{i}.wav"
            original, _ = decode(songs[i])
            expected = separator.separate(original, RATE)
            for stem in job["stems"]:
                audio, _ = decode(client.get(stem["url"]).content)
                assert audio.shape == original.shape, (i, stem["name"])
                assert np.allclose(audio, expected[stem["name"]], atol=1e-4), (i, stem["name"])
            mixture, _ = decode(client.get(job["mixture"]["url"]).content)
            assert np.allclose(mixture, original, atol=1e-4), i


def test_restart_keeps_finished_jobs_and_recovers_interrupted_ones(tmp_path, separator):
    data_dir = tmp_path / "data"
    song = wav_bytes(0.5)
    with TestClient(create_app(separator, data_dir)) as client:
        done_id = upload(client, song, "kept.wav").json()["id"]
        assert wait(client, done_id)["status"] == "done"

    # simulate a crash: jobs the database says are running, with and without their input
    store = JobStore(data_dir / "jobs.sqlite3")
    crashed = {}
    for key, attempts in (("once", 1), ("twice", 2), ("lost", 1)):
        job_id = f"crashed-job-{key}-000000"
        (data_dir / "jobs" / job_id).mkdir()
        if key != "lost":
            (data_dir / "jobs" / job_id / "input.wav").write_bytes(song)
        store.add(job_id, f"{key}.wav", ".wav", 0.5, RATE, 2, len(song))
        for _ in range(attempts):
            claimed = store.claim_next()
            assert claimed["id"] == job_id
            if _ < attempts - 1:
                store.requeue(job_id, "test")
        crashed[key] = job_id
    assert store.get(crashed["once"])["status"] == "running"
    store.close()

    with TestClient(create_app(separator, data_dir)) as client:
        job = client.get(f"/api/jobs/{done_id}").json()
        assert job["status"] == "done" and job["name"] == "kept.wav"
        assert decode(client.get(job["stems"][0]["url"]).content)[0].shape == decode(song)[0].shape
        requeued = wait(client, crashed["once"])
        assert requeued["status"] == "done" and "restarted" in requeued["note"]
        twice = client.get(f"/api/jobs/{crashed['twice']}").json()
        assert twice["status"] == "failed" and "stopped 2 times" in twice["error"]
        lost = client.get(f"/api/jobs/{crashed['lost']}").json()
        assert lost["status"] == "failed" and "missing" in lost["error"]


def test_stopping_the_server_puts_a_running_job_back_in_line(tmp_path, separator):
    data_dir = tmp_path / "data"
    with TestClient(create_app(SlowSeparator(separator, delay=0.2), data_dir)) as client:
        job_id = upload(client, wav_bytes(1.0), "long.wav").json()["id"]
        wait(client, job_id, statuses=("running",))
    # the app's shutdown abandoned the separation at its next chunk
    store = JobStore(data_dir / "jobs.sqlite3")
    job = store.get(job_id)
    store.close()
    assert job["status"] == "queued" and job["attempts"] == 0 and "stopped" in job["note"]
    with TestClient(create_app(separator, data_dir)) as client:
        assert wait(client, job_id)["status"] == "done"


def test_retention_deletes_old_jobs_files_and_rows(tmp_path, separator):
    app = create_app(separator, tmp_path / "data", retention_hours=1)
    with TestClient(app) as client:
        job_id = upload(client, wav_bytes(0.3), "old.wav").json()["id"]
        assert wait(client, job_id)["status"] == "done"
        fresh_id = upload(client, wav_bytes(0.3), "new.wav").json()["id"]
        assert wait(client, fresh_id)["status"] == "done"
        manager = app.state.manager
        # an hour after the first job finished but not yet the second (the clock is cleanup's `now`)
        finished = [client.get(f"/api/jobs/{i}").json()["finished"] for i in (job_id, fresh_id)]
        now = sum(finished) / 2 + 3600
        orphan = tmp_path / "data" / "jobs" / "orphan-upload-0000000"
        orphan.mkdir()
        os.utime(orphan, (now - 7200, now - 7200))
        assert manager.cleanup(now=now) == [job_id]
        assert client.get(f"/api/jobs/{job_id}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / job_id).exists() and not orphan.exists()
        assert client.get(f"/api/jobs/{fresh_id}").json()["status"] == "done"
        # and deleting by hand
        assert client.delete(f"/api/jobs/{fresh_id}").status_code == 204
        assert client.get(f"/api/jobs/{fresh_id}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / fresh_id).exists()


def test_host_check_blocks_other_host_names(tmp_path, separator):
    app = create_app(separator, tmp_path / "data", allowed_hosts=["127.0.0.1", "localhost", "::1"])
    with TestClient(app, base_url="http://127.0.0.1:8000") as client:
        assert client.get("/api/config").status_code == 200
        r = client.get("/api/config", headers={"Host": "evil.example:8000"})
        assert r.status_code == 400 and r.json()["error"] == "invalid Host header"


def test_serve_cli_errors_are_one_line(tmp_path, capsys, model_file, monkeypatch):
    with monkeypatch.context() as broken_install:
        broken_install.setattr("jukesep.api.PRETRAINED_DIR", tmp_path / "nothing")
        assert serve_main(["serve", "--data-dir", str(tmp_path / "d"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("jukesep: error: no trained default model") and err.count("\n") == 1
    assert serve_main(["serve", "--model", str(tmp_path / "missing.pt"), "--port", "0"]) == 1
    assert "jukesep: error:" in capsys.readouterr().err
    assert serve_main(["serve", "--model", str(model_file), "--workers", "0"]) == 1
    assert "--workers must be at least 1" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert serve_main(["serve", "--model", str(model_file), "--port", str(port)]) == 1
        assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        create_app("no-such-model", tmp_path / "d2")
    with pytest.raises(JukesepError):
        create_app(model_file, tmp_path / "d3", workers=0)


def test_register_adds_serve_to_a_parser():
    import argparse

    from jukesep.web.cli import cmd_serve, register
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["serve", "--model", "m.pt", "--port", "9000", "--max-upload-mb", "5",
                              "--max-minutes", "3", "--workers", "2", "--data-dir", "d", "--max-disk-gb", "1.5"])
    assert args.func is cmd_serve and args.host == "127.0.0.1" and args.port == 9000
    assert (args.max_upload_mb, args.max_minutes, args.workers, str(args.data_dir)) == (5, 3, 2, "d")
    assert args.max_disk_gb == 1.5 and parser.parse_args(["serve"]).max_disk_gb == 10


def test_serve_subprocess_answers_on_loopback(tmp_path, model_file):
    proc = subprocess.Popen([sys.executable, "-m", "jukesep.web", "serve", "--model", str(model_file), "--port", "0",
                             "--data-dir", str(tmp_path / "d")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("jukesep: serving http://127.0.0.1:"), (line, proc.poll())
        url = line.split()[2]
        import httpx
        r = httpx.get(url + "api/config", timeout=10)
        assert r.status_code == 200 and r.json()["model"] == "tiny"
        assert json.loads(httpx.get(url + "api/jobs/xyz", timeout=10).text)["error"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode in (0, -15)


# -- issue 14: stems chosen at upload, formats, no_vocals, previews, mixes, progress, model card --------
Q16 = 2 / 32767  # two 16-bit steps: files written at 16 bits, compared after arithmetic


def one_line_error(response, status):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message
    return message


def post(client, data, name="song.wav", stems=None):
    url = "/api/jobs" + (f"?stems={stems}" if stems is not None else "")
    return client.post(url, files={"file": (name, data, "application/octet-stream")})


def test_stems_query_computes_only_those_and_no_vocals_is_the_rest(tmp_path, separator):
    spy = SlowSeparator(separator, delay=0)
    with TestClient(create_app(spy, tmp_path / "data")) as client:
        for stems, words in [("guitar", "stem guitar not in this model (it has vocals, drums, bass, other)"),
                             ("vocals,vocals", "stem names repeat"), (",", "stem (none) not in this model"),
                             ("vocals,drums,bass,other,x,y,z", "stem x not in this model")]:
            assert words in one_line_error(post(client, wav_bytes(0.5), stems=stems), 422)
        assert list((tmp_path / "data" / "jobs").iterdir()) == []  # refused before the body was kept

        r = post(client, wav_bytes(1.0), "Karaoke.wav", stems="vocals")
        assert r.status_code == 201 and r.json()["wanted"] == ["vocals"]
        job = wait(client, r.json()["id"])
        assert job["status"] == "done", job
        assert [s["name"] for s in job["stems"]] == ["vocals"] and job["player"] == ["mixture", "vocals", "no_vocals"]
        folder = tmp_path / "data" / "jobs" / job["id"]
        assert sorted(p.name for p in (folder / "stems").iterdir()) == ["mixture.wav", "vocals.wav"]
        mixture, _ = decode(client.get(job["mixture"]["url"]).content)
        vocals, _ = decode(client.get(job["stems"][0]["url"]).content)
        rest = client.get(job["no_vocals"]["url"])
        assert rest.status_code == 200 and rest.headers["content-type"] == "audio/wav"
        assert np.allclose(decode(rest.content)[0], mixture - vocals, atol=Q16)
        with zipfile.ZipFile(io.BytesIO(client.get(job["zip"]).content)) as archive:
            assert sorted(archive.namelist()) == ["Karaoke/no_vocals.wav", "Karaoke/vocals.wav"]
        assert set(client.get(job["peaks"]).json()["tracks"]) == {"mixture", "vocals", "no_vocals"}
        assert client.get(job["no_vocals"]["url"].replace("no_vocals", "drums")).status_code == 404

        # a whole separation has no_vocals too (mixture − vocals), but plays the four stems
        full = wait(client, post(client, wav_bytes(0.5)).json()["id"])
        assert [s["name"] for s in full["stems"]] == STEMS and full["player"] == ["mixture", *STEMS]
        assert client.get(full["no_vocals"]["url"]).status_code == 200


def test_downloads_in_wav_flac_and_mp3(tmp_path, separator):
    with TestClient(create_app(separator, tmp_path / "data")) as client:
        job = wait(client, post(client, wav_bytes(1.0), "My Song.wav").json()["id"])
        assert job["formats"] == ["wav", "flac", "mp3"]
        vocals = job["stems"][0]
        wav, _ = decode(client.get(vocals["url"]).content)
        flac = client.get(vocals["downloads"]["flac"])
        assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
        assert "My%20Song%20-%20vocals.flac" in flac.headers["content-disposition"]
        assert np.array_equal(decode(flac.content)[0], wav)  # lossless
        mp3 = client.get(job["no_vocals"]["downloads"]["mp3"])
        assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
        assert "My%20Song%20-%20no_vocals.mp3" in mp3.headers["content-disposition"]
        with av.open(io.BytesIO(mp3.content)) as container:
            assert container.streams.audio[0].codec_context.name.startswith("mp3")
            assert abs(sum(f.samples for f in container.decode(audio=0)) / RATE - 1.0) < 0.1
        # made once, then served from disk
        assert (tmp_path / "data" / "jobs" / job["id"] / "exports" / "vocals.flac").is_file()
        for bad in ("vocals.ogg", "vocals", "vocals.wav.flac", "../stems/vocals.wav", "guitar.flac"):
            assert client.get(f"/api/jobs/{job['id']}/audio/{bad}").status_code == 404, bad

        # mp3 holds two channels: a 3-channel song offers wav and flac only, and says why on mp3
        three = wait(client, post(client, wav_bytes(0.5, channels=3), "three.wav").json()["id"])
        assert three["formats"] == ["wav", "flac"]
        assert "mp3 holds at most 2 channels" in one_line_error(
            client.get(three["mixture"]["url"].replace(".wav", ".mp3")), 422)

        # results of a job still waiting: 409
        gated = GatedSeparator(separator)
    with TestClient(create_app(gated, tmp_path / "data2")) as client:
        waiting = post(client, wav_bytes(0.5)).json()["id"]
        for url in ("audio/vocals.flac", "audio/no_vocals.wav", "preview/vocals", "mix.wav?gains=vocals:1"):
            assert client.get(f"/api/jobs/{waiting}/{url}").status_code == 409, url
        gated.gate.set()
        wait(client, waiting)


def test_previews_are_opus_and_answer_ranges(tmp_path, separator):
    with TestClient(create_app(separator, tmp_path / "data")) as client:
        job = wait(client, post(client, wav_bytes(1.3, channels=1)).json()["id"])
        folder = tmp_path / "data" / "jobs" / job["id"]
        assert sorted(p.name for p in (folder / "previews").iterdir()) == sorted(f"{t}.ogg" for t in job["player"])
        for track in [job["mixture"], *job["stems"]]:
            r = client.get(track["preview"])
            assert r.status_code == 200 and r.headers["content-type"] == "audio/ogg"
            assert r.headers["accept-ranges"] == "bytes" and r.content[:4] == b"OggS"
            with av.open(io.BytesIO(r.content)) as container:
                stream = container.streams.audio[0]
                assert stream.codec_context.name == "opus" and stream.codec_context.channels == 1
                frames = sum(f.samples for f in container.decode(audio=0))
            assert frames == pytest.approx(1.3 * 48000, abs=2)  # no padding: stems stay in sync
            assert len(r.content) < len(client.get(track["url"]).content) / 4
        size = len(client.get(job["mixture"]["preview"]).content)
        part = client.get(job["mixture"]["preview"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.headers["content-range"] == f"bytes 100-199/{size}"
        assert len(part.content) == 100
        tail = client.get(job["mixture"]["preview"], headers={"Range": "bytes=-100"})  # the last 100 bytes
        assert tail.status_code == 206 and tail.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
        assert len(tail.content) == 100
        past = client.get(job["mixture"]["preview"], headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{size}"
        # a job from before previews existed gets them on first request
        shutil.rmtree(folder / "previews")
        assert client.get(job["no_vocals"]["preview"]).status_code == 200
        assert client.get(job["stems"][1]["preview"]).status_code == 200
        assert client.get(f"/api/jobs/{job['id']}/preview/guitar").status_code == 404


def test_custom_mix_renders_what_is_heard(tmp_path, separator):
    with TestClient(create_app(separator, tmp_path / "data")) as client:
        job = wait(client, post(client, wav_bytes(1.0), "Mix Me.wav").json()["id"])
        tracks = {s["name"]: decode(client.get(s["url"]).content)[0] for s in job["stems"]}
        r = client.get(f"{job['mix']}.wav?gains=vocals:1,drums:0.5")
        assert r.status_code == 200 and "Mix%20Me%20-%20mix.wav" in r.headers["content-disposition"]
        expected = tracks["vocals"] + 0.5 * tracks["drums"]
        peak = np.abs(expected).max()
        mixed = decode(r.content)[0]
        assert np.allclose(mixed, expected / max(1.0, peak), atol=Q16)  # scaled down whole if it passes full scale
        flac = client.get(f"{job['mix']}.flac?gains=bass:1.5,other:0.25")
        assert flac.status_code == 200 and flac.headers["content-type"] == "audio/flac"
        assert client.get(f"{job['mix']}.mp3?gains=mixture:1").headers["content-type"] == "audio/mpeg"
        mixes = tmp_path / "data" / "jobs" / job["id"] / "mixes"
        assert list(mixes.iterdir()) == []  # rendered, sent, deleted
        stale = mixes / "cut-off.wav"  # a download that never finished leaves its file: the next render removes it
        stale.write_bytes(b"x")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        assert client.get(f"{job['mix']}.wav?gains=vocals:1").status_code == 200
        assert list(mixes.iterdir()) == []
        for gains, words in [("guitar:1", "tracks from mixture, vocals"), ("vocals:3", "from 0 to 2"),
                             ("vocals:nan", "from 0 to 2"), ("vocals:1,vocals:1", "given twice"),
                             ("vocals:0", "every track is silent"), ("vocals", "track:gain pairs"),
                             (",".join(["vocals:1"] * 50), "at most")]:
            assert words in one_line_error(client.get(f"{job['mix']}.wav?gains={gains}"), 422), gains
        assert client.get(f"{job['mix']}.ogg?gains=vocals:1").status_code == 404


class FinishSlowly(SlowSeparator):
    """Holds the last progress report (the model is through the song; refinement runs next)."""

    def separate_file_to(self, path, targets, *args, progress=None, **kwargs):
        def hold_at_end(done, total):
            progress(done, total)
            if done >= total:
                time.sleep(0.5)
        return super().separate_file_to(path, targets, *args, progress=hold_at_end, **kwargs)


def test_progress_names_stages_in_seconds_with_an_eta(tmp_path, model_file):
    refining = Separator.from_pretrained(model_file, device="cpu", segment=0.25, refine="softmask")
    with TestClient(create_app(FinishSlowly(refining, delay=0.08), tmp_path / "data")) as client:
        job = post(client, wav_bytes(2.0)).json()
        seen = []
        while job["status"] not in ("done", "failed"):
            job = client.get(f"/api/jobs/{job['id']}").json()
            if job["status"] == "running":
                seen.append(job["progress"])
            time.sleep(0.02)
        assert job["status"] == "done", job
    stages = [p["phase"] for p in seen]
    assert set(stages) <= set(STAGES) and "separating" in stages and "refining" in stages
    order = [STAGES.index(s) for s in stages]
    assert order == sorted(order)  # stages only move forward
    separating = [p for p in seen if p["phase"] == "separating"]
    assert all(p["total"] == pytest.approx(2.0) and 0 <= p["done"] <= 2.0 for p in separating)
    assert any(p["eta"] is not None for p in separating)
    assert all(p["eta"] is None for p in seen if p["phase"] != "separating")


def test_eta_counts_down_steadily_through_uneven_chunks():
    clock, now, done, total = EtaClock(), 0.0, 0.0, 240.0
    rng = np.random.default_rng(0)
    shown = []
    clock.report(now, done)
    assert clock.eta(now, done, total) is None  # no speed before the second report
    while done < total:
        step = 4.0 if rng.random() > 0.1 else 0.0  # now and then a chunk reports nothing new
        wall = rng.uniform(0.5, 1.5) * (6.0 if done == 120.0 else 1.0)  # one slow stretch (a block edge)
        now += wall
        done = min(total, done + step)
        clock.report(now, done)
        eta = clock.eta(now, done, total)
        if eta is not None:
            shown.append((now, eta))
    # the truth is ~1 s per 4 s of audio: the estimate lands there and never jumps
    assert abs(shown[5][1] - (total - 20) / 4) < 30
    for (t0, e0), (t1, e1) in zip(shown, shown[1:]):
        assert e1 - e0 < 0.5 * (t1 - t0) + 3.0, (t0, e0, e1)  # never climbs by more than a few seconds
    assert shown[-1][1] < 5


def test_model_card_shows_what_the_metadata_has():
    class Fake:
        stems = ["vocals", "drums"]
        refine = "none"

        def __init__(self, name, metadata):
            self.name, self.metadata = name, metadata

    shipped = model_card(Fake("default", {
        "demo": "a demo model: small", "data": "rendered corpus", "recipe": "train twice",
        "scores": {"test": {"mdx_sdr": {"vocals": 3.14159, "drums": float("nan")}, "songs": 8, "minutes": 4.0},
                   "broken": "not a dict"}}))
    assert shipped["demo"] and shipped["demo_note"] == "a demo model: small"
    assert shipped["scores"] == [{"split": "test", "sdr": {"vocals": 3.14}, "songs": "8", "minutes": "4.0",
                                  "refine": None}]
    legacy = model_card(Fake("default", {"test_sdr_mdx": {"vocals": 2.97, "average": 2.96}, "test_split": "8 songs"}))
    assert legacy["demo"] and "demo model" in legacy["demo_note"]  # named default: still said plainly
    assert legacy["scores"][0]["sdr"] == {"vocals": 2.97, "average": 2.96} and legacy["scores"][0]["songs"] == "8 songs"
    bare = model_card(Fake("mine", None))
    assert bare == {"name": "mine", "stems": ["vocals", "drums"], "data": None, "recipe": None, "budget": None,
                    "notes": None, "scores": [], "refine": "none", "demo": False, "demo_note": None}
    odd = model_card(Fake("mine", {"data": {"nested": 1}, "notes": "x" * 5000, "scores": [1, 2], "demo": None}))
    assert odd["data"] is None and len(odd["notes"]) == 600 and odd["scores"] == [] and odd["demo"]
    assert not math.isnan(legacy["scores"][0]["sdr"]["vocals"])


def test_config_carries_the_model_card(tmp_path, separator):
    with TestClient(create_app(separator, tmp_path / "data")) as client:
        cfg = client.get("/api/config").json()
    assert cfg["model_card"]["name"] == "tiny" and cfg["model_card"]["data"] == "test"
    assert cfg["model_card"]["demo"] is False and cfg["formats"] == ["wav", "flac", "mp3"]


def test_a_preview_that_cannot_be_made_never_fails_the_job(tmp_path, separator, monkeypatch):
    from jukesep.web import media

    def broken(source, target):
        raise OSError("no Opus encoder in this build")
    monkeypatch.setattr(media, "write_preview", broken)
    with TestClient(create_app(separator, tmp_path / "data")) as client:
        job = wait(client, post(client, wav_bytes(0.5)).json()["id"])
        assert job["status"] == "done", job  # the page plays the wav instead
        assert "could not be made on the server" in one_line_error(client.get(job["mixture"]["preview"]), 500)
        assert client.get(job["stems"][0]["url"]).status_code == 200


def test_files_made_on_request_are_made_a_few_at_a_time(tmp_path, separator, monkeypatch):
    # a burst of GETs for files not made yet must not tie up the request threads: past MAKERS
    # encodes at once, and past WAITERS requests waiting for a file being made, 503 at once
    from jukesep.web import app as web_app
    from jukesep.web import media

    locks = {}  # one lock per file here (the real pool may share one between two files)
    monkeypatch.setattr(media, "lock_for", lambda path: locks.setdefault(str(path), threading.Lock()))
    release, made = threading.Event(), []
    real = media.write_export

    def held(source, target, fmt):
        made.append(target.name)
        assert release.wait(30)
        real(source, target, fmt)
    monkeypatch.setattr(media, "write_export", held)

    app = create_app(separator, tmp_path / "data")
    gate = app.state.gate
    with TestClient(app) as client:
        job = wait(client, post(client, wav_bytes(0.5)).json()["id"])
        base = f"/api/jobs/{job['id']}/audio"
        answers, threads = [], []

        def get(url):
            answers.append(client.get(url))

        def start(url):
            threads.append(threading.Thread(target=get, args=(url,)))
            threads[-1].start()

        def until(check):
            deadline = time.monotonic() + 30
            while not check():
                assert time.monotonic() < deadline
                time.sleep(0.01)

        for stem in STEMS[:web_app.MAKERS]:  # every maker busy
            start(f"{base}/{stem}.flac")
        until(lambda: gate.making == web_app.MAKERS)
        for _ in range(web_app.WAITERS):  # as many as may wait for a file being made
            start(f"{base}/vocals.flac")
        until(lambda: gate.waiting == web_app.WAITERS)

        t0 = time.monotonic()
        for url in (f"{base}/other.mp3", f"{base}/vocals.flac", f"/api/jobs/{job['id']}/preview/no_vocals"):
            r = client.get(url)
            assert "try again in a moment" in one_line_error(r, 503), url
            assert r.headers["retry-after"] == "5"
        assert time.monotonic() - t0 < 5  # answered at once, not after a wait
        assert client.get(job["stems"][0]["url"]).status_code == 200  # what exists is served as ever

        release.set()
        for thread in threads:
            thread.join(30)
        assert [r.status_code for r in answers] == [200] * (web_app.MAKERS + web_app.WAITERS)
        assert sorted(made) == sorted(f"{s}.flac" for s in STEMS[:web_app.MAKERS])  # each made once
        assert gate.making == gate.waiting == 0
        assert client.get(f"{base}/other.mp3").status_code == 200  # and later it is made

        # a request waits WAIT_S at most for a file another one is making
        release.clear()
        gate.wait_s = 0.2
        start(f"{base}/bass.flac")
        until(lambda: gate.making == 1)
        r = client.get(f"{base}/bass.flac")
        assert "still being made" in one_line_error(r, 503) and r.headers["retry-after"] == "5"
        release.set()
        threads[-1].join(30)
        assert answers[-1].status_code == 200
