"""`jukesep serve`: register(subparsers) adds the sub-command to jukesep's parser."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
import sys
from pathlib import Path

from ..defaults import DEFAULT_MODEL, DEFAULT_REFINE, REFINES
from ..errors import JukesepError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "jukesep" / "web"


def register(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="local web page: drop a song, listen to its stems, download them",
                              description="Serve a web page to separate songs: upload one, watch its progress, "
                                          "listen to every stem in sync and download them.")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("-m", "--model", default=DEFAULT_MODEL, help="separator file or shipped model name")
    p.add_argument("--data-dir", type=Path, default=None,
                   help=f"where uploads, stems and the job database live, made private to this user (mode 0700; "
                        f"default {default_data_dir()})")
    p.add_argument("--max-upload-mb", type=float, default=200, help="largest accepted upload (default 200)")
    p.add_argument("--max-minutes", type=float, default=20,
                   help="longest accepted song (default 20); it also caps the decoded size: channels × rate × "
                        "seconds may not exceed a stereo 48 kHz song of this length, checked from the file's "
                        "header before anything is decoded")
    p.add_argument("--max-disk-gb", type=float, default=10,
                   help="disk space for uploads and stems (default 10); finished jobs are deleted oldest first "
                        "to make room, and an upload is refused (507) when that is not enough")
    p.add_argument("--workers", type=int, default=1, help="songs separated at the same time (default 1)")
    p.add_argument("--retention-hours", type=float, default=72,
                   help="finished jobs and their files are deleted after this long (default 72)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--refine", choices=REFINES, default=DEFAULT_REFINE,
                   help=f"refinement on the mixture's STFT (default: {DEFAULT_REFINE}; see jukesep separate)")
    p.set_defaults(func=cmd_serve)
    return p


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """Listen before loading anything, so a busy port is a one-line error."""
    host = host.strip("[]")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise JukesepError(f"cannot listen on {host!r}: {exc.strerror or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        hint = " (is another server using it? try --port with another number)" if port else ""
        raise JukesepError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None
    return sock


def cmd_serve(args) -> int:
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401  (python-multipart)
        import uvicorn
    except ImportError as exc:
        raise JukesepError(f"the web page needs packages that are not installed ({exc.name}): "
                           "pip install fastapi uvicorn python-multipart") from None
    if not 0 <= args.port <= 65535:
        raise JukesepError(f"--port must be between 0 and 65535, got {args.port}")
    if args.workers < 1:
        raise JukesepError("--workers must be at least 1")
    if min(args.max_upload_mb, args.max_minutes, args.retention_hours, args.max_disk_gb) <= 0:
        raise JukesepError("--max-upload-mb, --max-minutes, --retention-hours and --max-disk-gb must be positive")
    loopback = is_loopback(args.host)
    sock = bind(args.host, args.port)
    logger = logging.getLogger("jukesep.web")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("jukesep: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        import torch
        if args.workers > 1:  # share the cores between parallel separations instead of oversubscribing
            torch.set_num_threads(max(1, torch.get_num_threads() // args.workers))
        from .app import create_app
        data_dir = args.data_dir or default_data_dir()
        app = create_app(args.model, data_dir, max_upload_mb=args.max_upload_mb, max_minutes=args.max_minutes,
                         workers=args.workers, retention_hours=args.retention_hours, device=args.device,
                         max_disk_gb=args.max_disk_gb, refine=args.refine,
                         allowed_hosts=list(LOOPBACK_NAMES) if loopback else None)
        port = sock.getsockname()[1]
        shown = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
        if not loopback:
            print(f"jukesep: warning: listening on {args.host}: anyone who can reach this machine can upload "
                  "songs and use its CPU/GPU", file=sys.stderr)
        print(f"jukesep: serving http://{shown}:{port}/ (model {app.state.separator.name}, data in {data_dir}, "
              f"{args.workers} worker{'s' if args.workers > 1 else ''}); press Ctrl+C to stop", flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=30)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (`python -m jukesep.web serve ...`), with jukesep's error handling."""
    parser = argparse.ArgumentParser(prog="jukesep")
    register(parser.add_subparsers(dest="command", required=True))
    from ..cli import run
    return run(parser.parse_args(argv))
