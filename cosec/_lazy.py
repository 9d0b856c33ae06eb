"""Lazy package exports (PEP 562): ``from cosec.models import ChampModel`` imports cosec/models/champ.py
only when asked, so importing a light submodule (a package's config) does not load the whole package.

tests/pipeline/import_closure.py reads these maps, so DVC's dependency check sees through them.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, names: dict[str, str]):
    """(``__getattr__``, ``__dir__``, ``__all__``) for a package exporting ``names`` (name -> ".module")."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        globals_of_package = importlib.import_module(package).__dict__
        globals_of_package[name] = value  # cache: the next access is a plain attribute
        return value

    def __dir__():
        return sorted(names)

    return __getattr__, __dir__, sorted(names)
