"""The one input validator: everything a session will read, checked before the first round.

``datasets.layout.check_files`` and the importers (``datasets/prepare_ytbvos.py``, clip importers)
call these functions; each raises :class:`DatasetError` naming the file and the fix.

Checked per sequence (:func:`validate_sequence`):

- annotations ``Annotations/480p/<seq>/00000.png ..``: every frame present and readable; a label
  map (palette ``P``, grey ``L`` or 1-bit), never RGB/RGBA (a colour-coded mask has no object ids);
  16-bit label PNGs only with ids <= 255 (a larger id would wrap in uint8); all of the size the
  metadata gives; the object ids over the whole video exactly 1..K (255 = void is allowed): an id
  above K, an id of 1..K that never appears (an object that would be scored perfect while absent)
  or a gap are errors;
- frames ``JPEGImages/480p/<seq>/00000.jpg ..`` (when ``images``): present, readable, and of the
  annotations' size;
- scribbles ``Scribbles/<seq>/001.json ..``: valid JSON with a ``scribbles`` list of one entry per
  frame (a shorter or longer list is an error), each a list of strokes ``{"path": [[x, y], ...],
  "object_id": k}`` with 0 <= k <= K and numeric points.

Results are cached per sequence by the files' sizes and modification times, so a check that runs
once per sample costs only ``stat`` calls after the first time.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.errors import InputError

RESOLUTION = "480p"
VOID = 255
LABEL_MODES = ("P", "L", "1")
WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
CONVERT_FIX = ("convert it to a label PNG whose pixel values are the object ids (0 background, 1..K): "
               "map each colour to its id and save it with PIL, Image.fromarray(ids.astype(np.uint8)).save(path)")

_CACHE: dict[tuple[str, str, bool], tuple] = {}


class DatasetError(InputError):
    """The dataset on disk is missing or not what the run needs; the message names the file and the fix."""


# -- single files ------------------------------------------------------------------------------
def read_label_png(path: str | os.PathLike) -> np.ndarray:
    """(H, W) uint8 object ids of one annotation PNG, refusing what is not a label map."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in LABEL_MODES:
                return np.asarray(im.convert("L") if mode == "1" else im, dtype=np.uint8)
            if mode in WIDE_MODES:
                ids = np.asarray(im, dtype=np.int64)
            else:
                raise DatasetError(f"{path} is a {mode} image, not a label map: annotations must be palette (P) or "
                                   f"8-bit grey (L) PNGs whose pixels are object ids; {CONVERT_FIX}")
    except FileNotFoundError:
        raise DatasetError(f"missing annotation file {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path} is not a readable PNG ({exc}); re-extract or regenerate it") from exc
    big = ids[(ids > VOID) | (ids < 0)]
    if big.size:
        raise DatasetError(f"{path} is a 16-bit label PNG with object id {int(big.max())} > 255, which does not fit "
                           f"the 8-bit masks davisinteractive scores (it would wrap to {int(big.max()) % 256}); "
                           f"renumber the objects 1..K and save an 8-bit label PNG")
    return ids.astype(np.uint8)


def image_size(path: str | os.PathLike, what: str = "frame") -> tuple[int, int]:
    """(W, H) of an image file, read from its header."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            return im.size
    except FileNotFoundError:
        raise DatasetError(f"missing {what} {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path} is not a readable image ({exc}); re-extract or regenerate it") from exc


def read_scribble_file(path: str | os.PathLike, num_frames: int | None = None,
                       num_objects: int | None = None) -> dict[str, Any]:
    """A scribble JSON, checked: ``{"scribbles": [per frame: [stroke, ...]]}`` with ``num_frames`` entries
    and strokes of object ids 0..``num_objects``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"missing scribble file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read scribble file {path} ({exc}); re-extract or regenerate it") from exc
    except json.JSONDecodeError as exc:
        raise DatasetError(f"scribble file {path} is not valid JSON ({exc.msg} at line {exc.lineno} column "
                           f"{exc.colno}); re-extract it or regenerate it") from None
    fix = ("a scribble file is {\"sequence\": name, \"scribbles\": [one list per frame of strokes "
           "{\"path\": [[x, y], ...], \"object_id\": k}]}")
    if not isinstance(data, dict) or not isinstance(data.get("scribbles"), list):
        raise DatasetError(f"scribble file {path} has no 'scribbles' list; {fix}")
    frames = data["scribbles"]
    if num_frames is not None and len(frames) != num_frames:
        raise DatasetError(f"scribble file {path} has {len(frames)} per-frame entries but the video has {num_frames} "
                           f"frames; it belongs to another version of the sequence: fix it or the frames")
    for t, strokes in enumerate(frames):
        if not isinstance(strokes, list):
            raise DatasetError(f"scribble file {path}: entry of frame {t} is a {type(strokes).__name__}, not a list "
                               f"of strokes; {fix}")
        for s in strokes:
            if not isinstance(s, dict) or "path" not in s or "object_id" not in s:
                raise DatasetError(f"scribble file {path}: a stroke on frame {t} lacks 'path' or 'object_id'; {fix}")
            oid = s["object_id"]
            if isinstance(oid, bool) or not isinstance(oid, (int, float)) or int(oid) != oid or oid < 0:
                raise DatasetError(f"scribble file {path}: stroke on frame {t} has object_id {oid!r}, "
                                   f"not an id 0..K; {fix}")
            if num_objects is not None and oid > num_objects:
                raise DatasetError(f"scribble file {path}: a stroke on frame {t} is for object {int(oid)} but the "
                                   f"sequence has {num_objects} objects (its strokes would be dropped); fix the "
                                   f"scribble or num_objects in the metadata")
            pts = s["path"]
            if not isinstance(pts, list) or not all(
                    isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)
                    for p in pts):
                raise DatasetError(f"scribble file {path}: a stroke on frame {t} has a 'path' that is not a list of "
                                   f"[x, y] numbers; {fix}")
    return data


