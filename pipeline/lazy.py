"""Stage packages export their config and VERSION eagerly and their stage code lazily.

Reading configs and computing stage keys imports every stage package; the stage code (torch, scipy,
matplotlib...) should load only when a stage runs. A package sets
``__getattr__ = stage_exports(__name__, {"run", ...})`` (PEP 562).
"""
from __future__ import annotations

import importlib
from typing import Any, Callable


def stage_exports(package: str, names: set[str], elsewhere: dict[str, str] | None = None) -> Callable[[str], Any]:
    """``names`` come from ``<package>.stage``; ``elsewhere`` maps other lazy names to their submodule."""
    where = {**{n: "stage" for n in names}, **(elsewhere or {})}

    def __getattr__(name: str) -> Any:
        # Only the package's lazy exports: any other lookup (a submodule being imported, say) must not
        # import the stage, which imports those submodules itself.
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
    return __getattr__
