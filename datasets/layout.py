"""DAVIS-layout datasets: metadata, file checks, loading, and registration with davisinteractive.

A DAVIS-layout root holds::

    JPEGImages/480p/<seq>/00000.jpg ...      RGB frames
    Annotations/480p/<seq>/00000.png ...     palette PNGs, pixel = object id (0 background)
    Scribbles/<seq>/001.json ...             initial scribbles (davisinteractive format)
    ImageSets/2017/{train,val}.txt           sequence names per set
    metadata.json                            (non-DAVIS datasets) the package's davis.json format:
                                             {"sequences": {name: {name, num_frames, num_objects,
                                              num_scribbles, image_size: [W, H], set}}}

davisinteractive only knows the sequences of its own ``davis.json``; :func:`registered` puts a
dataset's sequences in its tables for the duration of a run, after :func:`check_files` has made
sure that every file the session reads exists (the package would otherwise try to download DAVIS).
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from core.io import atomic_write_text
from datasets import davis_compat
from datasets.davis_compat import Davis
from datasets.validate import DatasetError, read_label_png, read_scribble_file, validate_sequence

METADATA_FILE = "metadata.json"
RESOLUTION = "480p"
KNOWN = {"davis": "DAVIS", "ytbvos": "Scribble_Youtube_VOS", "synthetic": "synthetic", "composite": "composite"}
FIX = {
    "davis": "download DAVIS-2017 trainval 480p and its scribbles from davischallenge.org "
             "(README, 'Data') and place the DAVIS folder at {root}",
    "ytbvos": "run `python datasets/prepare_ytbvos.py --src path/to/youtube_vos --scb path/to/scribble_dir "
              "--dst {root}` (README, 'Data')",
    "synthetic": "run `python -m datasets.synthetic --root {root}`",
    "composite": "run `python -m datasets.composite --root {root}`",
}


@dataclass
class DatasetSpec:
    """A DAVIS-layout dataset ready to use.

    root: the folder; name: a short name for results paths (``davis``, ``ytbvos``, ``synthetic`` or the
    folder's name); sequences: metadata per sequence as in davisinteractive's ``davis.json``.
    """

    name: str
    root: Path
    sequences: dict[str, dict] = field(default_factory=dict)
    builtin_davis: bool = False   # the package's own table describes it: no registration needed
    missing: dict[str, str] = field(default_factory=dict)   # sequence -> set, known but not on disk (partial DAVIS)

    def subset(self, split: str, names: Iterable[str] | None = None) -> list[str]:
        """Sequence names of ``split`` ('train', 'val' or 'trainval'), optionally only ``names``."""
        splits = ("train", "val") if split == "trainval" else (split,)
        seqs = [s for s, m in self.sequences.items() if m["set"] in splits]
        if names:
            wanted = list(names)
            absent = [n for n in wanted if n in self.missing]
            if absent:
                raise DatasetError(f"sequence {', '.join(absent)} is not on disk under "
                                   f"{self.root / 'Annotations' / RESOLUTION}: complete the download or leave "
                                   f"it out of sequences=")
            unknown = [n for n in wanted if n not in self.sequences]
            if unknown:
                raise DatasetError(f"{self.root}: no sequence named {', '.join(unknown)}")
            seqs = [s for s in seqs if s in set(wanted)]
        else:
            absent = sorted(s for s, st in self.missing.items() if st in splits)
            if absent:
                raise DatasetError(
                    f"{self.root} is an incomplete DAVIS: {len(absent)} of the {len(absent) + len(seqs)} sequences "
                    f"of split '{split}' are missing (e.g. {', '.join(absent[:3])}), so its results would not be "
                    f"DAVIS-{split}'s; complete the download (README, 'Data') or name the sequences you have with "
                    f"sequences=[...]")
        return sorted(seqs)

    # -- loading ---------------------------------------------------------------------
    def frames(self, seq: str) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB."""
        meta = self.sequences[seq]
        d = self.root / "JPEGImages" / RESOLUTION / seq
        out = [_read_image(d / f"{i:05d}.jpg", "RGB") for i in range(meta["num_frames"])]
        return np.stack(out)

    def annotations(self, seq: str) -> np.ndarray:
        """(T, H, W) uint8 object ids."""
        meta = self.sequences[seq]
        d = self.root / "Annotations" / RESOLUTION / seq
        out = [read_label_png(d / f"{i:05d}.png") for i in range(meta["num_frames"])]
        return np.stack(out)

    def scribble(self, seq: str, idx: int) -> dict:
        """The checked scribble file ``idx`` of ``seq`` (see :func:`datasets.validate.read_scribble_file`)."""
        meta = self.sequences[seq]
        path = self.root / "Scribbles" / seq / f"{idx:03d}.json"
        return read_scribble_file(path, int(meta["num_frames"]), int(meta["num_objects"]))


def _read_image(path: Path, mode: str | None) -> np.ndarray:
    try:
        with Image.open(path) as im:
            if mode:
                im = im.convert(mode)
            return np.asarray(im)
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path} is not a readable image ({exc}); re-extract or regenerate it") from exc


