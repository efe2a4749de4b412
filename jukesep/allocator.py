"""A pooling malloc for the commands that run models: jemalloc, else tcmalloc, when installed.

glibc's malloc serves a separation's activations (a few MiB each) from a heap that fragments and
grows over the blocks of a long song; a pooling allocator reuses the same memory instead (PyTorch's
CPU tuning guide recommends one too). Measured in `benchmarks/`, figures in docs/RESULTS.md: peak
memory flat from a 1- to a 30-minute song, speed within this machine's noise of glibc's. A C
library's allocator can only be chosen when the process starts, so the `jukesep` command runs
itself again with the library in LD_PRELOAD, before it has loaded anything heavy. Nothing changes
where neither library is installed (Debian/Ubuntu: `apt install libjemalloc2`), off Linux, where
the library fails to load, or with JUKESEP_MALLOC=system.
For separation, jemalloc is told to keep freed pages (its MALLOC_CONF, unless yours is set): a
process holds on to its high-water mark, e.g. `jukesep serve` that of its largest separation, and
reuses it. Training keeps jemalloc's default decay: without it, a stage-2 run grew by about 90 MiB
a second (to 23 GiB in 5 minutes; measured), with it memory stays flat at the same speed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

# Sonames in order of preference.
LIBRARIES = ("libjemalloc.so.2", "libtcmalloc_minimal.so.4")
MARK = "JUKESEP_MALLOC"  # set: do not switch (a user's "system", or the library already switched to)
SAVED = "JUKESEP_LD_PRELOAD"  # LD_PRELOAD as it was, given back to the children of a switched process


def _folders() -> list[Path]:
    arch = sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu"
    return [Path(p) for p in (f"{sys.prefix}/lib", f"/usr/lib/{arch}", f"/lib/{arch}", "/usr/lib64", "/usr/lib",
                              "/usr/local/lib")]


def find() -> str | None:
    """Path of the preferred pooling malloc installed here (Linux only), or None."""
    if not sys.platform.startswith("linux"):
        return None
    for name in LIBRARIES:
        for folder in _folders():
            if (folder / name).is_file():
                return str(folder / name)
    return None


def preload_env(environ: dict | None = None, keep_pages: bool = True) -> dict | None:
    """The environment to run this command again under a pooling malloc, or None to stay as it is.
    keep_pages: jemalloc keeps freed pages (separation); False: its default decay (training)."""
    environ = dict(os.environ if environ is None else environ)
    if environ.get(MARK):
        return None
    library = find()
    if library is None:
        return None
    environ[MARK] = library
    environ[SAVED] = environ.get("LD_PRELOAD", "")
    environ["LD_PRELOAD"] = ":".join(filter(None, [library, environ.get("LD_PRELOAD")]))
    if "jemalloc" not in library:  # tcmalloc: no report on stderr for every allocation of a GiB or more
        environ.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(1 << 40))
    elif keep_pages:  # with its default decay, separation's big activations got fresh pages again and
        # again: the decoders ran 1.5-2x slower than under glibc, and no slower without decay
        environ.setdefault("MALLOC_CONF", "dirty_decay_ms:-1,muzzy_decay_ms:-1")
    return environ


def _loads(environ: dict) -> bool:
    """Whether a program starts cleanly with this preload (a library for another page size or
    architecture aborts or warns)."""
    try:
        run = subprocess.run(["/bin/true"], env=environ, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return run.returncode == 0 and not run.stderr


def switch(keep_pages: bool = True) -> None:
    """Replace this process by the same command under a pooling malloc (see `preload_env`); return
    and go on with the system's malloc when that cannot be done. In a switched process, give the
    children it starts the LD_PRELOAD they would have had."""
    if SAVED in os.environ:
        saved = os.environ.pop(SAVED)
        if saved:
            os.environ["LD_PRELOAD"] = saved
        else:
            os.environ.pop("LD_PRELOAD", None)
        return
    environ = preload_env(keep_pages=keep_pages)
    if environ is None or not _loads(environ):
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environ)
    except OSError:
        pass


def active() -> str:
    """The malloc this process uses: jemalloc or tcmalloc_minimal when preloaded, else "system"."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    for name in LIBRARIES:
        if name in maps:
            return name.split(".so")[0].removeprefix("lib")
    return "system"


def describe() -> str:
    """What the commands that run models use, for `jukesep info --system`."""
    used = active()
    if used != "system":
        return f"{used} (preloaded in this process)"
    if not sys.platform.startswith("linux"):
        return "system"
    if os.environ.get(MARK):
        return f"system ({MARK}={os.environ[MARK]})"
    found = find()
    if found is None:
        return "system (install jemalloc, e.g. `apt install libjemalloc2`, for flat memory on long songs)"
    environ = preload_env()
    return f"{Path(found).name} for separate, train, evaluate, baselines, serve" if _loads(environ) else \
        f"system ({Path(found).name} does not load here)"
