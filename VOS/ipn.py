"""IPN (Oh et al., CVPR 2019; training code zyy-cn/IPN) behind the backend interface.

The user's checkout lives in ``VOS/IPN`` with ``weights/I.pth`` (interaction net) and
``weights/P.pth`` (propagation net). This adapter imports the checkout's ``Inet``/``Pnet`` in
isolation and runs one round the way the checkout's ``model.Run`` does (which the published
IVOS-W evaluation called), with the device passed in:

- frames: RGB, float in [0, 1], original size (the networks crop a 256x256 ROI themselves);
- scribbles: only this round's, per object: the object's strokes positive, background strokes
  negative only where the previous round predicted the object; each dilated twice with a 3x3
  cross (the checkout's ``Dilate_mask``);
- interaction on the annotated frame, then propagation forward and backward up to the nearest
  previously annotated frames, blended with the previous round by the checkout's ``Get_weight``;
- soft aggregation over objects: logits of [prod(1 - p_k), p_1..p_K], softmax.

What is changed from outside, without editing the checkout: ``ToCudaVariable`` in the two network
modules moves tensors to the backend's device; torchvision ResNet-50s are built without
downloading ImageNet weights (the checkpoint overwrites them); ``matplotlib.pyplot``, imported
but unused by ``propagation_net``, is a stub (no GUI backend is chosen); the import-time prints
are swallowed; ``module.`` prefixes in the checkpoints (saved from ``nn.DataParallel``) are stripped.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from core.checkpoint import load_into, load_state_dict
from VOS._checkout import (
    CHECKOUTS,
    Checkout,
    CheckoutMissing,
    checkout_context,
    checkout_dir,
    load_checkout,
    require_weights,
    stub_module,
)
from VOS.base import RoundOutput, VOSBackend

log = logging.getLogger(__name__)

#: where the trained I.pth / P.pth can be downloaded (the checkout's README)
WEIGHTS_URL = "https://drive.google.com/drive/folders/1823tN79Z3A9vZv3NP7msD3HZyc2ixh_C"
_MODULES = ["utils_ipn", "interaction_net", "propagation_net"]
_LOADED: dict[Path, Checkout] = {}


def _resnet50_without_download(pretrained: bool = False, **kwargs: Any):
    """torchvision's ResNet-50 with random weights, whatever ``pretrained`` says: the IPN
    checkpoint holds the trained encoder weights, so the ImageNet ones are never needed."""
    import torchvision

    return torchvision.models.resnet50(weights=None, **kwargs)


def load_ipn_checkout(root: Path | str) -> Checkout:
    """Import the IPN checkout at ``root`` once per process (modules isolated, see _checkout)."""
    root = Path(root).resolve()
    if root in _LOADED:
        return _LOADED[root]
    # propagation_net imports matplotlib.pyplot and never uses it: a stub, so that importing
    # the checkout neither picks a GUI backend nor needs matplotlib at all
    stubs = {"matplotlib.pyplot": stub_module("matplotlib.pyplot")}
    if importlib.util.find_spec("matplotlib") is None:
        stubs["matplotlib"] = stub_module("matplotlib")
    with contextlib.redirect_stdout(io.StringIO()):   # "Interaction Network: initialized"
        handle = load_checkout(root, _MODULES, stubs=stubs)
    fake_models = types.SimpleNamespace(resnet50=_resnet50_without_download)
    for name in ("interaction_net", "propagation_net"):
        handle[name].models = fake_models
    _LOADED[root] = handle
    return handle


def _require_files(root: Path, files: tuple[str, ...]) -> None:
    """CheckoutMissing (naming the clone command) unless ``root`` holds ``files``."""
    if not root.is_dir():
        raise CheckoutMissing(root, CHECKOUTS["ipn"])
    for rel in files:
        if not (root / rel).is_file():
            raise CheckoutMissing(root, CHECKOUTS["ipn"], detail=f"{rel} is missing: incomplete clone?")


class IPNBackend(VOSBackend):
    """IPN: interaction net + propagation net, last round's scribbles, soft aggregation.

    Options: ``checkout`` (directory, default VOS/IPN), ``weights_i`` / ``weights_p`` (default
    <checkout>/weights/I.pth and P.pth). ``device``: torch device or string.
    """

    name = "ipn"
    scribble_history = "last"

    def __init__(self, device: Any = "cpu", checkout: str | Path | None = None,
                 weights_i: str | Path | None = None, weights_p: str | Path | None = None,
                 **options: Any) -> None:
        import torch

        super().__init__(device=torch.device(device), checkout=checkout, weights_i=weights_i,
                         weights_p=weights_p, **options)
        root = Path(checkout) if checkout else checkout_dir("ipn")
        _require_files(root, ("interaction_net.py", "propagation_net.py", "utils_ipn.py"))
        self.root = root
        self.weights_i = require_weights(weights_i or root / "weights" / "I.pth", "IPN")
        self.weights_p = require_weights(weights_p or root / "weights" / "P.pth", "IPN")
        self._ckpt = load_ipn_checkout(root)
        self._utils = self._ckpt["utils_ipn"]
        with checkout_context(self._ckpt), torch.no_grad():
            self.net_i = self._ckpt["interaction_net"].Inet()
            self.net_p = self._ckpt["propagation_net"].Pnet()
        self.weight_files = [Path(self.weights_i), Path(self.weights_p)]
        for net, path, name in ((self.net_i, self.weights_i, "I.pth (Inet)"), (self.net_p, self.weights_p, "P.pth (Pnet)")):
            expected = f"IPN's {name}: a state dict of the checkout's network, keys with or without 'module.'"
            state = load_state_dict(path, expected=expected, map_location=self.device,
                                    fix="download it again (README, 'VOS networks')")
            load_into(net, state, path, expected=expected)
            net.to(self.device).eval()

    # -- checks -------------------------------------------------------------------------------
    @classmethod
    def check(cls, root: str | Path | None = None) -> list[tuple[str, bool, str]]:
        """(item, ok, fix) for the checkout and both weight files; ``root``: the directory holding
        the checkouts (default VOS/)."""
        path = checkout_dir("ipn", root)
        info = CHECKOUTS["ipn"]
        items = [(f"checkout {path}", (path / "interaction_net.py").is_file(), info.clone_command())]
        for rel in info.weights:
            w = path / rel
            items.append((f"weights {w}", w.is_file(), f"download {Path(rel).name} from {WEIGHTS_URL} to {w} (see README, 'VOS networks')"))
        return items

    # -- state --------------------------------------------------------------------------------
    def _state_keys(self) -> list[str]:
        return super()._state_keys() + ["mask_objs", "refs", "prev_targets"]

    def _start(self) -> None:
        import torch

        T, H, W = self.frames.shape[:3]
        frames = torch.from_numpy(self.frames).to(self.device)
        # (1, 3, T, H, W) float RGB in [0, 1], as the checkout's init_variables builds it
        self.all_f = frames.permute(3, 0, 1, 2).unsqueeze(0).float() / 255.0
        #: per-object probability of the previous round, -1 before the first round: (K, T, H, W)
        self.mask_objs = -torch.ones(self.num_objects, T, H, W, device=self.device)
        self.refs: list[Any] = [None] * self.num_objects
        self.prev_targets: list[int] = []

    # -- one round ----------------------------------------------------------------------------
    def _scribble_pn(self, scribbles: dict, frame: int, obj: int, prev_on_frame: np.ndarray):
        """Positive / negative scribble maps (1, H, W) float for object ``obj`` on ``frame``, as the
        checkout's ``model.Run`` rasterises them (davisinteractive's scribbles2mask, then dilation)."""
        import torch

        from datasets.davis_compat import scribbles2mask

        H, W = self.frames.shape[1:3]
        strokes = scribbles["scribbles"][frame] if frame < len(scribbles["scribbles"]) else []
        mine = []
        for s in strokes:
            if s["object_id"] == obj:
                mine.append(dict(copy.deepcopy(s), object_id=1))
            elif s["object_id"] == 0:
                mine.append(copy.deepcopy(s))
        per_frame = [[] for _ in range(len(self.frames))]
        per_frame[frame] = mine
        label = scribbles2mask({"scribbles": per_frame}, (H, W))[frame]
        # background strokes count only where the previous round said "object"
        negative = (prev_on_frame > 0.5) & (label == 0)
        label[label == 0] = -1
        label[negative] = 0
        label = self._utils.Dilate_mask(label, 1)
        pos = torch.from_numpy((label == 1).astype(np.float32))[None].to(self.device)
        neg = torch.from_numpy((label == 0).astype(np.float32))[None].to(self.device)
        return pos, neg

    def _set_device_hooks(self) -> None:
        device = self.device

        def to_device(xs, requires_grad=False):
            return [x.to(device) for x in xs]

        for name in ("interaction_net", "propagation_net", "utils_ipn"):
            self._ckpt[name].ToCudaVariable = to_device

    def _interact(self, frame: int, scribbles: dict) -> RoundOutput:
        import torch

        T, H, W = self.frames.shape[:3]
        K = self.num_objects
        timings = {"interaction": 0.0, "propagation": 0.0}
        self._set_device_hooks()
        gm = torch.zeros(1, H, W, device=self.device)   # the networks' loss needs a target; unused
        lw = [1, 1, 1, 1, 1]
        left, right, weight = self._utils.Get_weight(frame, list(self.prev_targets), T, at_least=-1)
        new = torch.empty_like(self.mask_objs)
        with checkout_context(self._ckpt), torch.no_grad():
            for k in range(K):
                t0 = time.perf_counter()
                prev = self.mask_objs[k:k + 1]            # (1, T, H, W)
                cur = prev.clone()
                pos, neg = self._scribble_pn(scribbles, frame, k + 1, prev[0, frame].cpu().numpy())
                cur[:, frame], _, ref = self.net_i(self.all_f[:, :, frame], cur[:, frame], pos, neg, gm, lw)
                t1 = time.perf_counter()
                a_ref, next_a_ref = self.refs[k], None
                for n in range(frame + 1, right + 1):
                    cur[:, n], _, next_a_ref = self.net_p(ref, a_ref, self.all_f[:, :, n], prev[:, n],
                                                          cur[:, n - 1], gm, lw, next_a_ref)
                # the backward pass reuses the aggregated reference of the forward one, as in IPN
                for n in reversed(range(left, frame)):
                    cur[:, n], _, next_a_ref = self.net_p(ref, a_ref, self.all_f[:, :, n], prev[:, n],
                                                          cur[:, n + 1], gm, lw, next_a_ref)
                w = torch.tensor(weight, dtype=cur.dtype, device=self.device).view(1, T, 1, 1)
                new[k] = (w * cur + (1 - w) * prev)[0]
                self.refs[k] = next_a_ref
                timings["interaction"] += t1 - t0
                timings["propagation"] += time.perf_counter() - t1
        self.mask_objs = new
        self.prev_targets = self.prev_targets + [frame]
        probs = soft_aggregate(new)                        # (T, K+1, H, W)
        masks = probs.argmax(1).to(torch.uint8)
        return RoundOutput(masks=masks.cpu().numpy(), probs=probs.float().cpu().numpy(), timings=timings)


def soft_aggregate(obj_probs):
    """IPN's merge of per-object probabilities. obj_probs: (K, T, H, W) tensor in [0, 1].
    Returns (T, K+1, H, W): softmax over [bg = prod_k(1 - p_k), p_1..p_K] taken as logits of
    the clamped probabilities, which sums to 1 over channels."""
    import torch

    bg = torch.prod(1 - obj_probs, dim=0, keepdim=True)
    em = torch.cat([bg, obj_probs], dim=0).clamp(1e-7, 1 - 1e-7)
    return torch.softmax(torch.log(em / (1 - em)), dim=0).permute(1, 0, 2, 3)
