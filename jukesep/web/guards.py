"""ASGI middleware that guards every request before the app sees it: the Host check, the
same-origin check on state-changing requests, and the security headers of every response."""
from __future__ import annotations

from urllib.parse import urlsplit

from fastapi.responses import JSONResponse

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
DEFAULT_PORTS = {"http": 80, "https": 443}


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key == name:
            return value.decode("latin-1")
    return None


def split_host(netloc: str, scheme: str = "http") -> tuple[str, int] | None:
    """("name", port) of a Host header or URL authority (the scheme's default port when none is
    given); None when it does not parse."""
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return parts.hostname.lower(), port or DEFAULT_PORTS.get(scheme, 80)


def same_origin(source: str, host: str) -> bool:
    """Whether an Origin or Referer (a URL, or "null") names the server that `host` names."""
    parts = urlsplit(source)
    if parts.scheme not in DEFAULT_PORTS:
        return False  # "null" (sandboxed frames, file:// pages) and other schemes are never this site
    # the Host's default port follows the page's scheme: behind a TLS proxy the server itself sees http
    origin = split_host(parts.netloc, parts.scheme)
    return origin is not None and origin == split_host(host, parts.scheme)


class HostCheck:
    """Rejects requests whose Host header is not one of `allowed` (guards a loopback server against
    DNS rebinding: a web page on another site cannot reach it under its own host name)."""

    def __init__(self, app, allowed: list[str]):
        self.app, self.allowed = app, {h.lower().strip("[]") for h in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket") and "*" not in self.allowed:
            host = split_host(_header(scope, b"host") or "")
            if host is None or host[0] not in self.allowed:
                return await error(400, "invalid Host header")(scope, receive, send)
        await self.app(scope, receive, send)


class SameOrigin:
    """Refuses (403) a POST, PUT, PATCH or DELETE sent by a page of another site: its Origin (or,
    without one, its Referer) must name this server's Host. Browsers send Origin on every such
    request, even a "simple" text/plain or form POST that needs no preflight; a request with
    neither header comes from no web page (curl, scripts) and is let through."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] in STATE_CHANGING:
            source = _header(scope, b"origin") or _header(scope, b"referer")
            if source is not None and not same_origin(source, _header(scope, b"host") or ""):
                return await error(403, "cross-site request refused: songs can only be sent or deleted "
                                        "from this server's own page")(scope, receive, send)
        await self.app(scope, receive, send)


class SecurityHeaders:
    HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
               (b"x-frame-options", b"DENY"),
               (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
                                            b"style-src 'self'; script-src 'self'; frame-ancestors 'none'")]

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + self.HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
