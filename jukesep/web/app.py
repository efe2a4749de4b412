"""The web app: a JSON API over the job queue plus the static page (plain HTML/CSS/JS, no build step).

    POST   /api/jobs[?stems=vocals,drums] upload a song (multipart field `file`, or the raw bytes with
                                          the name in the X-Filename header), computing only the stems
                                          named (default: all; unknown names: 422); 201 + the job, or a JSON
                                          error: 413 too big (the file, or what it would decode to), 422
                                          not audio / empty / too long / too short (from the header:
                                          uploads are not decoded here), 503 queue full, 507 disk quota
                                          full. What only decoding finds (silence, NaN, a header that
                                          lied about the length) fails the job, with the reason in its
                                          `error`
    GET    /api/jobs/{id}                 state, queue position, progress, result links
    DELETE /api/jobs/{id}                 cancel or delete
    GET    /api/jobs/{id}/audio/{t}.{f}   a stem, `mixture` or `no_vocals` (mixture − vocals) as wav,
                                          flac or mp3 (?download=1 names it for saving); flac and mp3
                                          are made on the first request and kept (a few at a time: past
                                          that, 503 with Retry-After)
    GET    /api/jobs/{id}/preview/{t}     the Opus/Ogg preview the page plays (answers Range with 206)
    GET    /api/jobs/{id}/mix.{f}?gains=vocals:0,drums:1.2
                                          a custom mix of the tracks (left out: silent), gains 0..2
                                          (503 with Retry-After when busy, 507 when it does not fit
                                          in the disk quota)
    GET    /api/jobs/{id}/peaks           waveform peaks of the player's tracks (JSON)
    GET    /api/jobs/{id}/zip             all stems in one zip (wav)
    GET    /api/config                    limits, the model's stems and its model card

There is no endpoint listing jobs: a job id (random, 128 bits) is the only way to reach a job. A
finished job past its retention is gone (404) even before the hourly cleanup deletes its files.
POST and DELETE from a page of another site are refused (403; see `guards.SameOrigin`).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
import threading
import unicodedata
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import quote, unquote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ..audio import av_errors
from ..defaults import DEFAULT_REFINE
from ..errors import AudioError, JukesepError
from . import media
from .disk import DiskFullError, DiskQuota, prepare
from .guards import HostCheck, SameOrigin, SecurityHeaders, error
from .jobs import MIXTURE, NO_VOCALS, JobManager, user_message
from .limits import Limits, check_file
from .modelcard import model_card
from .store import JobStore

log = logging.getLogger("jukesep.web")

STATIC_DIR = Path(__file__).parent / "static"
JOB_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
SAFE_EXT = re.compile(r"^\.[a-z0-9]{1,10}$")
MULTIPART_SLACK = 64 * 1024  # form boundaries and headers around the file
CHUNK = 1 << 20
MIX_RENDERS = 2  # custom mixes rendered at once; more get 503 (each reads every stem of a song)
MAKERS = 2  # files made on request at once (flac, mp3, previews, no_vocals); more get 503
WAITERS = 4  # requests waiting for a file another request is making; more get 503
WAIT_S = 20.0  # how long one of them waits before it gets 503
RETRY_AFTER = {"Retry-After": "5"}  # seconds, on every 503 for being busy
MIX_KEEP_S = 3600.0  # a rendered mix is deleted once sent, or by the next render of its job after this
CACHE = {"Cache-Control": "private, max-age=86400"}


class _TooLarge(Exception):
    pass


class _Rejected(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def display_name(raw: str | None) -> str:
    """The uploaded file's name for showing and for download names only, never for a path."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".") or "song"
    return name[:200]


