"""Jobs and their state in SQLite (stdlib `sqlite3`) under the data folder.

One row per song. The queue order is the autoincrement `seq`; a worker claims the oldest queued row
atomically. After a restart, rows left 'running' are re-queued (or failed after repeated
interruptions, with the reason), so no job is ever lost silently.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

SCHEMA_VERSION = 1
MAX_ATTEMPTS = 2  # a job interrupted this many times while running is failed instead of re-queued

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    id        TEXT NOT NULL UNIQUE,
    name      TEXT NOT NULL,
    ext       TEXT NOT NULL,
    status    TEXT NOT NULL,
    created   REAL NOT NULL,
    started   REAL,
    finished  REAL,
    duration  REAL,
    rate      INTEGER,
    channels  INTEGER,
    size      INTEGER,
    stems     TEXT,
    error     TEXT,
    note      TEXT,
    attempts  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
"""


class JobStore:
    """Thread-safe access to the jobs table (one connection, serialized by a lock)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        job = dict(row)
        job["stems"] = json.loads(job["stems"]) if job["stems"] else []
        return job

    def add(self, job_id: str, name: str, ext: str, duration: float, rate: int, channels: int,
            size: int, stems: list[str] | None = None) -> dict:
        """A queued job; `stems`: the ones to compute (None: all), kept in `stems` until it finishes
        with the ones it computed."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, name, ext, status, created, duration, rate, channels, size, stems) "
                "VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)",
                (job_id, name, ext, time.time(), duration, rate, channels, size,
                 json.dumps(stems) if stems else None))
            return self.get(job_id)

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def queue_ahead(self, job_id: str) -> int:
        """How many queued jobs will start before this one (0 = next)."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND seq < (SELECT seq FROM jobs WHERE id = ?)",
                (job_id,)).fetchone()
            return int(row[0])

    def count(self, status: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?", (status,)).fetchone()[0])

    def claim_next(self) -> dict | None:
        """Mark the oldest queued job running and return it, or None when the queue is empty."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' ORDER BY seq LIMIT 1").fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                self._db.execute(
                    "UPDATE jobs SET status = 'running', started = ?, attempts = attempts + 1 WHERE id = ?",
                    (time.time(), row["id"]))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self.get(row["id"])

    def finish(self, job_id: str, stems: list[str]) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET status = 'done', finished = ?, stems = ?, error = NULL WHERE id = ?",
                             (time.time(), json.dumps(stems), job_id))

    def fail(self, job_id: str, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?",
                             (time.time(), error, job_id))

    def requeue(self, job_id: str, note: str, count_attempt: bool = True) -> None:
        """Put a running job back in the queue (keeps its place: the queue is ordered by `seq`)."""
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = 'queued', started = NULL, note = ?, "
                "attempts = attempts - ? WHERE id = ?", (note, 0 if count_attempt else 1, job_id))

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def recover(self, input_exists) -> dict[str, list[str]]:
        """After a restart: every job left 'running' (the server stopped mid-separation) is re-queued,
        or failed with the reason after MAX_ATTEMPTS interruptions or when its input is gone; queued
        jobs whose input is gone are failed too. Returns {"requeued": [...], "failed": [...]}."""
        report: dict[str, list[str]] = {"requeued": [], "failed": []}
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('running', 'queued') ORDER BY seq").fetchall()
            for row in rows:
                job = self._row(row)
                if not input_exists(job):
                    self.fail(job["id"], "the uploaded song is missing from the server after a restart; "
                                         "please upload it again")
                    report["failed"].append(job["id"])
                elif job["status"] == "running" and job["attempts"] >= MAX_ATTEMPTS:
                    self.fail(job["id"], f"the server stopped {job['attempts']} times while separating this "
                                         "song, so it was not retried again")
                    report["failed"].append(job["id"])
                elif job["status"] == "running":
                    self.requeue(job["id"], "the server restarted while this song was being separated; "
                                            "it was put back in the queue")
                    report["requeued"].append(job["id"])
        return report

    def expired(self, cutoff: float) -> list[str]:
        """Ids of finished (done or failed) jobs that ended before `cutoff`."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE status IN ('done', 'failed') AND COALESCE(finished, created) < ?",
                (cutoff,)).fetchall()
            return [r["id"] for r in rows]

    def finished_oldest_first(self) -> list[dict]:
        """Finished (done or failed) jobs, the one that ended first first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('done', 'failed') "
                                    "ORDER BY COALESCE(finished, created), seq").fetchall()
            return [self._row(r) for r in rows]

    def active(self) -> list[dict]:
        """Queued and running jobs."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE status IN ('queued', 'running')").fetchall()
            return [self._row(r) for r in rows]

    def all_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM jobs").fetchall()}
