"""`jukesep serve` under abuse, on loopback only: decompression bombs and lying headers, cross-site
requests, the disk quota, expired jobs, file permissions, and 20 concurrent uploads (tiny model)."""
import io
import os
import stat
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

from benchmarks.web_load import (  # noqa: E402
    hostile_files,
    run,
    run_hostile,
    set_flac_frames,
    set_mka_duration,
    silence,
    start_server,
    tiny_model,
)
from jukesep.api import Separator  # noqa: E402
from jukesep.checkpoint import save_model  # noqa: E402
from jukesep.web import create_app  # noqa: E402
from jukesep.web.disk import tree_size  # noqa: E402
from tests.conftest import RATE, random_separator  # noqa: E402
from tests.test_web import GatedSeparator, SlowSeparator, TestClient, upload, wait, wav_bytes  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SHORT = 0.1  # minutes: 6 s, so 2 × 48000 × 6 = 576000 decoded samples at the most
SITE = "http://127.0.0.1:8000"
EVIL = "http://evil.example"


@pytest.fixture(scope="module")
def separator(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, "separator", random_separator(), {"trained_on": "test"})
    return Separator.from_pretrained(path, device="cpu", segment=0.25)


def wav_file(path, seconds, rate=RATE, channels=2):
    sf.write(path, np.full((max(1, int(seconds * rate)), channels), 0.1, np.float32), rate, subtype="PCM_16")
    return path


def one_line_error(response):
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


# -- bombs: refused from the header at upload, before anything is decoded ----------------------------

HEADER_BOMBS = [  # (case, make(folder) -> file, status, words of the message) at --max-minutes 0.1
    ("8 ch 384 kHz flac of 2 s", lambda d: silence(d / "a.flac", 2, 384000, "7.1"), 413, "decoded-size limit"),
    ("4 ch 96 kHz flac of 5 s", lambda d: silence(d / "b.flac", 5, 96000, "quad"), 413, "4 channels × 96000 Hz"),
    ("8 ch flac claiming 20 minutes", lambda d: set_flac_frames(silence(d / "c.flac", 0.5, 384000, "7.1"),
                                                                384000 * 1200), 422, "the limit is 0.1 minutes"),
    ("silent stereo flac of 10 minutes", lambda d: silence(d / "d.flac", 600, 48000, "stereo"), 422,
     "10.0 minutes long"),
    ("flac declaring no length", lambda d: set_flac_frames(silence(d / "e.flac", 1, 44100, "stereo"), 0), 422,
     "declares no length"),
    ("wav at 1 MHz", lambda d: wav_file(d / "f.wav", 0.01, rate=1_000_000), 422, "implausible sample rate"),
    ("wav of 40 channels", lambda d: wav_file(d / "g.wav", 0.01, channels=40), 422, "40 channels is more than"),
    ("mka of 10 minutes", lambda d: silence(d / "h.mka", 600, 8000, "mono"), 422, "10.0 minutes long"),
]


@pytest.mark.parametrize("case,make,status,words", HEADER_BOMBS, ids=[c[0] for c in HEADER_BOMBS])
def test_bombs_are_refused_from_the_header(tmp_path, separator, case, make, status, words):
    spy = SlowSeparator(separator, delay=0)
    path = make(tmp_path)
    with TestClient(create_app(spy, tmp_path / "data", max_minutes=SHORT)) as client:
        for how in ("multipart", "raw"):
            if how == "multipart":
                r = upload(client, path.read_bytes(), path.name)
            else:
                r = client.post("/api/jobs", content=path.read_bytes(), headers={"X-Filename": path.name})
            assert r.status_code == status and words in one_line_error(r), (how, r.text)
    assert spy.paths == [] and list((tmp_path / "data" / "jobs").iterdir()) == []


LIARS = [  # a header that says 1 s around 30 s of silence: accepted, then failed without decoding it all
    # PyAV decodes the Matroska file past its header; the decode stops at the limit
    ("mka claiming 1 s", lambda d: set_mka_duration(silence(d / "liar.mka", 30, 48000, "stereo"), 1.0),
     "decodes to more than"),
    # libsndfile reads no more than the frames a FLAC header declares: 1 s of silence
    ("flac claiming 1 s", lambda d: set_flac_frames(silence(d / "liar.flac", 30, 48000, "stereo"), 48000),
     "is silent"),
]


