"""jukesep: music source separation by transfer learning from Jukebox's VQ-VAE."""
__version__ = "0.1.0"

from .api import Separator  # noqa: E402

__all__ = ["Separator", "__version__"]
