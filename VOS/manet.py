"""MANet (Miao et al., CVPR 2020; lightas/CVPR2020_MANet) behind the backend interface.

The user's checkout lives in ``VOS/MANet`` with the trained ``save_step_80000.pth``. This adapter
imports the checkout's ``DeepLab`` and ``IntVOS`` in isolation and runs a round as the published
IVOS-W evaluation drove MANet:

- frames: BGR, resized to the working size (480x854 by default, bicubic), ImageNet-normalised
  with MANet's constants; pixel embeddings of every frame computed once per video;
- scribbles: only this round's, rasterised by davisinteractive at the embedding resolution;
  in the first round only the region within 20 embedding pixels of the strokes keeps its
  "unknown" label, the rest becomes background (MANet's ``rough_ROI``, applied before the
  interaction head as IVOS-W did);
- interaction head on the annotated frame with the previous round's mask of that frame, then
  propagation forward to the end and backward to the start, each step from the previous
  step's mask, with MANet's global and local memories; logits resized (bilinear) to the
  original size, softmax over [background, objects] per pixel;
- a round whose scribble is empty keeps the previous round's output (as IVOS-W did).

What is changed from outside, without editing the checkout:
- ``config.py`` parses ``sys.argv`` and raises without CUDA at import: it is imported with an
  empty command line and ``torch.cuda.is_available`` reporting True, both restored right
  after; ``networks/IntVOS.py`` appends ``..`` to ``sys.path`` at import, which is undone.
- ``.cuda()`` calls inside the network code: while the adapter runs the network,
  ``torch.Tensor.cuda`` moves tensors to the backend's device instead (restored afterwards;
  held under a lock).
- The 104-frame and 9-round limits (tensors sized ``104`` and ``104 x 9`` created inside
  ``int_seghead``/``prop_seghead`` on first use) are lifted by handing the network memories
  that already exist, sized to the video. MANet reads only the previous round's local memory,
  so the adapter keeps two round slots and shifts them, which is exactly equivalent and keeps
  memory bounded for any number of rounds.
"""
from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core.checkpoint import CheckpointError, load_state_dict
from VOS._checkout import (
    CHECKOUTS,
    Checkout,
    CheckoutMissing,
    checkout_context,
    checkout_dir,
    load_checkout,
    require_weights,
)
from VOS.base import RoundOutput, VOSBackend

log = logging.getLogger(__name__)

#: where save_step_80000.pth can be downloaded (the checkout's README, "Evaluation")
WEIGHTS_URL = "https://drive.google.com/file/d/1JjYNha40rtEYKKKFtDv06myvpxagl5dW/view?usp=sharing"
#: the size MANet's evaluation resizes every frame to, (H, W)
PUBLISHED_SIZE = (480, 854)
#: MANet's normalisation constants (applied to BGR channels, as MANet does)
_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_ROI_MARGIN = 20          # rough_ROI's margin, in embedding pixels
_SEQ = "video"            # key of the one video in MANet's per-sequence memories
_MODULES = ["config", "networks.deeplab", "networks.IntVOS"]
_LOADED: dict[Path, Checkout] = {}
_CUDA_LOCK = threading.RLock()


@contextmanager
def _config_import_guard() -> Iterator[None]:
    """MANet's config.py calls ``parser.parse_args()`` on the real command line and raises when
    CUDA is absent; IntVOS.py appends '..' to sys.path. Neutralise all three, then restore."""
    import torch

    argv, path, available = sys.argv, list(sys.path), torch.cuda.is_available
    sys.argv = [argv[0] if argv else "manet"]
    torch.cuda.is_available = lambda: True
    try:
        yield
    finally:
        sys.argv = argv
        torch.cuda.is_available = available
        sys.path[:] = path


@contextmanager
def cuda_calls_to(device: Any) -> Iterator[None]:
    """Within the block, ``tensor.cuda()`` means ``tensor.to(device)`` (MANet calls ``.cuda()``
    unconditionally in a few places). Process-wide while active, hence the lock."""
    import torch

    def _cuda(self, *_args, non_blocking: bool = False, **_kwargs):
        return self.to(device, non_blocking=non_blocking)

    with _CUDA_LOCK:
        original = torch.Tensor.cuda
        torch.Tensor.cuda = _cuda
        try:
            yield
        finally:
            torch.Tensor.cuda = original