# -- sequences ---------------------------------------------------------------------------------
def sequence_files(root: Path, seq: str, meta: dict, images: bool = True) -> list[Path]:
    """Every file a session over ``seq`` reads."""
    T, n = int(meta["num_frames"]), int(meta["num_scribbles"])
    files = [root / "Scribbles" / seq / f"{i:03d}.json" for i in range(1, n + 1)]
    files += [root / "Annotations" / RESOLUTION / seq / f"{t:05d}.png" for t in range(T)]
    if images:
        files += [root / "JPEGImages" / RESOLUTION / seq / f"{t:05d}.jpg" for t in range(T)]
    return files


def _signature(files: list[Path], meta: dict) -> tuple | None:
    sig = [json.dumps(meta, sort_keys=True, default=str)]
    for f in files:
        try:
            st = f.stat()
        except OSError:
            return None
        sig.append((st.st_size, st.st_mtime_ns))
    return tuple(sig)


def validate_sequence(root: str | os.PathLike, seq: str, meta: dict, images: bool = True) -> None:
    """Check every file of ``seq`` against its metadata ``meta`` (num_frames, num_objects, num_scribbles,
    image_size [W, H]); DatasetError on the first problem."""
    root = Path(root)
    files = sequence_files(root, seq, meta, images)
    key = (str(root.resolve()), seq, bool(images))
    sig = _signature(files, meta)
    if sig is not None and _CACHE.get(key) == sig:
        return
    if not images:                       # a full check (frames too) of the same files covers this one
        full = (key[0], seq, True)
        if full in _CACHE and _CACHE[full] == _signature(sequence_files(root, seq, meta, True), meta):
            return
    T, K = int(meta["num_frames"]), int(meta["num_objects"])
    W, H = (int(v) for v in meta["image_size"])
    for i in range(1, int(meta["num_scribbles"]) + 1):
        p = root / "Scribbles" / seq / f"{i:03d}.json"
        if not p.is_file():
            raise DatasetError(f"missing scribble file {p} (metadata says {meta['num_scribbles']} scribbles for "
                               f"{seq}); fix the files or the metadata")
        read_scribble_file(p, T, K)
    ann_dir = root / "Annotations" / RESOLUTION / seq
    seen: set[int] = set()
    first_size: tuple[Path, tuple[int, int]] | None = None
    for t in range(T):
        p = ann_dir / f"{t:05d}.png"
        if not p.is_file():
            raise DatasetError(f"missing annotation file {p} ({seq} has {T} frames in the metadata)")
        ids = read_label_png(p)
        size = (ids.shape[1], ids.shape[0])
        if first_size is None:
            first_size = (p, size)
        elif size != first_size[1]:
            raise DatasetError(f"annotations of {seq} have mixed sizes: {p} is {size[0]}x{size[1]} but "
                               f"{first_size[0].name} is {first_size[1][0]}x{first_size[1][1]}; resize them to one "
                               f"size (nearest neighbour) or re-extract the sequence")
        if size != (W, H):
            raise DatasetError(f"{p} is {size[0]}x{size[1]} but the metadata says image_size [{W}, {H}]; fix the "
                               f"annotation or image_size")
        seen.update(int(v) for v in np.unique(ids))
        if images:
            j = root / "JPEGImages" / RESOLUTION / seq / f"{t:05d}.jpg"
            if not j.is_file():
                raise DatasetError(f"missing frame {j} ({seq} has {T} frames in the metadata)")
            jsize = image_size(j)
            if jsize != size:
                raise DatasetError(f"frame {j} is {jsize[0]}x{jsize[1]} but its annotation {p} is "
                                   f"{size[0]}x{size[1]}; frames and masks must have the same size: resize one "
                                   f"of them")
    objects = sorted(seen - {0, VOID})
    extra = [v for v in objects if v > K]
    if extra:
        raise DatasetError(f"{ann_dir} holds object ids {extra} but the metadata says {K} objects; fix the masks "
                           f"or num_objects in the metadata")
    absent = [k for k in range(1, K + 1) if k not in seen]
    if absent:
        kind = "never appear" if len(objects) and max(objects) > min(absent) else "are not in the masks"
        raise DatasetError(f"{ann_dir}: the metadata says {K} objects but ids {absent} {kind} in any frame "
                           f"(they would be scored as perfect); renumber the ids 1..K without gaps or set "
                           f"num_objects to the ids the masks hold")
    if sig is not None:
        _CACHE[key] = sig


__all__ = ["CONVERT_FIX", "DatasetError", "image_size", "read_label_png", "read_scribble_file", "sequence_files",
           "validate_sequence"]
