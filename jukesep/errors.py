"""Errors that jukesep reports to users as one line (the CLI prints them without a traceback)."""


class JukesepError(Exception):
    """Base class: anything the user can fix (bad input, wrong file, missing stem)."""


class ShapeError(JukesepError, ValueError):
    """A tensor or array whose shape, dtype or length a function cannot take."""


class AudioError(JukesepError):
    """Audio that cannot be read, written or separated."""


class UnreadableAudioError(AudioError):
    """A file that is missing, empty, or does not decode as audio."""


class InvalidAudioError(AudioError):
    """Decoded audio that makes no sense: no samples, NaN/inf, too many channels, implausible rate."""


class SilentAudioError(AudioError):
    """Audio with nothing to separate (peak below -120 dBFS)."""


class TooShortAudioError(AudioError):
    """Audio shorter than one latent frame of the model."""


class TooLongAudioError(AudioError):
    """Audio that decodes to more samples than the caller allows (e.g. a server's memory limit)."""


class CheckpointError(JukesepError):
    """A model file that is missing, corrupt, or does not match its declared architecture."""
