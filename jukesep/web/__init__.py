"""`jukesep serve`: a local web page to separate songs, listen to the stems and download them.

Needs the web extras: `pip install fastapi uvicorn python-multipart`.
"""
from __future__ import annotations


def create_app(*args, **kwargs):
    """See `jukesep.web.app.create_app` (imported lazily so `jukesep` works without the web extras)."""
    from .app import create_app as _create_app
    return _create_app(*args, **kwargs)


__all__ = ["create_app"]
