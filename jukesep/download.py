"""Fetching OpenAI's official Jukebox VQ-VAE (`vqvae.pth.tar`) into a cache folder: resumable
(HTTP Range), size-bounded, checked against a SHA-256 when one is given, written atomically.
The file is then read like any other checkpoint: `torch.load(weights_only=True)`, no code runs."""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from .atomic import promote
from .errors import JukesepError
from .progress import Progress

JUKEBOX_URL = "https://openaipublic.azureedge.net/jukebox/models/5b/vqvae.pth.tar"
MAX_BYTES = 8 << 30  # far above the real file; a server sending more is not sending it
BLOCK = 1 << 20
TIMEOUT = 60.0  # seconds without data before giving up (the download can be resumed)


class DownloadError(JukesepError):
    """A download that failed, was refused or does not match its checksum."""


def cache_dir() -> Path:
    """$JUKESEP_CACHE, else $XDG_CACHE_HOME/jukesep, else ~/.cache/jukesep."""
    if os.environ.get("JUKESEP_CACHE"):
        return Path(os.environ["JUKESEP_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jukesep"


def fetch(url: str = JUKEBOX_URL, folder: Path | None = None, sha256: str | None = None,
          progress: bool = True) -> Path:
    """The cached copy of `url` (downloaded, or resumed from a partial `.part`, when missing)."""
    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower())):
        raise DownloadError(f"--sha256 must be 64 hexadecimal digits, got {sha256!r}")
    folder = Path(folder or cache_dir())
    target = folder / Path(urllib.request.urlparse(url).path).name
    if not target.name:
        raise DownloadError(f"{url}: the address names no file")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create the cache folder {folder} ({exc.strerror or exc})") from None
    if not target.exists():
        part = target.with_name(target.name + ".part")
        _download(url, part, progress)
        promote(part, target)
    if sha256 is not None:
        check_sha256(target, sha256)
    return target


def _download(url: str, part: Path, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing left to send: the partial file is complete
            return
        raise DownloadError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({getattr(exc, 'reason', exc)})") from None
    with response:
        resumed = response.status == 206
        if have and not resumed:
            have = 0  # the server ignored the range: start again
        size = response.headers.get("Content-Length")
        total = have + int(size) if size and size.isdigit() else None
        if total is not None and total > MAX_BYTES:
            raise DownloadError(f"{url}: {total / 2**30:.1f} GiB is more than a Jukebox VQ-VAE can be")
        with open(part, "ab" if resumed else "wb") as out, \
                Progress(total, f"download {part.name.removesuffix('.part')}", "B", initial=have,
                         enabled=progress) as bar:
            _copy(response, out, have, total, bar, url)


def _copy(response, out, have: int, total: int | None, bar: Progress, url: str) -> None:
    done = have
    try:
        while block := response.read(BLOCK):
            done += len(block)
            if done > MAX_BYTES:
                raise DownloadError(f"{url}: the server sent more than {MAX_BYTES / 2**30:.0f} GiB; stopped")
            out.write(block)
            bar.update(len(block))
        if total is not None and done < total:
            raise OSError("the connection closed early")
    except (OSError, http.client.HTTPException) as exc:
        out.flush()
        of = "?" if total is None else f"{total / 2**20:.1f}"
        reason = getattr(exc, "reason", exc) or type(exc).__name__
        raise DownloadError(f"{url}: the download stopped after {done / 2**20:.1f} MiB of {of} ({reason}); "
                            "run the same command again to resume") from None


def check_sha256(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            digest.update(block)
    if digest.hexdigest() != expected.lower():
        path.unlink()
        raise DownloadError(f"{path.name}: SHA-256 {digest.hexdigest()} does not match the expected "
                            f"{expected.lower()}; "
                            "the file was deleted")
