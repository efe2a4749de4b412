"""Atomic writes: every file jukesep writes goes to a temporary name in the target's folder and is
renamed into place when complete, so a reader, a crash or Ctrl-C never leaves a half-written file.

Files get the permissions a plain `open()` would give (0666 minus the umask), not mkstemp's 0600.
"""
from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _read_umask() -> int:
    # os.umask can only be read by setting it; do that once, at import, not while threads write files.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _temp_beside(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)
    return Path(tmp)


@contextmanager
def atomic_paths(paths: list[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path per target; when the block ends without error, rename all of them
    into place together (all or nothing). On any error, or an interrupt, the temporaries are removed
    and the targets are left as they were."""
    temps: list[Path] = []
    try:
        for path in paths:
            temps.append(_temp_beside(Path(path)))
        yield temps
        for tmp, path in zip(temps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """`atomic_paths` for one file: write to the yielded temporary path."""
    with atomic_paths([path]) as (tmp,):
        yield tmp


def promote(part: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename a complete file written under its own temporary name (e.g. a resumable download's
    `.part`, which must outlive a failed run) into place, atomically."""
    os.replace(part, target)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically, flushed to disk before the rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_torch_save(obj, path: str | os.PathLike) -> None:
    import torch
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@contextmanager
def atomic_dir(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `folder`; when the block ends without error, it
    replaces `folder` (an incomplete leftover there is removed first). On error it is removed."""
    import shutil
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        os.chmod(tmp, 0o777 & ~_UMASK)
        yield tmp
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
