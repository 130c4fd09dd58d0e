"""Turn a real clip with per-frame masks into a DAVIS-layout benchmark sequence.

    python -m datasets.import_clip --frames DIR_OR_VIDEO --masks DIR --root ROOT --name NAME [--set val]

``--frames``: a folder of images (jpg, jpeg, png, bmp, tif, webp; sorted by the numbers in their
names, so ``frame_2.png`` comes before ``frame_10.png``) or a video file. ``--masks``: a folder with
one PNG per frame, in the same order: a palette PNG (pixel = object id, DAVIS' convention), a grey
label image (pixel = object id), a 16-bit label image (ids <= 255), or an RGB image whose colours
are those of the DAVIS palette (black background, dark red = 1, green = 2, ...) or black and white
(white = object 1). Any size: frames and masks must agree; ``--height`` (default 480, 0 = keep)
resizes both (masks nearest-neighbour) when the clip is taller.

The object ids found over the clip are renumbered 1..K in increasing order (255 stays void). The
sequence is written under ``ROOT`` as :mod:`datasets.synthetic` writes its sequences
(``JPEGImages/480p/NAME``, ``Annotations/480p/NAME`` palette PNGs, ``Scribbles/NAME/001.json``..),
NAME is added to ``ImageSets/2017/<set>.txt`` and ``metadata.json`` (other sequences under ROOT are
kept), and the result is checked with :func:`datasets.validate.validate_sequence`. The initial
scribbles (``--scribbles``, default 3) are drawn by the davisinteractive robot against an empty
prediction on distinct frames where every object is well visible, as for the synthetic data.

Errors name the file and the fix: different numbers of frames and masks, a mask whose size differs
from its frame's, masks that hold no object at all, RGB masks with colours that are not object
colours, unreadable files.
"""
from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from datasets.layout import METADATA_FILE, RESOLUTION, DatasetError, read_metadata, write_metadata
from datasets.synthetic import _PALETTE, _write_sequence
from datasets.validate import WIDE_MODES, read_label_png, validate_sequence

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VOID = 255
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _natural_key(p: Path) -> list:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def list_images(folder: Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """Image files of ``folder`` in natural order (numbers compared as numbers)."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions), key=_natural_key)


def read_frames(source: str | Path) -> tuple[np.ndarray, list[str]]:
    """(T, H, W, 3) uint8 RGB frames of a folder of images or a video file, and a name per frame
    (the file name, or ``video frame i``) for error messages."""
    source = Path(source)
    if source.is_dir():
        files = list_images(source)
        if not files:
            raise DatasetError(f"{source} holds no image ({', '.join(IMAGE_EXTENSIONS)}); point --frames at the "
                               f"folder of the clip's frames or at a video file")
        frames = []
        for f in files:
            try:
                with Image.open(f) as im:
                    frames.append(np.asarray(im.convert("RGB")))
            except (UnidentifiedImageError, OSError) as exc:
                raise DatasetError(f"frame {f} is not a readable image ({exc}); re-export it or remove it") from exc
        sizes = {fr.shape for fr in frames}
        if len(sizes) > 1:
            odd = next(f for f, fr in zip(files, frames, strict=True) if fr.shape != frames[0].shape)
            raise DatasetError(f"frame {odd} is {frames_size(odd)} but {files[0].name} is "
                               f"{frames[0].shape[1]}x{frames[0].shape[0]}; all frames of a clip must have one size")
        return np.stack(frames), [str(f) for f in files]
    if source.is_file():
        from datasets.real_assets import read_video

        frames = read_video(source)
        return frames, [f"{source} (video frame {i})" for i in range(len(frames))]
    raise DatasetError(f"--frames {source} does not exist; give a folder of frames or a video file")


def frames_size(path: Path) -> str:
    with Image.open(path) as im:
        return f"{im.size[0]}x{im.size[1]}"


def _palette_colours() -> dict[tuple[int, int, int], int]:
    pal = np.asarray(_PALETTE, np.int64).reshape(256, 3)
    return {tuple(int(v) for v in pal[i]): i for i in range(256)}


def read_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 object ids of one mask file: palette, grey, 1-bit or 16-bit label PNGs, or RGB(A)
    with DAVIS palette colours or black and white (white = 1). DatasetError naming the file otherwise."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("P", "L", "1") or mode in WIDE_MODES:
                return read_label_png(path)
            if mode not in ("RGB", "RGBA", "LA"):
                raise DatasetError(f"mask {path} is a {mode} image; save it as a palette or grey label PNG "
                                   f"(pixel = object id)")
            rgb = np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"missing mask {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise DatasetError(f"mask {path} is not a readable image ({exc}); re-export it") from exc
    colours, inverse = np.unique(rgb.reshape(-1, 3), axis=0, return_inverse=True)
    known = _palette_colours()
    if all(tuple(int(v) for v in c) in {(0, 0, 0), (255, 255, 255)} for c in colours):
        known = {(0, 0, 0): 0, (255, 255, 255): 1}   # a black-and-white mask: one object
    unknown = [tuple(int(v) for v in c) for c in colours if tuple(int(v) for v in c) not in known]
    if unknown:
        shown = ", ".join(f"RGB{c}" for c in unknown[:4]) + (" ..." if len(unknown) > 4 else "")
        raise DatasetError(f"mask {path} is an RGB image with {len(unknown)} colour(s) that are not object colours "
                           f"({shown}); RGB masks must use the DAVIS palette colours (black = background, "
                           f"(128, 0, 0) = 1, (0, 128, 0) = 2, ...) or black and white, with no anti-aliasing: "
                           f"export the masks as palette or grey label PNGs whose pixels are the object ids")
    lut = np.array([known[tuple(int(v) for v in c)] for c in colours], np.uint8)
    return lut[inverse.reshape(-1)].reshape(rgb.shape[:2])


def read_masks(folder: str | Path) -> tuple[np.ndarray, list[Path]]:
    """(T, H, W) uint8 ids of every PNG of ``folder`` (natural order), and the files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"--masks {folder} is not a folder; give the folder of the clip's per-frame mask PNGs")
    files = list_images(folder, (".png",))
    if not files:
        raise DatasetError(f"{folder} holds no PNG mask; masks must be PNG files, one per frame")
    masks = [read_mask(f) for f in files]
    for f, m in zip(files, masks, strict=True):
        if m.shape != masks[0].shape:
            raise DatasetError(f"mask {f} is {m.shape[1]}x{m.shape[0]} but {files[0].name} is "
                               f"{masks[0].shape[1]}x{masks[0].shape[0]}; all masks of a clip must have one size")
    return np.stack(masks), files


