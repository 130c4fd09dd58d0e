"""The one checkpoint writer and loader of the project.

- :func:`save` writes ``torch.save(obj)`` atomically (temporary file, fsync, rename): a kill never
  leaves half a checkpoint, and a reader sees the old file or the new one.
- :func:`load` reads with ``torch.load(weights_only=True)`` (no pickled code runs), on
  ``map_location``. Every failure (missing, truncated, not a torch file, holding Python objects that
  the safe loader refuses) raises :class:`CheckpointError` naming the file and the layout expected.
- :func:`state_dict_of` unwraps ``{'state_dict'|'model'|'net'|'policy': ...}`` and strips the
  ``module.`` prefix nn.DataParallel adds; :func:`load_into` loads a state dict strictly and names the
  missing and unexpected keys.

``weights_only=False`` is never the default: :func:`load` takes ``trusted=True`` only where a caller
documents why the format needs it.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Iterable

from core.errors import InputError
from core.io import atomic_write_bytes
from core.state_dict import strip_module_prefix

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("state_dict", "model", "net", "policy")


class CheckpointError(InputError):
    """A checkpoint cannot be read or does not have the layout the caller needs."""


def save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically; returns the path."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load(path: str | os.PathLike, *, expected: str, map_location: Any = "cpu", trusted: bool = False,
         fix: str | None = None) -> Any:
    """The object saved at ``path``, loaded with ``weights_only=True`` (unless ``trusted``).

    expected: the layout the caller needs, for the error message (e.g. "a QNet state dict with keys
    encoder_fc1.weight, ..."). fix: what the user should do when the file is missing or unreadable
    (default: re-download or re-create it)."""
    import torch

    path = Path(path)
    fix = fix or "re-download or re-create it"
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found (expected {expected}); {fix}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (an interrupted copy?); expected {expected}; {fix}")
    try:
        return torch.load(str(path), map_location=map_location, weights_only=not trusted)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "Unsupported global" in text or "GLOBAL" in text:
            what = next((ln.strip() for ln in text.splitlines() if "Unsupported global" in ln or "GLOBAL" in ln), "")
            raise CheckpointError(
                f"{path} holds Python objects that the safe loader (torch.load weights_only=True) refuses ({what}); "
                f"expected {expected}. Re-save it as a plain state dict (tensors only), e.g. "
                f"torch.save(torch.load(path, weights_only=False)['state_dict'], path) on a file you trust") from exc
        raise CheckpointError(f"{path} is not a torch checkpoint or is truncated ({text.splitlines()[0][:120]}); "
                              f"expected {expected}; {fix}") from exc
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, AttributeError, IndexError) as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({first}); expected {expected}; "
                              f"{fix}") from exc


def state_dict_of(obj: Any, path: str | os.PathLike, *, expected: str,
                  wrappers: Iterable[str] = WRAPPER_KEYS) -> dict[str, Any]:
    """The state dict inside a loaded checkpoint: ``obj`` itself or ``obj[key]`` for the first wrapper
    key present; ``module.`` prefixes stripped. Not a dict of tensors -> CheckpointError."""
    import torch

    if isinstance(obj, dict):
        for key in wrappers:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(f"{path} does not hold a state dict (found {type(obj).__name__}); expected {expected}")
    state = strip_module_prefix(obj)
    if not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} holds no tensors under {sorted(state)[:5]}; expected {expected}")
    return state


def export(obj: Any, path: str | os.PathLike, *, owner: dict[str, Any], fix: str) -> Path:
    """Write exported weights (``torch.save(obj)``, atomically) that a training run owns.

    ``<path>.export.json`` records the owner (a digest of ``owner``, the run's identity). A file at
    ``path`` that this owner did not export (no record: the published weights placed there, or a
    record of another run) is never overwritten: CheckpointError with ``fix``. The record is written
    before the file, so a kill between the two never disowns a file this run wrote."""
    import hashlib
    import json

    from core.identity import normalise
    from core.io import atomic_write_json

    path = Path(path)
    side = path.with_name(path.name + ".export.json")
    digest = hashlib.sha256(json.dumps(normalise(owner), sort_keys=True).encode()).hexdigest()
    if path.exists():
        try:
            record = json.loads(side.read_text()) if side.is_file() else None
        except ValueError:
            record = None
        if record is None or record.get("owner") != digest:
            why = ("it has no export record (the published weights?)" if record is None
                   else f"it was exported by another training run ({side})")
            raise CheckpointError(f"{path} exists and was not written by this training run: {why}. Refusing to "
                                  f"overwrite it; {fix}")
    atomic_write_json(side, {"owner": digest, "settings": normalise(owner)})
    return save(obj, path)


def load_state_dict(path: str | os.PathLike, *, expected: str, map_location: Any = "cpu",
                    fix: str | None = None) -> dict[str, Any]:
    """:func:`load` then :func:`state_dict_of`: the (unwrapped, prefix-free) state dict at ``path``."""
    return state_dict_of(load(path, expected=expected, map_location=map_location, fix=fix), path, expected=expected)


def load_into(module: Any, state: dict[str, Any], path: str | os.PathLike, *, expected: str) -> None:
    """``module.load_state_dict(state, strict=True)``; a mismatch -> CheckpointError listing what is
    missing, unexpected or of another shape."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} (network {tuple(own[k].shape)})" for k in own
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} keys missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {'; '.join(shapes[:2])})")
        raise CheckpointError(f"{path} does not fit the network: {', '.join(parts)}; expected {expected}")
    module.load_state_dict(state, strict=True)


__all__ = ["CheckpointError", "WRAPPER_KEYS", "export", "load", "load_into", "load_state_dict", "save", "state_dict_of",
           "strip_module_prefix"]
