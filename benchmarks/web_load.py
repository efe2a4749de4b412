"""Load test of `jukesep serve`: N concurrent uploads, queue wait and completion times, nothing lost.

    python benchmarks/web_load.py [--jobs 20] [--workers 2] [--model PATH] [--seconds 2] [--json out.json]
    python benchmarks/web_load.py --url http://127.0.0.1:8000/ [--jobs 20]
    python benchmarks/web_load.py --hostile [--json out.json]

Without --url it starts `python -m jukesep.web serve` on a free loopback port with a temporary data
folder (and, without --model, a tiny random 4-stem separator), and stops it at the end. Every job gets
its own song (its own length and tones); at the end each job's stems and mixture are downloaded and
checked against that job's input, so a job that is lost, fails, or returns another job's audio is
reported (exit code 1). Only loopback servers are accepted. Bounded: at most 200 jobs and --timeout
seconds in all.

--hostile uploads small files that declare (or, behind a lying header, decode to) far more audio than
the default limits allow, made with PyAV: each must be refused, or accepted and then failed, with a
one-line reason. It reports the server's resident memory when idle and its peak meanwhile (Linux
/proc: VmRSS, and VmHWM after resetting it through clear_refs), so the growth is measured.
"""
from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import soundfile as sf

RATE = 44100
MAX_JOBS = 200


def tiny_model(path: Path) -> None:
    import torch

    from jukesep.checkpoint import save_model
    from jukesep.models import SeparatorModel, VQVAEConfig
    torch.manual_seed(0)
    cfg = VQVAEConfig(width=8, depth=1, emb_width=8, codebook_size=32)
    model = SeparatorModel({s: cfg for s in ("vocals", "drums", "bass", "other")})
    for stem in model.stems.values():
        stem.quantizer.k.normal_(0, 0.1)
    save_model(path, "separator", model.eval(), {"trained_on": "nothing (random benchmark model)"})


def song(index: int, seconds: float) -> tuple[bytes, np.ndarray]:
    """A distinct stereo song per job: its own length (by whole samples) and tones."""
    n = int(seconds * RATE) + 997 * index
    t = np.arange(n) / RATE
    f = 110.0 * (1 + index % 7) + 3.0 * index
    audio = np.stack([0.3 * np.sin(2 * np.pi * f * t), 0.2 * np.sin(2 * np.pi * 1.5 * f * t)]).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, audio.T, RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue(), sf.read(io.BytesIO(buf.getvalue()), dtype="float32", always_2d=True)[0].T


def silence(path: Path, seconds: float, rate: int, layout: str) -> Path:
    """A silent FLAC (in Matroska when `path` ends in .mka), encoded with PyAV: a few KB per minute."""
    import av
    block = 1 << 16
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=rate, layout=layout)
        zeros = np.zeros((1, block * stream.codec_context.layout.nb_channels), np.int16)  # interleaved s16
        for start in range(0, int(seconds * rate), block):
            n = min(block, int(seconds * rate) - start)
            frame = av.AudioFrame.from_ndarray(zeros[:, :n * stream.codec_context.layout.nb_channels],
                                               format="s16", layout=layout)
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def set_flac_frames(path: Path, frames: int) -> Path:
    """Rewrite the length a FLAC's STREAMINFO declares (0: unknown); the audio is untouched."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "expected STREAMINFO first"
    field, mask = int.from_bytes(data[18:26], "big"), (1 << 36) - 1  # rate, channels, bits, then 36 bits of length
    data[18:26] = ((field & ~mask) | frames).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def set_mka_duration(path: Path, seconds: float) -> Path:
    """Rewrite the Duration a Matroska file declares (in ms, its default timescale); the audio is untouched."""
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89")
    size = data[at + 2] & 0x7F
    assert at > 0 and size in (4, 8), "no Duration element"
    data[at + 3:at + 3 + size] = struct.pack(">d" if size == 8 else ">f", seconds * 1000.0)
    path.write_bytes(bytes(data))
    return path


def hostile_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """{case: (file, what must happen at the default limits)}: "refused" at upload from the header,
    or "failed" by the worker before the song is decoded into memory (the header lies)."""
    return {
        "flac 8 ch 384 kHz 2 min": (silence(folder / "8ch.flac", 120, 384000, "7.1"), "refused"),
        "flac 8 ch 384 kHz 1 s claiming 20 min": (
            set_flac_frames(silence(folder / "claims.flac", 1, 384000, "7.1"), 384000 * 1200), "refused"),
        "flac stereo 48 kHz 25 min": (silence(folder / "long.flac", 1500, 48000, "stereo"), "refused"),
        "flac with no length": (set_flac_frames(silence(folder / "nolen.flac", 1, 44100, "stereo"), 0), "refused"),
        "mka 8 ch 384 kHz 1 min claiming 1 s": (
            set_mka_duration(silence(folder / "liar8.mka", 60, 384000, "7.1"), 1.0), "failed"),
        "mka stereo 48 kHz 40 min claiming 1 s": (
            set_mka_duration(silence(folder / "liar2.mka", 2400, 48000, "stereo"), 1.0), "failed"),
    }


def memory(pid: int) -> dict[str, int]:
    """Resident and peak resident bytes of a process (Linux)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "VmHWM")}


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux 4.0+)


