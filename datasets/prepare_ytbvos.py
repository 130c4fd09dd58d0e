"""Turn YouTube-VOS 2018 train sequences with IVOS-W scribbles into a DAVIS-layout dataset.

    python datasets/prepare_ytbvos.py --src path/to/youtube_vos --scb path/to/scribble_dir \\
        [--dst data/Scribble_Youtube_VOS]
    python -m datasets.prepare_ytbvos ...   (same)

Input:
- ``--src``: the YouTube-VOS 2018 root holding ``train/JPEGImages/<seq>/<frame>.jpg`` and
  ``train/Annotations/<seq>/<frame>.png`` (or the ``train`` folder itself);
- ``--scb``: the scribble archive, ``<scb>/<seq>/001.json ...``; its sequences are the ones prepared.

Output (``--dst``): ``JPEGImages/480p/<seq>/00000.jpg ...`` (the source JPEGs, byte for byte, not
resized), ``Annotations/480p/<seq>/00000.png ...`` (DAVIS-palette PNGs), ``Scribbles/<seq>/00k.json``,
``ImageSets/2017/val.txt`` and ``metadata.json`` (name, num_frames, num_objects, num_scribbles,
image_size [W, H], set 'val'), which :func:`datasets.layout.resolve` reads (``ytbvos``).

Decisions a user should know:
- Frames are matched by name: a sequence's frames are the JPEGs that have an annotation of the same
  name, in name order, renumbered 00000, 00001, ... YouTube-VOS 2018 train annotates every 5th frame
  (00000, 00005, ...); its ``train/JPEGImages`` holds exactly those frames. If ``--src`` holds every
  frame (``train_all_frames``), the unannotated frames are dropped, never given an empty mask: an
  all-zero mask would be a wrong ground truth that penalises correct predictions. An annotation
  without its JPEG is an error (partial source).
- Each scribble file must have one entry per kept frame (its frame indices refer to the renumbered
  frames); otherwise the run stops and names the file.
- Object ids are made consecutive (davisinteractive assumes ids 1..K): the ids present anywhere in
  the sequence's annotations, sorted, become 1..K, and the scribbles' ``object_id`` are remapped the
  same way. A scribble naming an id that never occurs in the annotations is an error. 255 (void) is
  kept as is.
- ``image_size`` is written as [W, H] (the published script wrote [H, num_frames]).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

if __name__ == "__main__" and __package__ in (None, ""):  # `python datasets/prepare_ytbvos.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datasets.layout import RESOLUTION, DatasetError, DatasetSpec, read_metadata, write_metadata  # noqa: E402
from datasets.synthetic import palette_png_bytes  # noqa: E402
from datasets.validate import read_label_png, validate_sequence  # noqa: E402

log = logging.getLogger(__name__)

DEFAULT_DST = "data/Scribble_Youtube_VOS"
_SRC_FIX = ("--src must be the YouTube-VOS 2018 root (holding train/JPEGImages/<seq>/*.jpg and "
            "train/Annotations/<seq>/*.png: extract train.zip from youtube-vos.org) or its train folder")


@dataclass
class _Plan:
    seq: str
    jpgs: list[Path]          # kept frames, in order
    anns: list[Path]
    scribbles: list[Path]     # 001.json, 002.json, ...
    dropped: int              # JPEGs without an annotation


def _frame_key(p: Path) -> tuple:
    return (0, int(p.stem), p.stem) if p.stem.isdigit() else (1, 0, p.stem)


def find_train_root(src: Path) -> Path:
    """The folder holding JPEGImages/ and Annotations/: ``src/train`` or ``src`` itself."""
    src = Path(src)
    if not src.is_dir():
        raise DatasetError(f"YouTube-VOS source {src} does not exist; {_SRC_FIX}")
    for cand in (src / "train", src):
        if (cand / "JPEGImages").is_dir() and (cand / "Annotations").is_dir():
            return cand
    missing = [str(src / "train" / d) for d in ("JPEGImages", "Annotations") if not (src / "train" / d).is_dir()]
    raise DatasetError(f"YouTube-VOS source {src} is incomplete: missing {', '.join(missing)}; {_SRC_FIX}")


def scribble_sequences(scb: Path) -> dict[str, list[Path]]:
    """{sequence: [001.json, ...]} of the scribble archive."""
    scb = Path(scb)
    if not scb.is_dir():
        raise DatasetError(f"scribble folder {scb} does not exist; --scb must hold <seq>/001.json ... "
                           "(the IVOS-W YouTube-VOS scribble archive, extracted)")
    out = {}
    for d in sorted(p for p in scb.iterdir() if p.is_dir()):
        files = sorted(p for p in d.glob("*.json") if re.fullmatch(r"\d{3}\.json", p.name))
        if files:
            expected = [d / f"{i:03d}.json" for i in range(1, len(files) + 1)]
            if files != expected:
                raise DatasetError(f"{d}: scribble files must be numbered 001.json.. without gaps, found "
                                   f"{', '.join(p.name for p in files)}")
            out[d.name] = files
    if not out:
        raise DatasetError(f"{scb} holds no <seq>/001.json scribble files; --scb must point at the extracted "
                           "scribble archive")
    return out


def plan(src: Path, scb: Path) -> list[_Plan]:
    """Check the sources without writing anything; raise DatasetError naming the first problems."""
    train = find_train_root(src)
    seqs = scribble_sequences(scb)
    missing = [train / sub / s for s in seqs for sub in ("JPEGImages", "Annotations") if not (train / sub / s).is_dir()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise DatasetError(f"{len(missing)} sequence folder(s) listed in {scb} are missing from the source: {shown}; "
                           f"the scribbles are for the YouTube-VOS 2018 *train* split ({_SRC_FIX})")
    plans = []
    for seq, files in seqs.items():
        jpgs = {p.stem: p for p in (train / "JPEGImages" / seq).glob("*.jpg")}
        anns = {p.stem: p for p in (train / "Annotations" / seq).glob("*.png")}
        if not anns:
            raise DatasetError(f"{train / 'Annotations' / seq} holds no .png annotation; re-extract the source")
        orphans = sorted(set(anns) - set(jpgs))
        if orphans:
            raise DatasetError(f"annotation {anns[orphans[0]]} has no frame {train / 'JPEGImages' / seq / (orphans[0] + '.jpg')}"
                               f" ({len(orphans)} such); the source is partial: re-extract JPEGImages")
        kept = sorted((jpgs[k] for k in anns), key=_frame_key)
        plans.append(_Plan(seq, kept, [anns[p.stem] for p in kept], files, len(jpgs) - len(anns)))
    return plans


def _read_ids(path: Path) -> np.ndarray:
    """(H, W) uint8 ids of a source annotation, through the shared validator (label PNGs only)."""
    return read_label_png(path)


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"{path} is not a readable JPEG ({exc}); re-extract the source") from exc


def _convert(p: _Plan, dst: Path) -> dict:
    """Write one sequence; return its metadata entry."""
    W, H = _image_size(p.jpgs[0])
    masks = []
    for a in p.anns:
        m = _read_ids(a)
        if m.shape != (H, W):
            raise DatasetError(f"{a} is {m.shape[1]}x{m.shape[0]} but {p.jpgs[0]} is {W}x{H}")
        masks.append(m)
    present = sorted(set(np.unique(np.stack(masks)).tolist()) - {0, 255})
    lut = np.arange(256, dtype=np.uint8)
    for new, old in enumerate(present, 1):
        lut[old] = new
    remap = {old: new for new, old in enumerate(present, 1)}
    remap[0] = 0
    scribbles = []
    for f in p.scribbles:
        try:
            data = json.loads(f.read_text())
            frames = data["scribbles"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DatasetError(f"cannot read scribble file {f} ({exc!r})") from exc
        if len(frames) != len(p.jpgs):
            raise DatasetError(f"{f} has {len(frames)} frames but {p.seq} has {len(p.jpgs)} annotated frames "
                               f"({p.dropped} unannotated JPEGs dropped); use the YouTube-VOS 2018 train split "
                               "these scribbles were drawn on")
        for strokes in frames:
            for s in strokes:
                if s["object_id"] not in remap:
                    raise DatasetError(f"{f}: a stroke for object {s['object_id']}, which never occurs in "
                                       f"{p.anns[0].parent} (ids {present}); the annotations do not match the scribbles")
                s["object_id"] = remap[s["object_id"]]
        data["sequence"] = p.seq
        scribbles.append(data)
    if remap != {i: i for i in range(len(present) + 1)}:
        log.info("%s: object ids %s renumbered 1..%d", p.seq, present, len(present))

    jdir, adir, sdir = dst / "JPEGImages" / RESOLUTION / p.seq, dst / "Annotations" / RESOLUTION / p.seq, dst / "Scribbles" / p.seq
    for d in (jdir, adir, sdir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    for i, (j, m) in enumerate(zip(p.jpgs, masks, strict=True)):
        shutil.copyfile(j, jdir / f"{i:05d}.jpg")
        (adir / f"{i:05d}.png").write_bytes(palette_png_bytes(lut[m]))
    for k, data in enumerate(scribbles, 1):
        (sdir / f"{k:03d}.json").write_text(json.dumps(data))
    return {"name": p.seq, "num_frames": len(p.jpgs), "num_objects": len(present),
            "num_scribbles": len(scribbles), "image_size": [W, H], "set": "val"}


def prepare(src: str | Path, scb: str | Path, dst: str | Path = DEFAULT_DST, progress: bool = True) -> DatasetSpec:
    """Convert the scribbled YouTube-VOS sequences to a DAVIS layout under ``dst``; return its spec.

    Every source problem found before writing raises DatasetError naming the file and the fix;
    metadata.json is written last, so an interrupted run leaves no metadata.
    """
    dst = Path(dst)
    plans = plan(Path(src), Path(scb))
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "metadata.json").unlink(missing_ok=True)
    meta = {}
    for p in tqdm(plans, desc=f"YouTube-VOS -> {dst}", unit="seq", disable=not progress):
        meta[p.seq] = _convert(p, dst)
    dropped = sum(p.dropped for p in plans)
    if dropped:
        log.info("dropped %d JPEG frames without annotation (frames are matched to annotations by name)", dropped)
    sets = dst / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("".join(s + "\n" for s in sorted(meta)))
    for seq, m in meta.items():          # what the runs will check, checked before metadata.json exists
        validate_sequence(dst, seq, m)
    write_metadata(dst, meta)
    return DatasetSpec(dst.name, dst, read_metadata(dst))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python datasets/prepare_ytbvos.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, help="YouTube-VOS 2018 root (with train/) or its train folder")
    p.add_argument("--scb", required=True, help="scribble folder: <seq>/001.json ...")
    p.add_argument("--dst", default=DEFAULT_DST, help=f"output DAVIS-layout folder (default {DEFAULT_DST})")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        spec = prepare(a.src, a.scb, a.dst, progress=not a.quiet)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    frames = sum(m["num_frames"] for m in spec.sequences.values())
    objects = sum(m["num_objects"] for m in spec.sequences.values())
    log.info("wrote %d sequences (%d frames, %d objects) to %s", len(spec.sequences), frames, objects, spec.root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