@pytest.mark.parametrize("case,make,error", LIARS, ids=[c[0] for c in LIARS])
def test_a_lying_header_is_caught_while_decoding(tmp_path, separator, case, make, error):
    spy = SlowSeparator(separator, delay=0)
    path = make(tmp_path)
    with TestClient(create_app(spy, tmp_path / "data", max_minutes=SHORT)) as client:
        r = client.post("/api/jobs", content=path.read_bytes(), headers={"X-Filename": path.name})
        assert r.status_code == 201, r.text
        job = wait(client, r.json()["id"])
        assert job["status"] == "failed", job
        assert job["error"].startswith(f"{path.name}: {error}"), job["error"]
        r = upload(client, wav_bytes(0.3), "honest.wav")  # the worker goes on
        assert wait(client, r.json()["id"])["status"] == "done"


# -- cross-site requests -------------------------------------------------------------------------------

CROSS_SITE = [  # (case, method, headers, body): all refused with 403
    ("multipart POST from another site", "POST", {"Origin": EVIL}, "multipart"),
    ("text/plain POST from another site", "POST", {"Origin": EVIL, "Content-Type": "text/plain"}, "raw"),
    ("POST with only a foreign Referer", "POST", {"Referer": EVIL + "/page.html"}, "raw"),
    ("POST from an opaque origin", "POST", {"Origin": "null"}, "raw"),
    ("POST from another port", "POST", {"Origin": "http://127.0.0.1:9999"}, "raw"),
    ("POST from a look-alike host", "POST", {"Origin": "http://127.0.0.1.evil.example:8000"}, "multipart"),
    ("DELETE from another site", "DELETE", {"Origin": EVIL}, None),
    ("DELETE with only a foreign Referer", "DELETE", {"Referer": EVIL + "/"}, None),
]


def send(client, method, path, headers, body):
    if body == "multipart":
        return client.post(path, files={"file": ("x.wav", wav_bytes(0.3), "audio/wav")}, headers=headers)
    if body == "raw":
        return client.post(path, content=wav_bytes(0.3), headers={"X-Filename": "x.wav", **headers})
    return client.request(method, path, headers=headers)


def test_cross_site_posts_and_deletes_are_refused(tmp_path, separator):
    with TestClient(create_app(separator, tmp_path / "data"), base_url=SITE) as client:
        job_id = upload(client, wav_bytes(0.3), "mine.wav").json()["id"]
        for case, method, headers, body in CROSS_SITE:
            r = send(client, method, "/api/jobs" if method == "POST" else f"/api/jobs/{job_id}", headers, body)
            assert r.status_code == 403 and "cross-site request refused" in one_line_error(r), case
        assert [p.name for p in (tmp_path / "data" / "jobs").iterdir()] == [job_id]
        assert client.get(f"/api/jobs/{job_id}").status_code == 200
        # the page itself (same Origin), and clients that send neither header, are let through
        assert send(client, "POST", "/api/jobs", {"Origin": SITE}, "multipart").status_code == 201
        assert send(client, "POST", "/api/jobs", {"Referer": SITE + "/"}, "raw").status_code == 201
        assert send(client, "POST", "/api/jobs", {}, "raw").status_code == 201
        assert client.get("/api/config", headers={"Origin": EVIL}).status_code == 200  # reading changes nothing
        assert client.delete(f"/api/jobs/{job_id}", headers={"Origin": SITE}).status_code == 204


# -- disk quota ----------------------------------------------------------------------------------------

