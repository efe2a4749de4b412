"""jukesep: music source separation by transfer learning from Jukebox's VQ-VAE."""
from __future__ import annotations

from typing import TYPE_CHECKING

from . import lazy

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import Separator

__all__ = ["Separator", "__version__"]

__getattr__, __dir__ = lazy.names(__name__, {"Separator": ".api"})  # without torch until used
