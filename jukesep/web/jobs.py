"""The job queue: a bounded pool of worker threads, each separating one song at a time.

Threads are enough: torch releases the GIL while it computes. The queue itself lives in SQLite
(`store.JobStore`), so its order and every job survive a restart. A worker never dies on a bad job:
every error ends as a 'failed' row with a one-line reason.
"""
from __future__ import annotations

import json
import logging
import shutil
import threading
import time
import traceback
import zipfile
from pathlib import Path

from ..atomic import atomic_path, atomic_write_text
from ..audio import av_errors, waveform_peaks
from ..errors import JukesepError, UnreadableAudioError
from . import media
from .disk import private_dir
from .progress import EtaClock
from .store import JobStore

log = logging.getLogger("jukesep.web")

PEAK_BINS = 1200
MIXTURE = "mixture"
NO_VOCALS = media.NO_VOCALS
CLEANUP_EVERY_S = 3600.0


class _Stop(Exception):
    """Raised from the progress callback to abandon a separation (shutdown or cancel)."""


def user_message(exc: JukesepError, path: Path, name: str) -> str:
    """The one line a user sees for `exc`: it names the upload, never the server's path."""
    if isinstance(exc, UnreadableAudioError):
        return f"{name}: this is not an audio file that can be decoded"
    return str(exc).replace(str(path), name)


