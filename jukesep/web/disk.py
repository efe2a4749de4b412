"""Job data on disk: one permission policy, and a quota with oldest-first eviction.

Permissions: the data folder and its `jobs` folder are 0700, so uploads and stems are private to
the server's user whatever the umask; everything inside is created the way `open()`, `mkdir()` and
`jukesep.atomic` create things (0666 / 0777 minus the umask), the SQLite database included.

Quota: job folders may hold at most `max_bytes`, counting what queued and running jobs will still
write (their stems, the mixture, the zip, the previews and the downloads in other formats, made on
request, estimated from the header). To admit a song, finished jobs are deleted oldest first; queued
and running ones never are.
"""
from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from ..errors import JukesepError

PRIVATE_DIR = 0o700
PEAKS_BYTES = 64 * 1024
PCM_BYTES = 2  # the worker writes 16-bit wav


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

    def outputs(self, seconds: float, rate: int, channels: int, stems: int | None = None) -> int:
        """What a job may write, in 16-bit wav sizes: every track (its stems, the mixture and
        no_vocals) as wav, the stems again in the zip, and what downloads in other formats and the
        previews add (flac at most a wav again, mp3 and the Opus previews a third of one)."""
        stems = self.stems if stems is None else stems
        tracks = stems + 2
        return int((stems + tracks * (1 + 1 + 1 / 3)) * int(seconds * rate) * channels * PCM_BYTES) + PEAKS_BYTES

    def pending(self) -> int:
        """What queued and running jobs will still write (running ones counted whole: on the safe side)."""
        return sum(self.outputs(job["duration"] or 0, job["rate"] or 0, job["channels"] or 0,
                                len(job["stems"]) or None) for job in self.manager.store.active())

    def make_room(self, need: int) -> list[str]:
        """Delete finished jobs, oldest first, until `need` more bytes fit; the ids deleted. Raises
        DiskFullError (deleting nothing) when even all of them would not make enough room."""
        if need > self.max_bytes:
            raise DiskFullError(f"this song would need {need / 1e9:.1f} GB for its stems, more than the server's "
                                f"whole disk quota ({self.max_bytes / 1e9:g} GB)")
        over = tree_size(self.manager.jobs_dir) + self.pending() + need - self.max_bytes
        if over <= 0:
            return []
        victims = []
        for job_id in self.manager.store.finished_oldest_first():
            if over <= 0:
                break
            over -= tree_size(self.manager.job_dir(job_id))
            victims.append(job_id)
        if over > 0:
            raise DiskFullError(f"the server's disk quota for songs ({self.max_bytes / 1e9:g} GB) is full with "
                                "songs waiting or being separated; try again later")
        for job_id in victims:
            self.manager.remove(job_id)
        return victims