def check_clip(frames: np.ndarray, frame_names: list[str], masks: np.ndarray, mask_files: list[Path],
               frames_arg: str, masks_arg: str) -> None:
    """DatasetError naming the file and the fix when frames and masks do not make one clip."""
    if len(frames) != len(masks):
        raise DatasetError(f"{frames_arg} has {len(frames)} frames but {masks_arg} has {len(masks)} masks "
                           f"(last mask {mask_files[-1].name}, last frame {Path(frame_names[-1]).name}); give one "
                           f"mask per frame, named so that both sort in the same order")
    fh, fw = frames.shape[1:3]
    if masks.shape[1:3] != (fh, fw):
        raise DatasetError(f"mask {mask_files[0]} is {masks.shape[2]}x{masks.shape[1]} but frame {frame_names[0]} "
                           f"is {fw}x{fh}; masks must have the frames' size: resize the masks with nearest-"
                           f"neighbour interpolation (or export them at the video's resolution)")
    if not ((masks > 0) & (masks != VOID)).any():
        raise DatasetError(f"every mask in {masks_arg} is empty (no pixel holds an object id 1..254); a benchmark "
                           f"sequence needs at least one object: point --masks at the object masks (pixel = object "
                           f"id) and check that they were not exported blank")


def renumber(masks: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Ids over the clip mapped to 1..K in increasing order (0 and 255 unchanged)."""
    ids = [int(v) for v in np.unique(masks) if 0 < v < VOID]
    mapping = {old: new for new, old in enumerate(ids, 1)}
    lut = np.arange(256, dtype=np.uint8)
    for old, new in mapping.items():
        lut[old] = new
    return lut[masks], mapping


def _resize(frames: np.ndarray, masks: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    T, H, W = masks.shape
    if not height or H <= height:
        return frames, masks
    w = int(round(W * height / H))
    f = np.stack([cv2.resize(x, (w, height), interpolation=cv2.INTER_AREA) for x in frames])
    m = np.stack([cv2.resize(x, (w, height), interpolation=cv2.INTER_NEAREST) for x in masks])
    return f, m


def draw_initial_scribbles(name: str, ids: np.ndarray, n_obj: int, count: int = 3, seed: int = 0) -> list[list]:
    """``count`` initial scribble files (each a per-frame list of strokes), drawn by the robot on
    distinct frames where every object is well visible; fewer if the clip has fewer such frames.
    DatasetError if no frame gets a stroke for every object."""
    from datasets.davis_compat import robot_for
    from datasets.synthetic import _robot_scribble

    robot = robot_for(min_nb_nodes=4)
    T, H, W = ids.shape
    rng = np.random.default_rng(seed)
    areas = np.stack([np.bincount(f.ravel(), minlength=256)[1:n_obj + 1] for f in ids])   # (T, K)
    min_area = max(20, int(0.0005 * H * W))
    rel = areas / np.maximum(areas.max(0, keepdims=True), 1)
    score = np.where((areas >= min_area).all(1), rel.min(1), -1.0)
    candidates = [int(t) for t in np.argsort(-score + 1e-6 * rng.random(T), kind="stable") if score[t] >= 0]
    chosen: list[int] = []
    out = []
    gap = max(1, T // 6)
    while candidates and len(out) < count:
        far = [t for t in candidates if all(abs(t - c) >= gap for c in chosen)]
        t = (far or candidates)[0]
        candidates.remove(t)
        strokes = _robot_scribble(robot, name, ids[t], n_obj)
        if strokes is None:
            continue
        per_frame: list[list[dict]] = [[] for _ in range(T)]
        per_frame[t] = strokes
        chosen.append(t)
        out.append(per_frame)
    if not out:
        raise DatasetError(f"the robot could not draw a stroke on every object of {name} on any frame (objects "
                           f"smaller than {min_area} pixels or blob-like on every frame where all are visible); "
                           f"import a clip where every object is clearly visible on some frame, or fewer objects")
    if len(out) < count:
        log.warning("%s: only %d of %d initial scribbles (few frames show every object well)", name, len(out), count)
    return out


def import_clip(frames: str | Path, masks: str | Path, root: str | Path, name: str, split: str = "val",
                height: int = 480, scribbles: int = 3, seed: int = 0) -> dict:
    """Write clip ``name`` under ``root`` (see the module docstring) and return its metadata entry."""
    if not _NAME.fullmatch(name):
        raise DatasetError(f"--name {name!r}: use letters, digits, '_', '-' or '.' (it becomes a folder name)")
    if split not in ("train", "val"):
        raise DatasetError(f"--set {split!r}: use train or val")
    root = Path(root)
    frame_arr, frame_names = read_frames(frames)
    mask_arr, mask_files = read_masks(masks)
    check_clip(frame_arr, frame_names, mask_arr, mask_files, str(frames), str(masks))
    if len(frame_arr) < 2:
        raise DatasetError(f"{frames} has a single frame; a benchmark sequence needs at least 2")
    mask_arr, mapping = renumber(mask_arr)
    if any(old != new for old, new in mapping.items()):
        log.info("%s: object ids renumbered %s", name, mapping)
    frame_arr, mask_arr = _resize(frame_arr, mask_arr, height)
    n_obj = len(mapping)
    scr = draw_initial_scribbles(name, mask_arr, n_obj, scribbles, seed)
    root.mkdir(parents=True, exist_ok=True)
    _write_sequence(root, name, frame_arr, mask_arr, scr)
    T, H, W = mask_arr.shape
    entry = {"name": name, "num_frames": int(T), "num_objects": n_obj, "num_scribbles": len(scr),
             "image_size": [int(W), int(H)], "set": split}
    validate_sequence(root, name, entry)
    meta = read_metadata(root) if (root / METADATA_FILE).exists() else {}
    meta[name] = entry
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    for s in ("train", "val"):
        f = sets / f"{s}.txt"
        names = [n for n in (f.read_text().split() if f.exists() else []) if n != name]
        if s == split:
            names.append(name)
        f.write_text("".join(n + "\n" for n in sorted(names)))
    write_metadata(root, meta)
    log.info("%s: %d frames %dx%d, %d objects, %d initial scribbles -> %s", name, T, W, H, n_obj, len(scr),
             root / "JPEGImages" / RESOLUTION / name)
    return entry


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m datasets.import_clip", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", required=True, help="folder of frames or a video file")
    p.add_argument("--masks", required=True, help="folder of per-frame mask PNGs")
    p.add_argument("--root", required=True, help="DAVIS-layout root to add the sequence to")
    p.add_argument("--name", required=True, help="sequence name")
    p.add_argument("--set", default="val", choices=("train", "val"))
    p.add_argument("--height", type=int, default=480, help="resize taller clips to this height (0 = keep)")
    p.add_argument("--scribbles", type=int, default=3, help="initial scribble files to draw (default 3)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("absl").setLevel(logging.WARNING)
    try:
        import_clip(a.frames, a.masks, a.root, a.name, a.set, a.height, a.scribbles, a.seed)
    except DatasetError as exc:
        p.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
