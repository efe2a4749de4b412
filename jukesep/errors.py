"""Errors that jukesep reports to users as one line (the CLI prints them without a traceback)."""


class JukesepError(Exception):
    """Base class: anything the user can fix (bad input, wrong file, missing stem)."""


class AudioError(JukesepError):
    """Audio that cannot be read, written or separated (corrupt, empty, silent, NaN...)."""


class CheckpointError(JukesepError):
    """A model file that is missing, corrupt, or does not match its declared architecture."""