def upload_and_settle(client, url: str, path: Path, deadline: float) -> dict:
    """Upload one file; for an accepted one, wait until the job ends. What the client was told."""
    r = client.post(f"{url}/api/jobs", content=path.read_bytes(), headers={"X-Filename": path.name})
    out = {"status": r.status_code, "error": r.json().get("error") if r.status_code != 201 else None}
    if r.status_code == 201:
        job = r.json()
        while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.1)
            job = client.get(f"{url}/api/jobs/{job['id']}").json()
        out.update(job_status=job["status"], error=job.get("error"))
    return out


def run_hostile(url: str, pid: int, files: dict[str, tuple[Path, str]], timeout: float) -> dict:
    """Every hostile file through the server; its memory before and its peak while they were handled."""
    import httpx
    url = url.rstrip("/")
    deadline = time.monotonic() + timeout
    results = {}
    with httpx.Client(timeout=120) as client:
        client.get(f"{url}/api/config")
        idle = memory(pid)["VmRSS"]
        reset_peak(pid)
        for case, (path, expected) in files.items():
            out = upload_and_settle(client, url, path, deadline)
            got = "refused" if 400 <= out["status"] < 500 or out["status"] == 507 else out.get("job_status")
            one_line = bool(out["error"]) and "\n" not in out["error"] and "Traceback" not in out["error"]
            results[case] = dict(out, file_bytes=path.stat().st_size, expected=expected,
                                 clean=got == expected and one_line)
        peak = memory(pid)["VmHWM"]
    return {"cases": results, "idle_rss": idle, "peak_rss": peak, "growth": peak - idle,
            "clean": sum(r["clean"] for r in results.values()), "tried": len(results)}


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def start_server(model: Path, data_dir: Path, workers: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "jukesep.web", "serve", "--model", str(model), "--port", "0",
                             "--host", "127.0.0.1", "--data-dir", str(data_dir), "--workers", str(workers)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith("jukesep: serving "):
        proc.kill()
        raise SystemExit(f"the server did not start: {line.strip() or 'no output'}")
    return proc, line.split()[2]


def stats(values: list[float]) -> tuple[float, float, float]:
    return (min(values), statistics.median(values), max(values)) if values else (float("nan"),) * 3


def run(url: str, jobs: int, seconds: float, timeout: float) -> dict:
    import httpx
    url = url.rstrip("/")
    deadline = time.monotonic() + timeout
    songs = [song(i, seconds) for i in range(jobs)]
    client = httpx.Client(timeout=60)
    records: list[dict] = [{"index": i} for i in range(jobs)]

    def submit(i: int) -> None:
        rec = records[i]
        rec["submitted"] = time.time()
        try:
            r = client.post(f"{url}/api/jobs", content=songs[i][0],
                            headers={"X-Filename": f"load-{i:03d}.wav", "Content-Type": "application/octet-stream"})
        except httpx.HTTPError as exc:
            rec["problem"] = f"upload failed: {exc}"
            return
        rec["accepted"] = time.time()
        if r.status_code != 201:
            rec["problem"] = f"upload rejected: HTTP {r.status_code} {r.text[:200]}"
            return
        rec["id"] = r.json()["id"]
        rec["queue_ahead_at_submit"] = r.json().get("queue_ahead")

    start = time.time()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(submit, range(jobs)))

    pending = {i for i, rec in enumerate(records) if "id" in rec}
    while pending and time.monotonic() < deadline:
        for i in sorted(pending):
            r = client.get(f"{url}/api/jobs/{records[i]['id']}")
            if r.status_code == 404:
                records[i]["problem"] = "the job vanished (404)"
                pending.discard(i)
            elif r.status_code == 200 and r.json()["status"] in ("done", "failed"):
                records[i]["job"] = r.json()
                pending.discard(i)
        time.sleep(0.2)
    wall = time.time() - start
    for i in pending:
        records[i]["problem"] = "still not finished at the timeout"

    for rec in records:
        job = rec.get("job")
        if job is None or "problem" in rec:
            continue
        if job.get("status") != "done":
            rec["problem"] = f"job {job.get('status')}: {job.get('error')}"
            continue
        expected = songs[rec["index"]][1]
        if job["name"] != f"load-{rec['index']:03d}.wav":
            rec["problem"] = f"name mix-up: {job['name']}"
            continue
        for track in job["stems"] + [job["mixture"]]:
            audio = sf.read(io.BytesIO(client.get(url + track["url"]).content), dtype="float32", always_2d=True)[0].T
            if audio.shape != expected.shape:
                rec["problem"] = f"{track['name']}: shape {audio.shape}, expected {expected.shape} (mix-up)"
                break
            if track["name"] == "mixture" and not np.allclose(audio, expected, atol=1e-4):
                rec["problem"] = "mixture is not this job's input (mix-up)"
                break
        rec["queue_wait"] = job["started"] - job["created"]
        rec["separation"] = job["finished"] - job["started"]
        rec["completion"] = job["finished"] - rec["submitted"]
        rec["upload"] = rec["accepted"] - rec["submitted"]
    client.close()

    ok = [r for r in records if "problem" not in r]
    summary = {
        "url": url, "jobs": jobs, "song_seconds": [round(seconds + 997 * i / RATE, 3) for i in (0, jobs - 1)],
        "done": len(ok), "problems": {r["index"]: r["problem"] for r in records if "problem" in r},
        "wall_s": wall, "jobs_per_min": 60 * len(ok) / wall if wall else None,
    }
    for key in ("upload", "queue_wait", "separation", "completion"):
        lo, mid, hi = stats([r[key] for r in ok])
        summary[key] = {"min": lo, "median": mid, "max": hi}
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an already running server (loopback only)")
    parser.add_argument("--model", type=Path, help="separator file (default: a tiny random one)")
    parser.add_argument("--jobs", type=int, default=20, help=f"concurrent uploads (at most {MAX_JOBS})")
    parser.add_argument("--workers", type=int, default=2, help="server workers when the server is started here")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="length of the first song (each next one is 997 samples longer)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--hostile", action="store_true",
                        help="upload hostile files instead and report the server's memory (starts its own server)")
    args = parser.parse_args()
    if args.hostile:
        return main_hostile(args)
    if not 1 <= args.jobs <= MAX_JOBS:
        parser.error(f"--jobs must be between 1 and {MAX_JOBS}")
    if args.url and not is_loopback_url(args.url):
        parser.error("--url must be a loopback address (127.0.0.1, ::1 or localhost)")

    with tempfile.TemporaryDirectory(prefix="jukesep-web-load-") as tmp:
        proc = None
        url = args.url
        if not url:
            model = args.model
            if model is None:
                model = Path(tmp) / "tiny.pt"
                tiny_model(model)
            proc, url = start_server(model, Path(tmp) / "data", args.workers)
        try:
            summary = run(url, args.jobs, args.seconds, args.timeout)
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
    summary["workers"] = None if args.url else args.workers
    summary["cpus"] = os.cpu_count()

    print(f"{summary['jobs']} jobs of {summary['song_seconds'][0]}–{summary['song_seconds'][1]} s songs "
          f"against {summary['url']}" + (f" ({args.workers} workers)" if not args.url else ""))
    print(f"{'seconds':<22}{'min':>9}{'median':>9}{'max':>9}")
    for key, label in (("upload", "upload (until 201)"), ("queue_wait", "queue wait"),
                       ("separation", "separation"), ("completion", "submit → done")):
        s = summary[key]
        print(f"{label:<22}{s['min']:>9.2f}{s['median']:>9.2f}{s['max']:>9.2f}")
    print(f"done {summary['done']}/{summary['jobs']} in {summary['wall_s']:.1f} s "
          f"({summary['jobs_per_min']:.1f} jobs/min); lost, failed or mixed up: {len(summary['problems'])}")
    for index, problem in summary["problems"].items():
        print(f"  job {index}: {problem}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if not summary["problems"] else 1


def main_hostile(args) -> int:
    with tempfile.TemporaryDirectory(prefix="jukesep-web-hostile-") as tmp:
        model = args.model or Path(tmp) / "tiny.pt"
        if args.model is None:
            tiny_model(model)
        files = hostile_files(Path(tmp))
        proc, url = start_server(model, Path(tmp) / "data", args.workers)
        try:
            summary = run_hostile(url, proc.pid, files, args.timeout)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    for case, r in summary["cases"].items():
        print(f"{'ok  ' if r['clean'] else 'BAD '} {case} ({r['file_bytes'] / 1e6:.2f} MB): HTTP {r['status']}"
              f"{' → ' + r['job_status'] if 'job_status' in r else ''}: {r['error']}")
    mib = {key: summary[key] / 2**20 for key in ("idle_rss", "peak_rss", "growth")}
    print(f"handled cleanly: {summary['clean']}/{summary['tried']}; server RSS idle {mib['idle_rss']:.0f} MiB, "
          f"peak {mib['peak_rss']:.0f} MiB (+{mib['growth']:.0f} MiB)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 0 if summary["clean"] == summary["tried"] else 1


if __name__ == "__main__":
    sys.exit(main())
