"""jukesep: music source separation by transfer learning from Jukebox's VQ-VAE."""
from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .api import Separator

__all__ = ["Separator", "__version__"]


def __getattr__(name: str):
    """`jukesep.Separator`, imported on first use so that `import jukesep` (and `jukesep --help`)
    does not pay for torch (PEP 562)."""
    if name == "Separator":
        from .api import Separator
        globals()["Separator"] = Separator
        return Separator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