def load_manet_checkout(root: Path | str) -> Checkout:
    """Import the MANet checkout at ``root`` once per process (isolated, see _checkout)."""
    root = Path(root).resolve()
    if root not in _LOADED:
        with _config_import_guard(), contextlib.redirect_stdout(io.StringIO()):
            handle = load_checkout(root, _MODULES)
        # what IVOS-W set before building: nearest-neighbour matching only on scribbled pixels
        handle["config"].cfg.TEST_MODE = True
        _LOADED[root] = handle
    return _LOADED[root]


def _require_files(root: Path, files: tuple[str, ...]) -> None:
    info = CHECKOUTS["manet"]
    if not root.is_dir():
        raise CheckoutMissing(root, info)
    for rel in files:
        if not (root / rel).is_file():
            raise CheckoutMissing(root, info, detail=f"{rel} is missing: incomplete clone?")


def prepare_frames(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """MANet's input. frames: (T, H, W, 3) uint8 RGB -> (T, 3, h, w) float32, BGR, bicubic
    resize to ``size`` = (h, w) (None keeps H, W), /255, minus mean, over std."""
    import cv2

    out = []
    for frame in frames:
        bgr = np.ascontiguousarray(frame[..., ::-1]).astype(np.float32)
        if size is not None and tuple(size) != bgr.shape[:2]:
            bgr = cv2.resize(bgr, (int(size[1]), int(size[0])), interpolation=cv2.INTER_CUBIC)
        out.append(((bgr / 255.0 - _MEAN) / _STD).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def rough_roi(label, margin: int = _ROI_MARGIN):
    """MANet's first-round ROI. label: (1, 1, h, w) int tensor, -1 = no scribble. Pixels outside
    the strokes' bounding box grown by ``margin`` become 0 (background); the box's far edge is
    exclusive and clipped at h-1 / w-1, as in MANet. All -1 input is returned unchanged."""
    import torch

    drawn = (label[0, 0] != -1).nonzero()
    if drawn.numel() == 0:
        return label
    h, w = label.shape[-2:]
    (y0, x0), (y1, x1) = drawn.min(0).values.tolist(), drawn.max(0).values.tolist()
    keep = torch.zeros_like(label, dtype=torch.bool)
    keep[..., max(y0 - margin, 0):min(y1 + margin, h - 1), max(x0 - margin, 0):min(x1 + margin, w - 1)] = True
    return torch.where(keep, label, torch.zeros_like(label))


MANET_LAYOUT = ("save_step_80000.pth of lightas/CVPR2020_MANet: a state dict of the checkout's IntVOS "
                "(DeepLabv3+ feature extractor and its heads), keys with or without 'module.'")


def merge_manet_state(own: dict, state: dict, path: Path | str) -> dict:
    """The network's state dict ``own`` with every entry taken from the checkpoint ``state``.

    Entries of ``state`` the network lacks are ignored (as MANet's ``load_network`` did). A network
    entry the checkpoint lacks (other than BatchNorm's unused ``num_batches_tracked``) or of another
    shape raises CheckpointError naming ``path``: it would stay randomly initialised."""
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or shapes:
        what = []
        if missing:
            what.append(f"{len(missing)} of the network's {len(own)} entries are not in it (e.g. "
                        f"{', '.join(missing[:3])})")
        if shapes:
            what.append(f"{len(shapes)} have another shape (e.g. {shapes[0]}: {tuple(state[shapes[0]].shape)} there, "
                        f"{tuple(own[shapes[0]].shape)} in the network)")
        raise CheckpointError(f"{path} only partly matches MANet's network: {'; '.join(what)}; those parts would "
                              f"stay random. Use {MANET_LAYOUT}")
    merged = dict(own)
    merged.update({k: v for k, v in state.items() if k in own})
    return merged


class MANetBackend(VOSBackend):
    """MANet: DeepLabv3+ embeddings, interaction and propagation heads with memories.

    Options: ``checkout`` (directory, default VOS/MANet), ``weights`` (default
    <checkout>/save_step_80000.pth), ``size`` = (H, W) the frames are resized to before the
    network (default (480, 854) as published; ``None`` keeps each video's own size; small sizes
    for tests), ``batch`` frames per embedding forward pass (default 4).
    """

    name = "manet"
    scribble_history = "last"

    def __init__(self, device: Any = "cpu", checkout: str | Path | None = None,
                 weights: str | Path | None = None, size: tuple[int, int] | None = PUBLISHED_SIZE,
                 batch: int = 4, **options: Any) -> None:
        import torch

        super().__init__(device=torch.device(device), checkout=checkout, weights=weights, size=size,
                         batch=batch, **options)
        root = Path(checkout) if checkout else checkout_dir("manet")
        _require_files(root, ("config.py", "networks/IntVOS.py", "networks/deeplab.py"))
        self.root = root
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.batch = max(1, int(batch))
        self.weights = require_weights(weights or root / CHECKOUTS["manet"].weights[0], "MANet")
        self._ckpt = load_manet_checkout(root)
        cfg = self._ckpt["config"].cfg
        with checkout_context(self._ckpt), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
            extractor = self._ckpt["networks.deeplab"].DeepLab(backbone="resnet", freeze_bn=False)
            self.net = self._ckpt["networks.IntVOS"].IntVOS(cfg, extractor)
        self._knn = int(cfg.KNNS)
        self._load_weights()
        self.net.to(self.device).eval()

    def _load_weights(self) -> None:
        """Like MANet's ``load_network`` (checkpoint entries the model has overwrite its own; extra
        entries are ignored), except that a checkpoint covering only part of the network is an error:
        the rest would stay randomly initialised."""
        self.weight_files = [Path(self.weights)]
        state = load_state_dict(self.weights, expected=MANET_LAYOUT, map_location=self.device,
                                fix="download save_step_80000.pth again (README, 'VOS networks')")
        self.net.load_state_dict(merge_manet_state(self.net.state_dict(), state, self.weights))

    # -- checks -------------------------------------------------------------------------------
    @classmethod
    def check(cls, root: str | Path | None = None) -> list[tuple[str, bool, str]]:
        """(item, ok, fix) for the checkout and its weights; ``root``: the directory holding the
        checkouts (default VOS/). MANet needs no compiled extension (its correlation op is off)."""
        path = checkout_dir("manet", root)
        info = CHECKOUTS["manet"]
        w = path / info.weights[0]
        return [
            (f"checkout {path}", (path / "networks" / "IntVOS.py").is_file(), info.clone_command()),
            (f"weights {w}", w.is_file(), f"download {w.name} from {WEIGHTS_URL} to {w} (see README, 'VOS networks')"),
        ]

    # -- state --------------------------------------------------------------------------------
    def _state_keys(self) -> list[str]:
        return super()._state_keys() + ["global_map", "local_maps", "labels", "last_output"]

    def _start(self) -> None:
        import torch

        T, H, W = self.frames.shape[:3]
        K = self.num_objects
        t0 = time.perf_counter()
        x = prepare_frames(self.frames, self.size)
        chunks = []
        with self._running(), torch.no_grad():
            for i in range(0, T, self.batch):
                chunks.append(self.net.extract_feature(torch.from_numpy(x[i:i + self.batch]).to(self.device)))
        #: (T, C, h, w) pixel embeddings at 1/4 of the working size; fixed for the video
        self.embeddings = torch.cat(chunks)
        self.feature_seconds = time.perf_counter() - t0
        eh, ew = self.embeddings.shape[-2:]
        dev = self.device
        # MANet's memories, created here at the video's length instead of 104 frames x 9 rounds
        self.global_map = {_SEQ: torch.ones(T, eh, ew, K + 1, 1, device=dev)}
        self.local_maps = ({_SEQ: torch.ones(T, 2, eh, ew, K + 1, 1, device=dev)},
                           {_SEQ: torch.zeros(T, 2, device=dev)})
        #: (T, H, W) int64 object ids of the last round at the original size
        self.labels = torch.zeros(T, H, W, dtype=torch.long, device=dev)
        self.last_output: RoundOutput | None = None

    @contextmanager
    def _running(self) -> Iterator[None]:
        with checkout_context(self._ckpt), cuda_calls_to(self.device):
            yield

    # -- one round ----------------------------------------------------------------------------
    def _scribble_label(self, scribbles: dict, frame: int):
        """(1, 1, h, w) int64 tensor at the embedding size: object ids on strokes, -1 elsewhere."""
        import torch

        from datasets.davis_compat import scribbles2mask

        eh, ew = self.embeddings.shape[-2:]
        per_frame = [[] for _ in range(len(self.frames))]
        per_frame[frame] = list(scribbles["scribbles"][frame]) if frame < len(scribbles["scribbles"]) else []
        label = scribbles2mask({"scribbles": per_frame}, (int(eh), int(ew)))[frame]
        return torch.from_numpy(label.astype(np.int64))[None, None].to(self.device), bool(per_frame[frame])

    def _interact(self, frame: int, scribbles: dict) -> RoundOutput:
        import torch

        T, H, W = self.frames.shape[:3]
        K = self.num_objects
        n_round = len(self.annotated)
        first = n_round == 1
        label, drawn = self._scribble_label(scribbles, frame)
        if not drawn:
            log.info("MANet: empty scribble on frame %d, keeping the previous round's output", frame)
            return self._unchanged()
        if first:
            label = rough_roi(label)
        # two round slots: slot 0 = previous round, slot 1 = this one (see the module docstring)
        interaction_num = 1 if first else 2
        if n_round >= 3:
            tmp, dist = self.local_maps[0][_SEQ], self.local_maps[1][_SEQ]
            tmp[:, 0] = tmp[:, 1]
            tmp[:, 1] = 1.0
            dist[:, 0] = dist[:, 1]
            dist[:, 1] = 0.0
        gt_ids = torch.Tensor([K])
        probs = np.empty((T, K + 1, H, W), dtype=np.float32)
        timings = {}

        def keep(t: int, logits) -> Any:
            logits = torch.nn.functional.interpolate(logits, size=(H, W), mode="bilinear", align_corners=True)
            probs[t] = torch.softmax(logits, dim=1)[0].cpu().numpy()
            self.labels[t] = logits.argmax(1)[0]
            return self.labels[t][None, None]           # (1, 1, H, W) for the next step

        t0 = time.perf_counter()
        with self._running(), torch.no_grad():
            ref = self.embeddings[frame:frame + 1]
            prev_round = None if first else self.labels[frame][None, None]
            out, self.local_maps = self.net.int_seghead(
                ref_frame_embedding=ref, ref_scribble_label=label, prev_round_label=prev_round,
                global_map_tmp_dic=self.global_map, local_map_dics=self.local_maps,
                interaction_num=interaction_num, seq_names=[_SEQ], gt_ids=gt_ids, frame_num=[frame],
                first_inter=first)
            at_frame = keep(frame, out[_SEQ])
            timings["interaction"] = time.perf_counter() - t0
            for order in (range(frame + 1, T), range(frame - 1, -1, -1)):
                prev_label, prev_emb = at_frame, ref
                for t in order:
                    cur = self.embeddings[t:t + 1]
                    out, self.global_map, self.local_maps = self.net.prop_seghead(
                        ref, prev_emb, cur, label, prev_label, normalize_nearest_neighbor_distances=True,
                        use_local_map=True, seq_names=[_SEQ], gt_ids=gt_ids, k_nearest_neighbors=self._knn,
                        global_map_tmp_dic=self.global_map, local_map_dics=self.local_maps,
                        interaction_num=interaction_num, start_annotated_frame=frame, frame_num=[t],
                        dynamic_seghead=self.net.dynamic_seghead)
                    prev_label, prev_emb = keep(t, out[_SEQ]), cur
        timings["propagation"] = time.perf_counter() - t0 - timings["interaction"]
        masks = self.labels.to(torch.uint8).cpu().numpy()
        self.last_output = RoundOutput(masks=masks, probs=probs, timings=dict(timings))
        return RoundOutput(masks=masks.copy(), probs=probs.copy(), timings=timings)

    def _unchanged(self) -> RoundOutput:
        """The previous round's output, or all background before any round."""
        if self.last_output is not None:
            return RoundOutput(masks=self.last_output.masks.copy(), probs=self.last_output.probs.copy(),
                               timings={"interaction": 0.0, "propagation": 0.0})
        T, H, W = self.frames.shape[:3]
        probs = np.zeros((T, self.num_objects + 1, H, W), dtype=np.float32)
        probs[:, 0] = 1.0
        return RoundOutput(masks=np.zeros((T, H, W), np.uint8), probs=probs, timings={})