# -- metadata --------------------------------------------------------------------------
def read_metadata(root: Path) -> dict[str, dict]:
    path = Path(root) / METADATA_FILE
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc})") from exc
    seqs = data.get("sequences", data)
    for name, m in seqs.items():
        missing = {"num_frames", "num_objects", "num_scribbles", "image_size", "set"} - set(m)
        if missing:
            raise DatasetError(f"{path}: sequence {name} lacks {sorted(missing)}")
        m.setdefault("name", name)
    return seqs


def write_metadata(root: Path, sequences: dict[str, dict]) -> Path:
    path = Path(root) / METADATA_FILE
    data = {"sequences": {k: sequences[k] for k in sorted(sequences)}}
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def infer_metadata(root: Path) -> dict[str, dict]:
    """Metadata of a DAVIS-layout root that has no metadata.json, read from its files:
    frames and size from Annotations, objects = the largest id in the annotations, scribble
    files counted, set from ImageSets/2017/{train,val}.txt (required: a sequence listed in neither
    is an error, never silently 'val')."""
    root = Path(root)
    ann_root = root / "Annotations" / RESOLUTION
    if not ann_root.is_dir():
        raise DatasetError(f"{root} is not a DAVIS-layout root: {ann_root} does not exist")
    sets: dict[str, str] = {}
    set_files = [root / "ImageSets" / "2017" / f"{split}.txt" for split in ("train", "val")]
    if not any(f.is_file() for f in set_files):
        raise DatasetError(f"{root} has no {set_files[0].parent}/train.txt or val.txt (nor a {METADATA_FILE}), so "
                           f"nothing says which sequences are train and which val; write them (one sequence name "
                           f"per line) or a {METADATA_FILE}")
    for split, f in zip(("train", "val"), set_files, strict=True):
        if f.is_file():
            sets.update({line.strip(): split for line in f.read_text().splitlines() if line.strip()})
    seqs = {}
    for d in sorted(p for p in ann_root.iterdir() if p.is_dir()):
        pngs = sorted(p for p in d.glob("*.png") if re.fullmatch(r"\d{5}\.png", p.name))
        if not pngs:
            continue
        ann = [read_label_png(p) for p in pngs]
        shapes = {a.shape for a in ann}
        if len(shapes) > 1:
            raise DatasetError(f"annotations of {d} have mixed sizes {sorted(shapes)} (H, W); resize them to one size")
        ann = np.stack(ann)
        ids = np.unique(ann)
        ids = ids[(ids > 0) & (ids < 255)]
        scribbles = len(list((root / "Scribbles" / d.name).glob("[0-9][0-9][0-9].json")))
        seqs[d.name] = {"name": d.name, "num_frames": len(pngs), "num_objects": int(ids.max()) if len(ids) else 0,
                        "num_scribbles": scribbles, "image_size": [int(ann.shape[2]), int(ann.shape[1])],
                        "set": sets.get(d.name)}
    if not seqs:
        raise DatasetError(f"{ann_root} holds no sequence folders with 00000.png ...")
    unlisted = [s for s, m in seqs.items() if m["set"] is None]
    if unlisted:
        raise DatasetError(f"sequences {', '.join(unlisted[:5])} of {root} are in neither "
                           f"{set_files[0]} nor {set_files[1]}; add each to one of them")
    return seqs


