"""Run identity: every setting and input that decides a run's outputs, recorded beside them.

A resumable run (an evaluation's ``results/.../run.json``, ``reward.csv.run.json``, a training
checkpoint's ``.run.json``) calls :func:`check_identity` before it appends anything: when outputs
already exist and were made with other settings or other input files, it refuses with a message
naming each change and the fix, so old and new results never mix in one file.

Input files enter the identity as :func:`file_ref` (path and sha256 of the content); two refs are the
same input when their hashes agree, wherever the file lives. Hashes are cached by (path, size,
mtime): a 500 MB checkpoint is read once, not on every run (cache: ``$IVOSW_CACHE_DIR/sha256.json``,
default ``~/.cache/ivosw``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.io import atomic_write_json

log = logging.getLogger(__name__)

_MEMORY: dict[str, tuple[int, int, str]] = {}


class IdentityMismatch(InputError):
    """Outputs on disk were made with other settings or inputs than the run now asked for."""


def _cache_file() -> Path:
    return Path(os.environ.get("IVOSW_CACHE_DIR") or Path.home() / ".cache" / "ivosw") / "sha256.json"


def _disk_cache() -> dict[str, list]:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of the file's content (cached by real path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = str(p.resolve())
    sig = (st.st_size, st.st_mtime_ns)
    hit = _MEMORY.get(key)
    if hit and hit[:2] == sig:
        return hit[2]
    disk = _disk_cache()
    if key in disk and tuple(disk[key][:2]) == sig:
        _MEMORY[key] = (*sig, disk[key][2])
        return disk[key][2]
    h = hashlib.sha256()
    with open(p, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _MEMORY[key] = (*sig, digest)
    if st.st_size >= 1 << 20:             # only big files are worth a disk entry
        disk[key] = [*sig, digest]
        try:
            atomic_write_json(_cache_file(), disk, indent=None)
        except OSError as exc:             # a read-only home: the memory cache still works
            log.debug("cannot write the hash cache %s: %s", _cache_file(), exc)
    return digest


def file_ref(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """``{"path", "sha256"}`` of an input file (None for no file; sha256 None when it does not exist)."""
    if path is None:
        return None
    p = Path(path)
    return {"path": str(p), "sha256": file_sha256(p) if p.is_file() else None}


def state_sha256(module: Any) -> str:
    """Hex sha256 over a module's state dict (names, dtypes, shapes, values): the identity of weights
    that live only in memory."""
    import torch

    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        t = v.detach().cpu().contiguous()
        h.update(f"{k}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def normalise(obj: Any) -> Any:
    """The JSON form of an identity (tuples become lists, paths strings), as it is stored."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _is_ref(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"path", "sha256"}


def _same(a: Any, b: Any) -> bool:
    if _is_ref(a) and _is_ref(b):
        return a["sha256"] == b["sha256"]
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict) and not (_is_ref(a) or _is_ref(b)):
        return set(a) == set(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


def _show(v: Any) -> str:
    if _is_ref(v):
        return f"{v['path']} (sha256 {v['sha256'][:12]}…)" if v["sha256"] else f"{v['path']} (absent)"
    if isinstance(v, list) and v and all(_is_ref(x) for x in v):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return json.dumps(v, sort_keys=True)


def changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One line per key whose value differs ('not recorded' when ``old`` lacks it)."""
    out = []
    for k in sorted(set(old) | set(new)):
        if k not in old:
            out.append(f"{k}: not recorded there, {_show(new[k])} now")
        elif k not in new:
            out.append(f"{k}: {_show(old[k])} there, not given now")
        elif not _same(old[k], new[k]):
            out.append(f"{k}: {_show(old[k])} there, {_show(new[k])} now")
    return out


def check_identity(record: str | os.PathLike, identity: dict[str, Any], *, has_outputs: bool, what: str,
                   fix: str) -> dict[str, Any]:
    """Refuse to resume outputs made with another identity, then record ``identity`` at ``record``.

    has_outputs: whether outputs already exist (only then does a difference matter); what: the outputs
    (for the message, e.g. "results/ATNet/oracle/davis/worst"); fix: what to do instead (e.g. "choose
    another results_dir or delete that folder"). Outputs without a record are refused too: nothing
    says what made them. Returns the normalised identity."""
    record = Path(record)
    identity = normalise(identity)
    if has_outputs:
        if not record.is_file():
            raise IdentityMismatch(f"{what} holds outputs but no record of the settings that made them ({record} is "
                                   f"missing), so they cannot be resumed safely; {fix}")
        try:
            old = json.loads(record.read_text())
        except ValueError as exc:
            raise IdentityMismatch(f"{record} (the settings of {what}) is not valid JSON ({exc}); {fix}") from exc
        diff = changes(old, identity)
        if diff:
            raise IdentityMismatch(f"{what} was made with other settings or inputs: {'; '.join(diff)}. "
                                   f"Refusing to mix them; {fix}")
    atomic_write_json(record, identity)
    return identity


__all__ = ["IdentityMismatch", "changes", "check_identity", "file_ref", "file_sha256", "normalise", "state_sha256"]
