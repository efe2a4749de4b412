"""Memory that stays flat over a long song: a fixed mmap threshold for glibc's malloc.

glibc serves allocations above its mmap threshold with mmap, returned to the system when freed,
but each time such a block is freed it raises the threshold to that block's size (up to 32 MiB).
After the first chunks of a song, a separation's activations (a few MiB each) then come from the
heap, which fragments and keeps growing over the blocks of a long song. With the threshold fixed,
they stay mmaps. Measured on a streamed 20-minute song (`jukesep separate`'s path, 2026-12-01):
peak RSS 668 MiB rising over the first half of the song, 500 MiB flat with the threshold fixed.
"""
from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # mallopt's parameter number in glibc's malloc.h
MMAP_THRESHOLD = 1 << 20  # bytes


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc malloc's mmap threshold for this process (which also stops its dynamic rise).
    Returns whether it was set: False on other C libraries and systems, where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter already uses
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, threshold) == 1