def resolve(dataset: str, data_dir: str | os.PathLike = "data") -> DatasetSpec:
    """A known name (davis, ytbvos, synthetic) under ``data_dir``, or a path to a DAVIS-layout root."""
    if dataset in KNOWN:
        root = Path(data_dir) / KNOWN[dataset]
        fix = FIX[dataset].format(root=root)
        if dataset == "davis":
            if not (root / "Annotations" / RESOLUTION).is_dir():
                raise DatasetError(f"DAVIS not found at {root}: {fix}")
            known = {k: dict(v) for k, v in Davis.dataset.items() if v.get("set") in ("train", "val")}
            seqs = {k: v for k, v in known.items() if (root / "Annotations" / RESOLUTION / k).is_dir()}
            missing = {k: v["set"] for k, v in known.items() if k not in seqs}
            return DatasetSpec("davis", root, seqs, builtin_davis=True, missing=missing)
        if not (root / METADATA_FILE).exists():
            raise DatasetError(f"{dataset} dataset not found at {root} (no {METADATA_FILE}): {fix}")
        return DatasetSpec(dataset, root, read_metadata(root))
    root = Path(dataset).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset '{dataset}' is neither a known name ({', '.join(KNOWN)}) nor a folder")
    seqs = read_metadata(root) if (root / METADATA_FILE).exists() else infer_metadata(root)
    return DatasetSpec(root.name, root, seqs)


# -- checks and registration -----------------------------------------------------------
def check_files(spec: DatasetSpec, sequences: Iterable[str], images: bool = True) -> None:
    """Raise DatasetError naming the first missing or malformed file a session over ``sequences``
    would read: scribbles (structure, length, object ids), annotations (modes, sizes, ids against
    the metadata) and, when ``images``, frames (present, same size as the masks). See
    :mod:`datasets.validate`; results are cached by the files' size and mtime."""
    for seq in sequences:
        if seq not in spec.sequences:
            raise DatasetError(f"{spec.root}: sequence {seq} is not in the dataset's metadata")
        validate_sequence(spec.root, seq, spec.sequences[seq], images=images)


@contextmanager
def registered(spec: DatasetSpec, sequences: Iterable[str], split: str = "val") -> Iterator[str]:
    """Make davisinteractive see ``sequences`` (and only them) as subset ``split`` while inside.

    Yields the subset name to pass to ``DavisInteractiveSession(subset=...)``. The package's
    tables are restored on exit, whatever happens inside.
    """
    sequences = list(sequences)
    check_files(spec, sequences, images=False)
    old_dataset, old_sets = Davis.dataset, Davis.sets
    dataset = dict(old_dataset)
    for s in sequences:
        dataset[s] = dict(spec.sequences[s], name=s)
    Davis.dataset = dataset
    Davis.sets = {"train": [], "val": [], "trainval": list(sequences)}
    Davis.sets[split if split in ("train", "val") else "val"] = list(sequences)
    try:
        yield split if split in ("train", "val", "trainval") else "val"
    finally:
        Davis.dataset, Davis.sets = old_dataset, old_sets


__all__ = ["DatasetError", "DatasetSpec", "KNOWN", "METADATA_FILE", "check_files", "davis_compat",
           "infer_metadata", "read_metadata", "registered", "resolve", "write_metadata"]