def safe_ext(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return ext if SAFE_EXT.match(ext) else ""


def attachment(job: dict, what: str) -> str:
    """A Content-Disposition that saves a result as `<song> - <what>`."""
    base = re.sub(r'[\\/:*?"<>|]+', "_", Path(job["name"]).stem).strip() or "song"
    return f"attachment; filename*=UTF-8''{quote(f'{base} - {what}')}"


def split_track(track: str, formats) -> tuple[str | None, str | None]:
    """"vocals.flac" → ("vocals", "flac"); (None, None) for a format not in `formats`."""
    name, dot, fmt = track.rpartition(".")
    return (name, fmt) if dot and fmt in formats else (None, None)


def parse_stems(separator, text: str | None) -> list[str] | None:
    """The `stems` query of an upload: None for all, else the names (JukesepError for bad ones)."""
    if text is None:
        return None
    names = [n.strip()[:40] for n in text.split(",")[:len(separator.stems) + 1] if n.strip()]
    return separator.resolve_stems(names)


def _load_separator(source, device: str, refine: str):
    from ..api import Separator
    if isinstance(source, (str, os.PathLike)):
        return Separator.from_pretrained(source, device=device, refine=refine)
    if hasattr(source, "separate_file"):
        return source
    if callable(source):
        return source()
    raise JukesepError(f"create_app needs a model path, a Separator or a factory, not {type(source).__name__}")


def create_app(separator_factory_or_model_path, data_dir, max_upload_mb: float = 200, max_minutes: float = 20,
               workers: int = 1, retention_hours: float = 72, *, device: str = "auto",
               allowed_hosts: list[str] | None = None, max_queued: int = 100, max_disk_gb: float = 10,
               refine: str = DEFAULT_REFINE) -> FastAPI:
    """The web app. `separator_factory_or_model_path`: a model file or name for
    `Separator.from_pretrained`, a `Separator`, or a function returning one (called once, here, so a
    bad model fails now). Jobs live in `data_dir` (SQLite + one folder per job, private to the
    server's user: see `disk`), at most `max_disk_gb` of them. Workers start with the app (lifespan)
    and stop with it. `allowed_hosts`: accepted Host header names (None: any). `refine`: the
    refinement of a model given by path or name (see `Separator`)."""
    if workers < 1:
        raise JukesepError("workers must be at least 1")
    if min(max_upload_mb, max_minutes, retention_hours, max_disk_gb) <= 0:
        raise JukesepError("upload size, duration, retention and disk limits must be positive")
    data_dir = Path(data_dir)
    prepare(data_dir, "jobs.sqlite3")
    separator = _load_separator(separator_factory_or_model_path, device, refine)
    store = JobStore(data_dir / "jobs.sqlite3")
    limits = Limits(int(max_upload_mb * 2**20), max_minutes)

    manager = JobManager(store, separator, data_dir, workers=workers, retention_hours=retention_hours,
                         max_samples=limits.max_samples)
    quota = DiskQuota(manager, int(max_disk_gb * 1e9), len(separator.stems))
    limit_bytes = limits.max_bytes
    card = model_card(separator)
    mixing = threading.BoundedSemaphore(MIX_RENDERS)
    gate = media.Gate(MAKERS, WAITERS, WAIT_S)
    too_big = f"the file is larger than the {max_upload_mb:g} MB upload limit"

    @asynccontextmanager
    async def lifespan(app):
        manager.start()
        try:
            yield
        finally:
            await run_in_threadpool(manager.stop)

    app = FastAPI(title="jukesep", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.store, app.state.manager, app.state.separator, app.state.quota = store, manager, separator, quota
    app.state.gate = gate

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc):
        return error(422, "invalid request")

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        log.exception("internal error on %s", request.url.path)
        return error(500, "internal server error")

    def get_job(job_id: str) -> dict:
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is not None and manager.is_expired(job):
            manager.remove(job_id)  # now rather than at the next hourly cleanup
            job = None
        if job is None:
            raise StarletteHTTPException(404, "no such job (it may have expired)")
        return job

    def job_json(job: dict) -> dict:
        job_id = job["id"]
        out = {k: job[k] for k in ("id", "name", "status", "created", "started", "finished", "duration", "rate",
                                   "channels", "error", "note")}
        out["expires"] = manager.expires(job)
        if job["status"] == "queued":
            out["queue_ahead"] = store.queue_ahead(job_id)
        if job["status"] == "running":
            out["progress"] = manager.progress(job_id)
        if job["status"] in ("queued", "running"):
            out["wanted"] = manager.wanted(job)
        if job["status"] == "done":
            base = f"/api/jobs/{job_id}"
            formats = [f for f in media.FORMATS if f != "mp3" or (job["channels"] or 2) <= 2]
            out["formats"] = formats
            out["stems"] = [track_json(base, s, formats) for s in job["stems"]]
            out["mixture"] = track_json(base, MIXTURE, formats)
            if manager.has_no_vocals(job):
                out["no_vocals"] = track_json(base, NO_VOCALS, formats)
            out["player"] = manager.player_tracks(job)
            out["mix"] = f"{base}/mix"
            out["zip"] = f"{base}/zip"
            out["peaks"] = f"{base}/peaks"
        return out

    def track_json(base: str, name: str, formats: list[str]) -> dict:
        return {"name": name, "url": f"{base}/audio/{name}.wav", "download": f"{base}/audio/{name}.wav?download=1",
                "preview": f"{base}/preview/{name}",
                "downloads": {f: f"{base}/audio/{name}.{f}?download=1" for f in formats}}

    def admit(job_id: str, path: Path, name: str, ext: str, size: int, stems: list[str] | None) -> dict:
        """Check the upload from its header only (any extension), make room for what it will write
        and queue it. Raises _Rejected."""
        try:
            info = check_file(separator, limits, path, name)
        except AudioError as exc:
            raise _Rejected(getattr(exc, "status", 422), user_message(exc, path, name)) from None
        seconds = info.frames / info.rate
        with quota.lock:  # two uploads must not both count on the same free space
            try:
                evicted = quota.make_room(quota.outputs(seconds, info.rate, info.channels, stems and len(stems)))
            except DiskFullError as exc:
                raise _Rejected(507, str(exc)) from None
            job = store.add(job_id, name, ext, seconds, info.rate, info.channels, size, stems)
        if evicted:
            log.info("disk quota: deleted %d finished job(s) to make room", len(evicted))
        return job

    async def receive_raw(request: Request, target: Path) -> int:
        size = 0
        with open(target, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit_bytes:
                    raise _TooLarge()
                out.write(chunk)
        return size

    async def receive_multipart(request: Request, target: Path) -> tuple[str | None, int]:
        received = 0

        async def counted():
            nonlocal received
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit_bytes + MULTIPART_SLACK:
                    raise _TooLarge()
                yield chunk

        parser = MultiPartParser(request.headers, counted(), max_files=1, max_fields=8)
        form = await parser.parse()
        try:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _Rejected(422, "no file in the upload (send it in the form field 'file')")
            size = 0
            with open(target, "wb") as out:
                while chunk := await upload.read(CHUNK):
                    size += len(chunk)
                    if size > limit_bytes:
                        raise _TooLarge()
                    out.write(chunk)
            return upload.filename, size
        finally:
            await form.close()

    @app.post("/api/jobs", status_code=201)
    async def create_job(request: Request):
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit_bytes + MULTIPART_SLACK:
            return error(413, too_big)
        if store.count("queued") >= max_queued:
            return error(503, f"the queue is full ({max_queued} songs waiting); try again later")
        try:  # before the body is read: a wrong name costs nothing
            stems = parse_stems(separator, request.query_params.get("stems"))
        except JukesepError as exc:
            return error(422, str(exc))
        job_id = secrets.token_urlsafe(16)
        folder = manager.job_dir(job_id)
        folder.mkdir(parents=True)
        part = folder / "upload.part"
        keep = False
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                raw_name, size = await receive_multipart(request, part)
            else:
                raw_name = unquote(request.headers.get("x-filename") or request.query_params.get("name") or "")
                size = await receive_raw(request, part)
            name = display_name(raw_name)
            if size == 0:
                return error(422, f"{name}: the file is empty (0 bytes)")
            ext = safe_ext(name)
            path = folder / f"input{ext}"
            part.replace(path)
            job = await run_in_threadpool(admit, job_id, path, name, ext, size, stems)
            keep = True
        except _TooLarge:
            return error(413, too_big)
        except _Rejected as exc:
            return error(exc.status, exc.message)
        except MultiPartException as exc:
            return error(400, f"the upload could not be read ({exc.message})")
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
        manager.notify()
        log.info("job %s queued: %s (%.1f s)", job_id, name, job["duration"])
        return JSONResponse(job_json(job), status_code=201)

    @app.get("/api/jobs/{job_id}")
    def read_job(job_id: str):
        return JSONResponse(job_json(get_job(job_id)), headers={"Cache-Control": "no-store"})

    @app.delete("/api/jobs/{job_id}")
    def delete_job(job_id: str):
        manager.cancel(get_job(job_id)["id"])
        return Response(status_code=204)

    def finished_file(job: dict, path: Path) -> Path:
        if job["status"] != "done":
            raise StarletteHTTPException(409, "this job has no results yet")
        if not path.is_file():
            raise StarletteHTTPException(410, "the result files are gone (expired)")
        return path

    def track_of(job: dict, track: str) -> str:
        finished_file(job, manager.stem_path(job["id"], MIXTURE))  # 409 before it is done, 410 once gone
        if track not in manager.tracks(job):
            raise StarletteHTTPException(404, "no such track")
        return track

    def check_format(job: dict, fmt: str) -> None:
        try:
            media.check_format(fmt, job["channels"] or 2)
        except AudioError as exc:  # e.g. mp3 of a 6-channel song
            raise StarletteHTTPException(422, str(exc)) from None

    def made(job: dict, make, *args) -> Path:
        """`make(job, *args)`: a file made on request. The request was checked already, so what fails
        now is the server's (or the job was deleted meanwhile)."""
        try:
            return make(job, *args)
        except media.Busy as exc:
            raise StarletteHTTPException(503, str(exc), headers=RETRY_AFTER) from None
        except (JukesepError, OSError, *av_errors()) as exc:
            if not manager.job_dir(job["id"]).is_dir():
                raise StarletteHTTPException(410, "the result files are gone (expired or deleted)") from None
            log.error("cannot make a file for job %s: %s", job["id"], exc)
            raise StarletteHTTPException(500, "the file could not be made on the server; see its log") from None

    @app.get("/api/jobs/{job_id}/audio/{track}")
    def read_audio_file(job_id: str, track: str, download: int = 0):
        job = get_job(job_id)
        name, fmt = split_track(track, media.FORMATS)
        track_of(job, name)
        check_format(job, fmt)
        path = made(job, manager.export_file, name, fmt, gate)
        headers = dict(CACHE)
        if download:
            headers["Content-Disposition"] = attachment(job, f"{name}.{fmt}")
        return FileResponse(path, media_type=media.MEDIA_TYPES[fmt], headers=headers)

    @app.get("/api/jobs/{job_id}/preview/{track}")
    def read_preview(job_id: str, track: str):
        job = get_job(job_id)
        path = made(job, manager.preview_file, track_of(job, track), gate)
        return FileResponse(path, media_type=media.MEDIA_TYPES["ogg"], headers=CACHE)

    def render_mix(job: dict, sources: dict, target: Path, fmt: str) -> Path:
        target.parent.mkdir(exist_ok=True)
        media.remove_older(target.parent, MIX_KEEP_S)  # mixes whose download was cut off before it could delete them
        media.write_mix(sources, target, fmt)
        return target

    @app.get("/api/jobs/{job_id}/mix.{fmt}")
    def read_mix(job_id: str, fmt: str, gains: str = "", download: int = 1):
        job = get_job(job_id)
        if fmt not in media.FORMATS:
            raise StarletteHTTPException(404, "no such format (wav, flac or mp3)")
        finished_file(job, manager.stem_path(job["id"], MIXTURE))
        try:
            levels = {t: g for t, g in media.parse_gains(gains, manager.tracks(job)).items() if g > 0}
        except ValueError as exc:
            raise StarletteHTTPException(422, str(exc)) from None
        check_format(job, fmt)
        if not levels:
            raise StarletteHTTPException(422, "gains: every track is silent; give at least one a gain above 0")
        if not mixing.acquire(blocking=False):
            raise StarletteHTTPException(503, "the server is busy rendering other mixes; try again in a moment",
                                         headers=RETRY_AFTER)
        target = manager.job_dir(job["id"]) / "mixes" / f"{secrets.token_hex(8)}.{fmt}"
        try:
            sources = {made(job, manager.track_file, t, gate): g for t, g in levels.items()}
            with quota.reserve(quota.mix_bytes(job)):
                made(job, render_mix, sources, target, fmt)
        except DiskFullError as exc:
            raise StarletteHTTPException(507, str(exc)) from None
        finally:
            mixing.release()
        headers = {"Cache-Control": "no-store"}
        if download:
            headers["Content-Disposition"] = attachment(job, f"mix.{fmt}")
        return FileResponse(target, media_type=media.MEDIA_TYPES[fmt], headers=headers,
                            background=BackgroundTask(target.unlink, missing_ok=True))

    @app.get("/api/jobs/{job_id}/peaks")
    def read_peaks(job_id: str):
        job = get_job(job_id)
        path = finished_file(job, manager.peaks_path(job["id"]))
        return FileResponse(path, media_type="application/json", headers={"Cache-Control": "private, max-age=86400"})

    @app.get("/api/jobs/{job_id}/zip")
    def read_zip(job_id: str):
        job = get_job(job_id)
        path = finished_file(job, manager.zip_path(job["id"]))
        return FileResponse(path, media_type="application/zip",
                            headers={"Content-Disposition": attachment(job, "stems.zip")})

    @app.get("/api/config")
    def read_config():
        return {"max_upload_mb": max_upload_mb, "max_minutes": max_minutes, "max_disk_gb": max_disk_gb,
                "max_decoded_samples": limits.max_samples, "workers": workers,
                "retention_hours": retention_hours, "stems": list(separator.stems),
                "model": getattr(separator, "name", "model"), "model_card": card, "formats": list(media.FORMATS)}

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SameOrigin)
    app.add_middleware(SecurityHeaders)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts)
    return app