class JobManager:
    def __init__(self, store: JobStore, separator, data_dir: Path, workers: int = 1,
                 retention_hours: float = 72.0, max_samples: int | None = None):
        """`max_samples`: the decode of a song stops past it (headers can lie; the upload was
        checked from its header already)."""
        self.store = store
        self.separator = separator
        self.max_samples = max_samples
        self.jobs_dir = Path(data_dir) / "jobs"
        self.workers = workers
        self.retention_s = retention_hours * 3600.0
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._live: dict[str, dict] = {}  # running jobs: phase, progress, timings (not worth a DB write per chunk)
        self._cancel: set[str] = set()
        self._live_lock = threading.Lock()

    # ----- paths -----
    def job_dir(self, job_id: str) -> Path:
        return self.jobs_dir / job_id

    def input_path(self, job: dict) -> Path:
        return self.job_dir(job["id"]) / f"input{job['ext']}"

    def stem_path(self, job_id: str, stem: str) -> Path:
        return self.job_dir(job_id) / "stems" / f"{stem}.wav"

    def track_path(self, job_id: str, track: str) -> Path:
        """The wav of a stem, the mixture or no_vocals (made on first use from mixture − vocals)."""
        if track == NO_VOCALS:
            return self.job_dir(job_id) / "exports" / f"{NO_VOCALS}.wav"
        return self.stem_path(job_id, track)

    def export_path(self, job_id: str, track: str, fmt: str) -> Path:
        return self.job_dir(job_id) / "exports" / f"{track}.{fmt}"

    def preview_path(self, job_id: str, track: str) -> Path:
        return self.job_dir(job_id) / "previews" / f"{track}.ogg"

    def peaks_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "peaks.json"

    def zip_path(self, job_id: str) -> Path:
        return self.job_dir(job_id) / "stems.zip"

    # ----- lifecycle -----
    def start(self) -> dict:
        private_dir(self.jobs_dir)
        report = self.store.recover(lambda job: self.input_path(job).is_file())
        for job_id in report["requeued"]:
            log.warning("job %s was interrupted by a restart; re-queued", job_id)
        for job_id in report["failed"]:
            log.warning("job %s was interrupted by a restart; marked failed", job_id)
        self.cleanup()
        self._stop.clear()
        for i in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"jukesep-worker-{i}", daemon=True)
            thread.start()
            self._threads.append(thread)
        janitor = threading.Thread(target=self._janitor, name="jukesep-cleanup", daemon=True)
        janitor.start()
        self._threads.append(janitor)
        return report

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers; a separation in progress is abandoned at its next chunk and put back
        in the queue (without counting as a failed attempt)."""
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def notify(self) -> None:
        with self._wake:
            self._wake.notify()

    # ----- what a job has -----
    def wanted(self, job: dict) -> list[str]:
        """The stems a job computes: those asked for at upload (kept in its row), else all."""
        return [s for s in self.separator.stems if s in job["stems"]] if job["stems"] else list(self.separator.stems)

    def has_no_vocals(self, job: dict) -> bool:
        return media.VOCALS in (job["stems"] or [])

    def player_tracks(self, job: dict) -> list[str]:
        """What the page plays: the mixture and the stems, and no_vocals when only some stems were
        computed (karaoke: vocals and the rest)."""
        stems = self.wanted(job)
        partial = len(stems) < len(self.separator.stems)
        return [MIXTURE, *stems] + ([NO_VOCALS] if partial and media.VOCALS in stems else [])

    def tracks(self, job: dict) -> list[str]:
        """Every track of a finished job that can be downloaded."""
        return [MIXTURE, *job["stems"]] + ([NO_VOCALS] if self.has_no_vocals(job) else [])

    def track_file(self, job: dict, track: str, gate: media.Gate | None = None) -> Path:
        """The wav of a finished job's track, no_vocals made now if it is not there yet. A request
        passes its `gate` (media.Busy when too many files are being made); the worker passes none."""
        path = self.track_path(job["id"], track)
        if track == NO_VOCALS:
            media.ensure(path, lambda target: media.write_no_vocals(
                self.stem_path(job["id"], MIXTURE), self.stem_path(job["id"], media.VOCALS), target), gate)
        return path

    def export_file(self, job: dict, track: str, fmt: str, gate: media.Gate | None = None) -> Path:
        """A track in `fmt` (wav as separated; flac and mp3 made once, on first request)."""
        source = self.track_file(job, track, gate)
        if fmt == "wav":
            return source
        media.check_format(fmt, job["channels"] or 2)
        return media.ensure(self.export_path(job["id"], track, fmt),
                            lambda target: media.write_export(source, target, fmt), gate)

    def preview_file(self, job: dict, track: str, gate: media.Gate | None = None) -> Path:
        """The Opus preview of a track (made by the worker for the player's tracks, else on request)."""
        source = self.track_file(job, track, gate)
        return media.ensure(self.preview_path(job["id"], track),
                            lambda target: media.write_preview(source, target), gate)

    # ----- state for the API -----
    def progress(self, job_id: str) -> dict:
        """A running job's phase (decoding, separating, refining, writing), seconds of audio done of
        total, fraction and seconds left (None until the speed is known)."""
        with self._live_lock:
            live = dict(self._live.get(job_id) or {"phase": "decoding", "done": 0, "total": 0})
            clock = live.get("clock")
            eta = None
            if clock is not None and live["phase"] == "separating":
                eta = clock.eta(time.monotonic(), live["done"], live["total"])
        fraction = live["done"] / live["total"] if live["total"] else 0.0
        return {"phase": live["phase"], "done": live["done"], "total": live["total"],
                "fraction": round(min(1.0, fraction), 4), "eta": None if eta is None else round(eta, 1)}

    def cancel(self, job_id: str) -> None:
        """Forget a job: a queued one is removed, a running one stops at its next chunk."""
        job = self.store.get(job_id)
        if job is None:
            return
        if job["status"] == "running":
            with self._live_lock:
                self._cancel.add(job_id)
            self.store.delete(job_id)  # its worker deletes the folder when it stops
        else:
            self.remove(job_id)

    def remove(self, job_id: str) -> None:
        """Delete a job that no worker holds: its row and its folder."""
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
        self.store.delete(job_id)

    def expires(self, job: dict) -> float | None:
        """When a finished (done or failed) job expires, by the same rule as `JobStore.expired`."""
        if job["status"] not in ("done", "failed"):
            return None
        return (job["finished"] if job["finished"] is not None else job["created"]) + self.retention_s

    def is_expired(self, job: dict, now: float | None = None) -> bool:
        """A finished job past its retention: never served, even before the cleanup deletes it."""
        expires = self.expires(job)
        return expires is not None and expires < (time.time() if now is None else now)

    # ----- workers -----
    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim_next()
            except Exception:  # a locked or broken database must not kill the worker
                log.exception("cannot read the job queue")
                job = None
            if job is None:
                with self._wake:
                    self._wake.wait(timeout=1.0)
                continue
            self._run(job)

    def _set_live(self, job_id: str, **values) -> None:
        with self._live_lock:
            self._live.setdefault(job_id, {}).update(values)

    def _run(self, job: dict) -> None:
        job_id = job["id"]
        self._set_live(job_id, phase="decoding", done=0, total=0, clock=None)
        try:
            self._separate(job)
        except _Stop:
            if job_id in self._cancel or self.store.get(job_id) is None:
                shutil.rmtree(self.job_dir(job_id), ignore_errors=True)
                log.info("job %s cancelled", job_id)
            else:
                self.store.requeue(job_id, "the server was stopped while this song was being separated; "
                                           "it was put back in the queue", count_attempt=False)
        except JukesepError as exc:
            self._fail(job_id, user_message(exc, self.input_path(job), job["name"]))
        except MemoryError:
            self._fail(job_id, "the server ran out of memory separating this song; try a shorter one")
        except Exception as exc:  # never let one song kill a worker
            log.error("job %s failed:\n%s", job_id, traceback.format_exc())
            self._fail(job_id, f"internal error while separating ({type(exc).__name__}); see the server log")
        finally:
            with self._live_lock:
                self._live.pop(job_id, None)
                self._cancel.discard(job_id)

    def _fail(self, job_id: str, reason: str) -> None:
        if self.store.get(job_id) is not None:
            self.store.fail(job_id, reason)
        folder = self.job_dir(job_id)
        for made in ("stems", "previews", "exports"):
            shutil.rmtree(folder / made, ignore_errors=True)

    def _check_stop(self, job_id: str) -> None:
        if self._stop.is_set() or job_id in self._cancel:
            raise _Stop()

    def _on_chunk(self, job_id: str, done: int, total: int) -> None:
        """Progress callback, in seconds of audio: the first report ends decoding; raising _Stop
        abandons the separation."""
        with self._live_lock:
            live = self._live[job_id]
            if live["clock"] is None:
                live.update(phase="separating", clock=EtaClock())
            live["clock"].report(time.monotonic(), done)
            live.update(done=done, total=total)
            if total and done >= total and getattr(self.separator, "refine", "none") != "none":
                live["phase"] = "refining"  # the model is through the song; the refinement comes after it
        self._check_stop(job_id)

    def _separate(self, job: dict) -> None:
        job_id = job["id"]
        # Block by block into the files, mixture included: memory stays flat in the song's length.
        stems = self.wanted(job)
        written = self.separator.separate_file_to(
            self.input_path(job), {name: self.stem_path(job_id, name) for name in [MIXTURE, *stems]}, "wav", 16,
            "rescale", stems=stems, max_samples=self.max_samples,
            progress=lambda done, total: self._on_chunk(job_id, done, total))
        self._check_stop(job_id)
        self._set_live(job_id, phase="writing")
        done = {**job, "stems": stems}
        tracks = self.player_tracks(done)
        for name in tracks:  # the previews, so playback starts as soon as the page opens
            self._make_preview(done, name)
            self._check_stop(job_id)
        peaks = {"duration": written.frames / written.rate,
                 "tracks": {name: waveform_peaks(self.track_path(job_id, name), PEAK_BINS) for name in tracks}}
        atomic_write_text(self.peaks_path(job_id), json.dumps(peaks, separators=(",", ":")))
        self._write_zip(job, [t for t in tracks if t != MIXTURE])
        self._check_stop(job_id)
        self.store.finish(job_id, stems)
        log.info("job %s done: %s", job_id, job["name"])
        self.input_path(job).unlink(missing_ok=True)  # the decoded mixture.wav stays for listening

    def _make_preview(self, job: dict, track: str) -> None:
        """A preview is a convenience: if it cannot be made, the page plays the wav, and the stems
        (the job's result) are kept."""
        try:
            self.preview_file(job, track)
        except (JukesepError, OSError, *av_errors()) as exc:
            log.warning("job %s: no preview of %s (%s); the page will play the wav", job["id"], track, exc)

    def _write_zip(self, job: dict, stems: list[str]) -> None:
        base = Path(job["name"]).stem or "song"
        with atomic_path(self.zip_path(job["id"])) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for stem in stems:
                    archive.write(self.track_path(job["id"], stem), f"{base}/{stem}.wav")

    # ----- retention -----
    def _janitor(self) -> None:
        while not self._stop.wait(CLEANUP_EVERY_S):
            try:
                self.cleanup()
            except Exception:
                log.exception("cleanup failed")

    def cleanup(self, now: float | None = None) -> list[str]:
        """Delete finished jobs older than the retention period (row and files) and job folders that
        no row owns (left by an upload interrupted by a crash). Returns the deleted job ids."""
        now = time.time() if now is None else now
        removed = []
        for job_id in self.store.expired(now - self.retention_s):
            self.remove(job_id)
            removed.append(job_id)
        known = self.store.all_ids()
        if self.jobs_dir.is_dir():
            for folder in self.jobs_dir.iterdir():
                if folder.name in known or not folder.is_dir():
                    continue
                try:
                    age = now - folder.stat().st_mtime
                except OSError:
                    continue
                if age > 3600:  # an upload still being received is younger than this
                    shutil.rmtree(folder, ignore_errors=True)
        return removed