def test_quota_evicts_the_oldest_finished_jobs_first(tmp_path, separator):
    app = create_app(separator, tmp_path / "data")
    jobs_dir = tmp_path / "data" / "jobs"
    with TestClient(app) as client:
        ids = [upload(client, wav_bytes(0.5, seed=i), f"s{i}.wav").json()["id"] for i in range(3)]
        for job_id in ids:
            assert wait(client, job_id)["status"] == "done"
        song = wav_bytes(0.5, seed=9)
        # room for what is counted and the new song, less one byte: the oldest job has to go, only it
        quota = app.state.quota
        quota.max_bytes = quota.usage() + len(song) + quota.outputs(0.5, RATE, 2) - 1
        r = upload(client, song, "new.wav")
        assert r.status_code == 201, r.text
        assert client.get(f"/api/jobs/{ids[0]}").status_code == 404 and not (jobs_dir / ids[0]).exists()
        assert all(client.get(f"/api/jobs/{i}").json()["status"] == "done" for i in ids[1:])
        assert wait(client, r.json()["id"])["status"] == "done"


def test_quota_never_evicts_waiting_jobs_and_refuses_with_507(tmp_path, separator):
    gated = GatedSeparator(separator)
    app = create_app(gated, tmp_path / "data", workers=1)
    with TestClient(app) as client:
        waiting = [upload(client, wav_bytes(0.5, seed=i), f"w{i}.wav").json()["id"] for i in range(2)]
        wait(client, waiting[0], statuses=("running",))
        app.state.quota.max_bytes = tree_size(tmp_path / "data" / "jobs") + app.state.quota.pending() + 1000
        r = upload(client, wav_bytes(0.5), "more.wav")
        assert r.status_code == 507 and "disk quota" in one_line_error(r)
        app.state.quota.max_bytes = 1000
        r = upload(client, wav_bytes(0.5), "huge.wav")
        assert r.status_code == 507 and "more than the server's whole disk quota" in one_line_error(r)
        assert [client.get(f"/api/jobs/{i}").json()["status"] for i in waiting] == ["running", "queued"]
        assert sorted(p.name for p in (tmp_path / "data" / "jobs").iterdir()) == sorted(waiting)
        gated.gate.set()
        assert [wait(client, i)["status"] for i in waiting] == ["done", "done"]


def test_finished_jobs_count_for_the_downloads_they_can_still_make(tmp_path, separator):
    # flac, mp3 and previews are made on request until a job expires: the space they may take is
    # counted from the start, so making them never takes the disk past the quota
    app = create_app(separator, tmp_path / "data")
    quota, jobs_dir = app.state.quota, tmp_path / "data" / "jobs"
    with TestClient(app) as client:
        # low rates and one channel too: mp3 and Opus, at fixed bitrates, come close to the wav there
        songs = [("stereo.wav", wav_bytes(1.0)), ("mono 8k.wav", wav_bytes(1.0, channels=1, rate=8000))]
        jobs = [wait(client, upload(client, data, name).json()["id"]) for name, data in songs]
        assert [job["status"] for job in jobs] == ["done", "done"]
        counted = quota.usage()
        for job in jobs:
            folder = jobs_dir / job["id"]
            row = app.state.store.get(job["id"])
            assert tree_size(folder) < quota.charge(row) == quota.job_outputs(row)
            for track in [job["mixture"], *job["stems"], job["no_vocals"]]:  # everything that can be made
                assert client.get(track["preview"]).status_code == 200
                for url in track["downloads"].values():
                    assert client.get(url).status_code == 200, url
            assert tree_size(folder) <= quota.charge(row)
        assert quota.usage() == counted  # all of it was counted already
        assert counted <= quota.max_bytes

        # a custom mix is a temporary file: rendered only when it fits (507 otherwise, deleting nothing)
        job = jobs[0]
        mix = quota.mix_bytes(app.state.store.get(job["id"]))
        quota.max_bytes = counted + mix - 1
        r = client.get(f"{job['mix']}.wav?gains=vocals:1")
        assert r.status_code == 507 and "no room for this mix" in one_line_error(r)
        assert all(client.get(f"/api/jobs/{j['id']}").status_code == 200 for j in jobs)
        quota.max_bytes = counted + mix
        assert client.get(f"{job['mix']}.wav?gains=vocals:1").status_code == 200
        assert quota.reserved == 0 and quota.usage() == counted
        # a new song makes room by the same count: one byte short, the older finished job goes, only it
        song = wav_bytes(0.5, seed=5)
        quota.max_bytes = counted + len(song) + quota.outputs(0.5, RATE, 2) - 1
        r = upload(client, song, "new.wav")
        assert r.status_code == 201, r.text
        assert [client.get(f"/api/jobs/{j['id']}").status_code for j in jobs] == [404, 200]
        assert wait(client, r.json()["id"])["status"] == "done"


