"""Progress for long work: a tqdm bar on a terminal; elsewhere (nohup, docker, cluster logs, a
script's log file) one plain line every `interval` seconds and, for work that lasted that long,
one at the end, so a log shows that the work moves and how fast."""
from __future__ import annotations

import math
import os
import sys
import time

from tqdm import tqdm

from .errors import JukesepError

LOG_INTERVAL = 30.0  # seconds between log lines when not on a terminal
LOG_INTERVAL_VARIABLE = "JUKESEP_LOG_INTERVAL"


def log_interval() -> float:
    """Seconds between the progress lines written to a log file: $JUKESEP_LOG_INTERVAL or 30."""
    text = os.environ.get(LOG_INTERVAL_VARIABLE, "").strip()
    if not text:
        return LOG_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise JukesepError(f"${LOG_INTERVAL_VARIABLE} must be a number of seconds ≥ 0, not {text!r}")
    return value


def _on_terminal(file) -> bool:
    return bool(getattr(file, "isatty", lambda: False)())


class Progress:
    """`update(n)`, `set(done, total)`, `set_postfix(**values)`, `write(line)`, `close()`;
    usable as a context manager."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", initial: int = 0, position: int = 0,
                 leave: bool = True, enabled: bool = True, interval: float | None = None, file=None):
        self.file = file or sys.stderr
        self.desc, self.unit, self.total, self.n, self.initial = desc, unit, total, initial, initial
        self.enabled, self.postfix, self.logged = enabled, "", None
        self.interval = log_interval() if interval is None else interval
        self.started = self.last = time.monotonic()
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, position=position, leave=leave,
                        file=self.file, dynamic_ncols=True) if enabled and _on_terminal(self.file) else None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.set(self.n + n)

    def set(self, done: int, total: int | None = None) -> None:
        self.n, self.total = done, self.total if total is None else total
        if self.bar is not None:
            self.bar.total, self.bar.n = self.total, done
            self.bar.refresh()
        elif self.enabled and time.monotonic() - self.last >= self.interval:
            self._log()

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(values)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.enabled and self.logged is not None and self.logged != (self.n, self.postfix):
            self._log()  # the final state, when the work was long enough to log before
        self.enabled = False

    def _log(self) -> None:
        self.last, self.logged = time.monotonic(), (self.n, self.postfix)
        elapsed = self.last - self.started
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0  # this session's speed (resumes)
        of = f"/{self.total}" if self.total else ""
        left = ""
        if self.total and rate > 0 and self.n < self.total:
            left = f", {(self.total - self.n) / rate / 60:.1f} min left"
        extra = f", {self.postfix}" if self.postfix else ""
        speed = f"{rate:.3g} {self.unit}/s"
        print(f"{self.desc}: {self.n}{of} {self.unit} ({_clock(elapsed)} elapsed, {speed}{left}{extra})",
              file=self.file, flush=True)


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"
