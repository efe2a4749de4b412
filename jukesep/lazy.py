"""Names a package imports on first use (PEP 562), so that `jukesep --help` and the configs the
command line needs come without torch.

    __getattr__, __dir__ = lazy.names(__name__, {"train": ".loop"})
"""
from __future__ import annotations

import importlib
import sys


def names(package: str, where: dict[str, str]):
    """Module-level `__getattr__` and `__dir__` for `package`: name → the (relative) module holding it."""
    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *where})

    return __getattr__, __dir__
