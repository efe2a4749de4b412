"""Load test of `jukesep serve`: N concurrent uploads, queue wait and completion times, nothing lost.

    python benchmarks/web_load.py [--jobs 20] [--workers 2] [--model PATH] [--seconds 2] [--json out.json]
    python benchmarks/web_load.py --url http://127.0.0.1:8000/ [--jobs 20]

Without --url it starts `python -m jukesep.web serve` on a free loopback port with a temporary data
folder (and, without --model, a tiny random 4-stem separator), and stops it at the end. Every job gets
its own song (its own length and tones); at the end each job's stems and mixture are downloaded and
checked against that job's input, so a job that is lost, fails, or returns another job's audio is
reported (exit code 1). Only loopback servers are accepted. Bounded: at most 200 jobs and --timeout
seconds in all.
"""
from __future__ import annotations

import argparse
import io
import ipaddress
import json
import os
import statistics
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