# -- expiry and permissions ----------------------------------------------------------------------------

def test_expired_jobs_are_never_served(tmp_path, separator):
    app = create_app(separator, tmp_path / "data", retention_hours=1.5 / 3600)  # 1.5 s
    with TestClient(app) as client:
        job = wait(client, upload(client, wav_bytes(0.3), "short-lived.wav").json()["id"])
        assert job["status"] == "done" and client.get(job["zip"]).status_code == 200
        time.sleep(max(0.0, job["expires"] - time.time()) + 0.1)
        for url in (f"/api/jobs/{job['id']}", job["zip"], job["peaks"], job["stems"][0]["url"]):
            assert client.get(url).status_code == 404, url  # not only after the hourly cleanup
        assert client.delete(f"/api/jobs/{job['id']}").status_code == 404
        assert not (tmp_path / "data" / "jobs" / job["id"]).exists()
        queued = {"status": "queued", "finished": None}
        assert not app.state.manager.is_expired(queued, now=time.time() + 10**9)  # waiting jobs never expire


def current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_one_permission_policy_for_everything_written(tmp_path, separator):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # an existing, readable data folder is made private
    gated = GatedSeparator(separator)
    gated.gate.set()
    with TestClient(create_app(gated, data)) as client:
        done = wait(client, upload(client, wav_bytes(0.3), "kept.wav").json()["id"])
        silent = io.BytesIO()
        sf.write(silent, np.zeros((RATE // 2, 2), np.float32), RATE, format="WAV")
        failed = wait(client, upload(client, silent.getvalue(), "quiet.wav").json()["id"])
        assert (done["status"], failed["status"]) == ("done", "failed")
        gated.gate.clear()  # the next upload stays on disk, waiting
        r = client.post("/api/jobs", content=wav_bytes(0.3), headers={"X-Filename": "up.wav"})
        assert r.status_code == 201, r.text
        mask = current_umask()
        modes = {p.relative_to(data).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in data.rglob("*")}
        modes["."] = stat.S_IMODE(data.stat().st_mode)
        gated.gate.set()
    kinds = {"stems.zip", "peaks.json", "mixture.wav", "input.wav", "jobs.sqlite3", "jobs.sqlite3-wal"}
    assert kinds <= {name.rsplit("/", 1)[-1] for name in modes}, modes
    for name, mode in modes.items():
        if name in (".", "jobs"):
            assert mode == 0o700, (name, oct(mode))
        elif (data / name).is_dir():
            assert mode == 0o777 & ~mask, (name, oct(mode))
        else:
            assert mode == 0o666 & ~mask, (name, oct(mode))


# -- a real server on loopback: 20 concurrent uploads, then the bombs with its memory watched -----------

@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_loopback_server_takes_20_uploads_and_bombs_within_1_gib(tmp_path, capsys):
    model = tmp_path / "tiny.pt"
    tiny_model(model)
    bombs = hostile_files(tmp_path)
    proc, url = start_server(model, tmp_path / "data", workers=2)
    try:
        load = run(url, jobs=20, seconds=0.2, timeout=120)
        assert load["done"] == 20 and load["problems"] == {}, load["problems"]
        hostile = run_hostile(url, proc.pid, bombs, timeout=300)  # jobs also make previews now
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert hostile["clean"] == hostile["tried"] == len(bombs), hostile["cases"]
    assert hostile["growth"] < 2**30, hostile
    with capsys.disabled():
        print(f"\n20 uploads: {load['done']} done; bombs handled cleanly {hostile['clean']}/{hostile['tried']}; "
              f"server RSS +{hostile['growth'] / 2**20:.0f} MiB over idle ({hostile['idle_rss'] / 2**20:.0f} MiB)")
