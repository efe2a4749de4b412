"""A pooling malloc for the commands that run models: jemalloc, else tcmalloc, when installed.

glibc's malloc serves a separation's activations (a few MiB each) from a heap that fragments and
grows over the blocks of a long song; a pooling allocator reuses the same memory instead, and is
faster too (PyTorch's CPU tuning guide recommends the same). Measured in `benchmarks/`: see
docs/RESULTS.md. A C library's allocator can only be chosen when the process starts, so the
`jukesep` command runs itself again with the library in LD_PRELOAD, before it has loaded anything
heavy. Nothing changes where neither library is installed (`apt install libjemalloc2`), off Linux,
or with JUKESEP_MALLOC=system.
"""
from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

# Sonames in order of preference.
LIBRARIES = ("libjemalloc.so.2", "libtcmalloc_minimal.so.4")
MARK = "JUKESEP_MALLOC"  # set: do not switch (a user's "system", or the library already switched to)


def _folders() -> list[Path]:
    arch = sysconfig.get_config_var("MULTIARCH") or f"{os.uname().machine}-linux-gnu"
    return [Path(p) for p in (f"/usr/lib/{arch}", f"/lib/{arch}", "/usr/lib64", "/usr/lib", "/usr/local/lib")]


def find() -> str | None:
    """Path of the preferred pooling malloc installed here, or None."""
    for name in LIBRARIES:
        for folder in _folders():
            if (folder / name).is_file():
                return str(folder / name)
    return None


def preload_env(environ: dict | None = None) -> dict | None:
    """The environment to run this command again under a pooling malloc, or None to stay as it is."""
    environ = dict(os.environ if environ is None else environ)
    if not sys.platform.startswith("linux") or environ.get(MARK):
        return None
    library = find()
    if library is None:
        return None
    environ[MARK] = library
    environ["LD_PRELOAD"] = ":".join(filter(None, [library, environ.get("LD_PRELOAD")]))
    return environ


def switch() -> None:
    """Replace this process by the same command under a pooling malloc (see `preload_env`); if that
    cannot be done, return and go on with the system's malloc."""
    environ = preload_env()
    if environ is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environ)
    except OSError:
        pass


def active() -> str:
    """Which malloc this process uses: a preloaded library's file name, or the system's."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "unknown"
    for name in LIBRARIES:
        if name in maps:
            return name.split(".so")[0].removeprefix("lib")
    return "system"
