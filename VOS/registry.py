"""Build a VOS backend by name. A new network is one new module and one line here."""
from __future__ import annotations

import importlib
from typing import Any

from VOS.base import BackendError, VOSBackend

#: name -> "module:Class"; modules are imported only when their backend is built
BACKENDS: dict[str, str] = {
    "classic": "VOS.classic:ClassicBackend",
    "atnet": "VOS.atnet:ATNetBackend",
    "manet": "VOS.manet:MANetBackend",
    "ipn": "VOS.ipn:IPNBackend",
}

#: the directory name used in results/ (the paper's spelling for the published networks)
DISPLAY_NAMES = {"classic": "classic", "atnet": "ATNet", "manet": "MANet", "ipn": "IPN"}

#: robot min_nb_nodes per backend as in the published evaluation scripts (PROTOCOL.md §2)
MIN_NB_NODES = {"atnet": 2}


def canonical(name: str) -> str:
    key = str(name).strip().lower()
    if key not in BACKENDS:
        raise BackendError(f"unknown VOS backend '{name}'; known: {', '.join(sorted(BACKENDS))}")
    return key


def backend_class(name: str) -> type[VOSBackend]:
    module, cls = BACKENDS[canonical(name)].split(":")
    return getattr(importlib.import_module(module), cls)


def build_backend(name: str, device: Any = "cpu", **options: Any) -> VOSBackend:
    """Instantiate backend ``name`` on ``device`` (already resolved) with its options."""
    return backend_class(name)(device=device, **options)


def display_name(name: str) -> str:
    return DISPLAY_NAMES.get(canonical(name), name)


def default_min_nb_nodes(name: str) -> int:
    return MIN_NB_NODES.get(canonical(name), 4)
