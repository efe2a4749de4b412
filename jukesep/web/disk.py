"""Job data on disk: one permission policy, and a quota with oldest-first eviction.

Permissions: the data folder and its `jobs` folder are 0700, so uploads and stems are private to
the server's user whatever the umask; everything inside is created the way `open()`, `mkdir()` and
`jukesep.atomic` create things (0666 / 0777 minus the umask), the SQLite database included.

Quota: job folders may hold at most `max_bytes`. A job is counted at what it may come to hold
(`DiskQuota.outputs`: its stems, the mixture, the zip, the previews and the downloads in other formats,
estimated from the header): a queued or running one at its size now plus all of that, a finished one
at the larger of its size now and all of that, since its downloads and previews are made on request,
any time until it expires. A custom mix, a temporary file, is counted while it is rendered and
refused (507) when it does not fit. To admit a song, finished jobs are deleted oldest first; queued
and running ones never are.
"""
from __future__ import annotations

import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

from ..errors import JukesepError
from .media import PREVIEW_BITRATE

PRIVATE_DIR = 0o700
PEAKS_BYTES = 64 * 1024
PCM_BYTES = 2  # the worker writes 16-bit wav
MP3_BYTES_S = 320_000 // 8  # exports are 320 kbit/s whatever the channels (mp3 holds two at most)
PREVIEW_BYTES_S = PREVIEW_BITRATE * 5 // 4 // 8  # per channel (two at most), with room for Opus VBR and Ogg pages
FILE_BYTES = 16 * 1024  # the headers of a file and what rounds up


class DiskFullError(JukesepError):
    """Even after deleting every finished job there is no room for a song (HTTP 507)."""


def private_dir(path: Path) -> None:
    """Create `path` (and its parents) and make it 0700 (an existing one is tightened)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR:
        os.chmod(path, PRIVATE_DIR)


def prepare(data_dir: Path, db_name: str) -> None:
    """The data folder, its jobs folder and the database file, under the one policy."""
    try:
        private_dir(data_dir)
        private_dir(data_dir / "jobs")
        # SQLite would create the file 0644 whatever the umask; it gives its -wal and -shm files
        # the database's mode, so creating it here sets all three
        os.close(os.open(data_dir / db_name, os.O_CREAT | os.O_RDWR, 0o666))
    except OSError as exc:
        raise JukesepError(f"cannot prepare data folder {data_dir} ({exc.strerror or exc})") from None


def tree_size(path: Path) -> int:
    """Bytes in the files below `path` (0 when it is gone)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:  # deleted meanwhile
                pass
    return total


class DiskQuota:
    def __init__(self, manager, max_bytes: int, stems: int):
        self.manager, self.max_bytes, self.stems = manager, max_bytes, stems
        self.lock = threading.Lock()  # hold it from make_room until the job's row is added
        self.reserved = 0  # bytes of the mixes being rendered

    def outputs(self, seconds: float, rate: int, channels: int, stems: int | None = None) -> int:
        """What a job may write: every track (its stems, the mixture and no_vocals) as 16-bit wav,
        as flac (at most a wav and a little), as mp3 at 320 kbit/s and as an Opus preview, the stems
        again in the zip, and the peaks. mp3 and Opus are counted at their bitrates, not as a share
        of the wav: at low sample rates they come close to it."""
        stems = self.stems if stems is None else stems
        tracks = stems + 2
        wav = _wav_bytes(seconds, rate, channels)
        flac = wav + wav // 64
        mp3 = int(seconds * MP3_BYTES_S) + FILE_BYTES if channels <= 2 else 0
        preview = int(seconds * PREVIEW_BYTES_S * min(channels, 2)) + FILE_BYTES
        return stems * wav + tracks * (wav + flac + mp3 + preview) + PEAKS_BYTES

    def job_outputs(self, job: dict) -> int:
        return self.outputs(job["duration"] or 0, job["rate"] or 0, job["channels"] or 0, len(job["stems"]) or None)

    def pending(self) -> int:
        """What queued and running jobs will still write (running ones counted whole: on the safe side)."""
        return sum(self.job_outputs(job) for job in self.manager.store.active())

    def charge(self, job: dict, size: int | None = None) -> int:
        """What a finished job counts for: the larger of its size on disk (`size`, measured when not
        given) and what it may hold once every download and preview is made (a failed job keeps
        nothing to make downloads from: its size)."""
        size = tree_size(self.manager.job_dir(job["id"])) if size is None else size
        return max(size, self.job_outputs(job)) if job["status"] == "done" else size

    def usage(self) -> int:
        """What the job folders count for: finished jobs by `charge`, queued and running ones at
        their size now and all they will write, anything else (an upload being received) at its
        size, and the mixes being rendered."""
        total = self.pending() + self.reserved  # first: a job that ends meanwhile is counted twice, never not at all
        finished = {job["id"]: job for job in self.manager.store.finished_oldest_first()}
        jobs_dir = self.manager.jobs_dir
        if jobs_dir.is_dir():
            for folder in jobs_dir.iterdir():
                size = tree_size(folder)
                job = finished.get(folder.name)
                total += size if job is None else self.charge(job, size)
        return total

    def make_room(self, need: int) -> list[str]:
        """Delete finished jobs, oldest first, until `need` more bytes fit; the ids deleted. Raises
        DiskFullError (deleting nothing) when even all of them would not make enough room."""
        if need > self.max_bytes:
            raise DiskFullError(f"this song would need {need / 1e9:.1f} GB for its stems, more than the server's "
                                f"whole disk quota ({self.max_bytes / 1e9:g} GB)")
        over = self.usage() + need - self.max_bytes
        if over <= 0:
            return []
        victims = []
        for job in self.manager.store.finished_oldest_first():
            if over <= 0:
                break
            over -= self.charge(job)
            victims.append(job["id"])
        if over > 0:
            raise DiskFullError(f"the server's disk quota for songs ({self.max_bytes / 1e9:g} GB) is full with "
                                "songs waiting or being separated; try again later")
        for job_id in victims:
            self.manager.remove(job_id)
        return victims

    def mix_bytes(self, job: dict) -> int:
        """The most a custom mix of `job` may take: a wav of the song (a flac at most a little more, an
        mp3 less)."""
        wav = _wav_bytes(job["duration"] or 0, job["rate"] or 0, job["channels"] or 0)
        return wav + wav // 64

    @contextmanager
    def reserve(self, need: int):
        """Count `need` bytes (a mix being rendered) while the block runs; DiskFullError when they do
        not fit now (nothing is deleted for a temporary file)."""
        with self.lock:
            if self.usage() + need > self.max_bytes:
                raise DiskFullError(f"the server's disk quota for songs ({self.max_bytes / 1e9:g} GB) has no room "
                                    "for this mix now; try again later")
            self.reserved += need
        try:
            yield
        finally:
            with self.lock:
                self.reserved -= need


def _wav_bytes(seconds: float, rate: int, channels: int) -> int:
    """A 16-bit wav of the song, header included."""
    return int(seconds * rate) * channels * PCM_BYTES + FILE_BYTES
