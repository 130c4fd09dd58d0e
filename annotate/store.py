"""Write nested Python state (dicts, lists, tuples, numbers, strings, numpy arrays, torch tensors) as one
JSON tree plus one ``.npz`` of arrays, and read it back exactly (no pickle: a workspace holds no code).

``encode(obj) -> (tree, arrays)`` and ``decode(tree, arrays) -> obj``. Dicts keep non-string keys
(the classic backend keys its anchors by frame index) and tuples stay tuples.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.io import atomic_write_bytes, atomic_write_text


class StoreError(TypeError):
    """A value of a type the store cannot write."""


def encode(obj: Any, arrays: dict[str, np.ndarray] | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    arrays = {} if arrays is None else arrays

    def enc(o: Any) -> Any:
        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, (int, float)) and not isinstance(o, bool):
            return o
        if isinstance(o, np.generic):
            return {"__scalar__": o.item(), "dtype": str(o.dtype)}
        if isinstance(o, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = o
            return {"__array__": key}
        if type(o).__module__.startswith("torch") and hasattr(o, "detach"):
            key = f"a{len(arrays)}"
            arrays[key] = o.detach().cpu().numpy()
            return {"__tensor__": key, "device": str(o.device)}
        if isinstance(o, dict):
            return {"__dict__": [[enc(k), enc(v)] for k, v in o.items()]}
        if isinstance(o, tuple):
            return {"__tuple__": [enc(v) for v in o]}
        if isinstance(o, list):
            return [enc(v) for v in o]
        raise StoreError(f"cannot store a {type(o).__name__}")

    return enc(obj), arrays


def decode(tree: Any, arrays: Any) -> Any:
    def dec(o: Any) -> Any:
        if isinstance(o, list):
            return [dec(v) for v in o]
        if isinstance(o, dict):
            if "__array__" in o:
                return np.array(arrays[o["__array__"]])
            if "__tensor__" in o:
                import torch

                return torch.from_numpy(np.array(arrays[o["__tensor__"]])).to(o.get("device", "cpu"))
            if "__scalar__" in o:
                return np.dtype(o["dtype"]).type(o["__scalar__"])
            if "__dict__" in o:
                return {_hashable(dec(k)): dec(v) for k, v in o["__dict__"]}
            if "__tuple__" in o:
                return tuple(dec(v) for v in o["__tuple__"])
        return o

    return dec(tree)


def _hashable(k: Any) -> Any:
    return tuple(k) if isinstance(k, list) else k


def save(path_json: str | os.PathLike, obj: Any, compress: bool = False) -> None:
    """``path_json`` (the tree) and ``path_json`` with ``.npz`` (the arrays), each written atomically."""
    tree, arrays = encode(obj)
    p = Path(path_json)
    buf = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buf, **arrays)
    atomic_write_bytes(p.with_suffix(".npz"), buf.getvalue())
    atomic_write_text(p, json.dumps(tree))


def load(path_json: str | os.PathLike) -> Any:
    p = Path(path_json)
    tree = json.loads(p.read_text())
    with np.load(p.with_suffix(".npz"), allow_pickle=False) as arrays:
        return decode(tree, arrays)
