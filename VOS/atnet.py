"""ATNet (Heo et al., ECCV 2020; github.com/yuk6heo/IVOS-ATNet) behind the backend interface.

The network code is the user's checkout in ``VOS/ATNet``, loaded in isolation (VOS/_checkout.py)
and never edited. What the published evaluation wrapper (``eval_davis-framework.py``) did is
reproduced here; the checkout's own helpers do the rasterisation, padding, propagation order and
mask fusion (``libs/utils.py``, ``libs/utils_torch.py``):

- Frames: RGB, /255, ImageNet mean/std, reflect-padded so each side grows by ``32 - side % 32``
  (``apply_pad``; 64x96 -> 96x128, 480x854 -> 512x864).
- Scribbles: every stroke drawn on the annotated frame so far (all rounds), rasterised with
  Bresenham, dilated (ellipse 5) and Gaussian-blurred (``scribble_to_image``). Round 1 input per
  object: [0.5, positive-minus-negative scribble, 0]; later rounds: [previous mask of the object,
  positive scribble, negative scribble restricted to the previous mask of the object].
- A-Net on the annotated frame, then T-Net backward then forward from it, each side stopping
  just short (proportion 0.99) of the nearest other annotated frame; a propagated probability is
  blended with the previous round's as alpha * new + (1 - alpha) * old, alpha growing linearly
  from 0.5 at the neighbouring annotated frame to 1 at this one (1 when there is none).
- Masks: per pixel the object with the highest sigmoid probability, kept if that probability is
  > 0.8 (``combine_masks_with_batch``, ``test_propth``), else background. Frames outside the
  propagated range keep their previous masks and probabilities.

Output ``probs`` (T, K+1, H, W) float32: channel k (1..K) is ATNet's own sigmoid probability for
object k (what the quality-assessment network was trained on, PROTOCOL.md §6), cropped to the
original size; channel 0 is ``1 - max_k p_k``. The object channels are independent sigmoids, so
the channels do not sum to 1.

Running on today's PyTorch and on CPU, without touching the checkout:
- FlowNet2's CUDA correlation layer is replaced by VOS/_correlation.py unless the extension is
  built and the device is CUDA;
- ``LTM_transfer`` (which calls ``.cuda()`` unconditionally) is replaced, in the loaded modules
  only, by a subclass that builds its tensors on the input's device; its ``grid_sample`` calls use
  ``align_corners=True``, which is what PyTorch 1.2 (ATNet's version) did;
- building the network fetches no ImageNet weights (``model_zoo`` stubbed while building), the
  checkpoint is loaded with ``map_location`` and ``module.`` prefixes stripped;
- the image encoder of T-Net runs once per frame instead of once per object (identical result,
  checked in tests/test_adapters_atnet.py).
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.checkpoint import CheckpointError, load_into, load_state_dict
from VOS import _correlation
from VOS._checkout import (
    CHECKOUTS,
    VOS_DIR,
    Checkout,
    CheckoutMissing,
    checkout_context,
    checkout_dir,
    load_checkout,
    no_downloads,
    require_weights,
    stub_module,
)
from VOS.base import BackendError, RoundOutput, VOSBackend

log = logging.getLogger(__name__)

INFO = CHECKOUTS["atnet"]
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PROB_THRESHOLD = 0.8          # config.test_propth
PROPAGATION_PROPORTION = 0.99  # config.test_propagation_proportion
SCRIBBLE_DILATION = 5          # config.scribble_dilation_param
SMALLEST_ALPHA = 0.5
#: the checkout README's link to the published weights
WEIGHTS_URL = "https://drive.google.com/file/d/1t1VO2zy3pLBXCWqme9h63Def86Y4ECIH/view?usp=sharing"

_MODULES = ["networks.atnet", "networks.ltm_transfer", "networks.deeplab.backbone.resnet",
            "libs.utils", "libs.utils_torch"]


def extension_built(root: Path) -> bool:
    """True when the checkout's correlation package is unzipped and its CUDA op is importable."""
    return ((root / "networks" / "correlation_package" / "correlation.py").is_file()
            and importlib.util.find_spec("correlation_cuda") is not None)


def load_atnet_checkout(root: Path | str | None = None, use_extension: bool = False) -> Checkout:
    """Load ATNet's modules from ``root`` (default VOS/ATNet) in isolation, patched for CPU.

    use_extension: import the checkout's CUDA correlation package (only sensible on a CUDA device
    with the extension built); otherwise the pure-torch layer stands in for it.
    """
    root = Path(root) if root is not None else checkout_dir("atnet")
    if not root.is_dir():
        raise CheckoutMissing(root, INFO)
    for rel in ("networks/atnet.py", "networks/ltm_transfer.py", "libs/utils.py"):
        if not (root / rel).is_file():
            raise BackendError(f"{root / rel} is missing: is {root} a clone of {INFO.url}?")
    # the checkout's libs/utils.py imports davisinteractive: make it the fixed one
    importlib.import_module("datasets.davis_compat").apply()
    stubs = {}
    if not use_extension:
        corr = stub_module("networks.correlation_package.correlation", Correlation=_correlation.Correlation)
        stubs = {"networks.correlation_package": stub_module("networks.correlation_package", correlation=corr),
                 "networks.correlation_package.correlation": corr}
    handle = load_checkout(root, _MODULES, stubs=stubs)
    ltm_mod = handle["networks.ltm_transfer"]
    patched = _device_agnostic_ltm(ltm_mod.LTM_transfer)
    ltm_mod.LTM_transfer = patched
    handle["networks.atnet"].LTM_transfer = patched
    return handle


def _device_agnostic_ltm(original: type) -> type:
    """A subclass of the checkout's LTM_transfer without ``.cuda()``: same computation, on the
    device of its inputs (its displacement table is a non-persistent buffer that follows ``.to``)."""

    class LTMTransfer(original):
        def __init__(self, md: int = 4, stride: int = 1) -> None:
            nn.Module.__init__(self)
            self.md = md
            self.range = (md * 2 + 1) ** 2
            self.grid = None
            self.Channelwise_sum = None
            lin = torch.linspace(-md * stride, md * stride, 2 * md + 1)
            d_u = lin.view(1, -1).repeat((2 * md + 1, 1)).view(self.range, 1)   # x offset varies fastest
            d_v = lin.view(-1, 1).repeat((1, 2 * md + 1)).view(self.range, 1)
            self.register_buffer("d", torch.cat((d_u, d_v), dim=1), persistent=False)

        def UniformGrid(self, Input: torch.Tensor) -> torch.Tensor:  # noqa: N802 - the checkout's name
            _, _, h, w = Input.size()
            xx = torch.arange(0, w, device=Input.device).view(1, 1, 1, w).expand(1, 1, h, w)
            yy = torch.arange(0, h, device=Input.device).view(1, 1, h, 1).expand(1, 1, h, w)
            return torch.cat((xx, yy), 1).float()

        def warp(self, x: torch.Tensor, BM_d: torch.Tensor) -> torch.Tensor:  # noqa: N803
            if self.grid.device != x.device:
                self.grid = self.grid.to(x.device)
            vgrid = self.grid + BM_d
            vgrid[:, 0] = 2.0 * vgrid[:, 0] / max(x.size(3) - 1, 1) - 1.0
            vgrid[:, 1] = 2.0 * vgrid[:, 1] / max(x.size(2) - 1, 1) - 1.0
            vgrid = vgrid.permute(0, 2, 3, 1)
            # PyTorch <= 1.2 (ATNet's) sampled with what is now align_corners=True
            output = F.grid_sample(x, vgrid, mode="bilinear", padding_mode="border", align_corners=True)
            mask = F.grid_sample(torch.ones_like(x), vgrid, align_corners=True)
            mask = mask.masked_fill_(mask < 0.999, 0)
            mask = mask.masked_fill_(mask > 0, 1)
            return output * mask

    LTMTransfer.__name__ = LTMTransfer.__qualname__ = "LTM_transfer"
    return LTMTransfer


def build_network(handle: Checkout, device: torch.device | str = "cpu",
                  state_dict: dict | None = None) -> nn.Module:
    """ATnet from the loaded checkout, without ImageNet downloads, in eval mode on ``device``;
    ``state_dict`` (keys as in ATNet-checkpoint.pth) is loaded strictly when given."""
    with checkout_context(handle), no_downloads(handle["networks.deeplab.backbone.resnet"]), \
            contextlib.redirect_stdout(io.StringIO()):   # ATnet() prints a banner
        net = handle["networks.atnet"].ATnet()
    if state_dict is not None:
        load_into(net, state_dict, "the ATNet state dict", expected=ATNET_LAYOUT)
    return net.to(torch.device(device)).eval()


ATNET_LAYOUT = ("ATNet-checkpoint.pth of yuk6heo/IVOS-ATNet: a state dict (optionally under 'state_dict', "
                "keys with or without 'module.') of the checkout's ATnet")


def load_atnet_weights(handle: Checkout, path: Path, device: torch.device | str = "cpu") -> nn.Module:
    """ATnet with the weights at ``path`` loaded strictly (``weights_only=True``: the published file is a
    plain state dict); a file that does not fit names itself and what it lacks."""
    state = load_state_dict(path, expected=ATNET_LAYOUT, map_location="cpu",
                            fix="download it again (README, 'VOS networks')")
    try:
        return build_network(handle, device, state)
    except CheckpointError as exc:
        raise CheckpointError(str(exc).replace("the ATNet state dict", str(path))) from None


class ATNetBackend(VOSBackend):
    """ATNet as the published DAVIS-framework evaluation ran it (all scribbles so far).

    Options: ``weights`` (default VOS/ATNet/ATNet-checkpoint.pth), ``checkout`` (default VOS/ATNet),
    ``threshold`` (0.8), ``proportion`` (0.99).
    """

    name = "atnet"
    scribble_history = "all"

    def __init__(self, device: Any = "cpu", **options: Any) -> None:
        super().__init__(device=device, **options)
        self.torch_device = torch.device(device)
        root = Path(options.get("checkout") or checkout_dir("atnet"))
        if not root.is_dir():
            raise CheckoutMissing(root, INFO)
        weights = require_weights(options.get("weights") or root / INFO.weights[0], "ATNet")
        self.threshold = float(options.get("threshold", PROB_THRESHOLD))
        self.proportion = float(options.get("proportion", PROPAGATION_PROPORTION))
        use_ext = self.torch_device.type == "cuda" and extension_built(root)
        try:
            self.checkout = load_atnet_checkout(root, use_extension=use_ext)
        except ImportError as exc:   # built for another torch, say: the pure-torch layer still works
            if not use_ext:
                raise
            log.warning("ATNet's correlation extension does not import (%s); using the pure-torch layer", exc)
            use_ext = False
            self.checkout = load_atnet_checkout(root, use_extension=False)
        self.utils = self.checkout["libs.utils"]
        self.utils_torch = self.checkout["libs.utils_torch"]
        self.weight_files = [Path(weights)]
        self.net = load_atnet_weights(self.checkout, Path(weights), self.torch_device)
        log.info("ATNet loaded from %s (%s, correlation: %s)", weights, self.torch_device,
                 "CUDA extension" if use_ext else "pure torch")

    @classmethod
    def check(cls, root: Path | str | None = None) -> list[tuple[str, bool, str]]:
        """(item, present, how to fix) for the checkout, its weights and the CUDA extension.
        root: the directory holding the checkouts (default VOS/)."""
        root = Path(root or VOS_DIR)
        path = root / INFO.name
        weights = path / INFO.weights[0]
        corr = "cd VOS/ATNet/networks && unzip correlation_package.zip && cd correlation_package && " \
               "python setup.py install --user   (optional, CUDA only; without it a pure-torch layer is used)"
        return [
            (f"checkout {path}", path.is_dir(), INFO.clone_command()),
            (f"weights {weights}", weights.is_file(),
             f"download ATNet-checkpoint.pth from {WEIGHTS_URL} to {weights} (see README, 'VOS networks')"),
            ("correlation CUDA extension (optional)", extension_built(path), corr),
        ]

    # -- state ----------------------------------------------------------------------------------
    def _state_keys(self) -> list[str]:
        return super()._state_keys() + ["final_masks", "prob_maps", "anno_6ch_r5", "anno_3ch_r5"]

    def _start(self) -> None:
        T, H, W = self.frames.shape[:3]
        K = self.num_objects
        padded, self.pad_info = self.utils.apply_pad(self.frames[0].astype(np.float32))
        self.padded_hw = padded.shape[:2]
        self.final_masks = np.zeros((T, H, W), dtype=np.uint8)
        self.prob_maps = torch.zeros((T, K) + self.padded_hw, device=self.torch_device)
        self.anno_6ch_r5: list[torch.Tensor] = []            # A-Net indicator features, one per round
        self.anno_3ch_r5: list[torch.Tensor] = []            # T-Net encoder features of annotated frames

    def _image(self, t: int) -> torch.Tensor:
        """(1, 3, Hp, Wp) float: frame t as the checkout's DAVIS loader and transforms make it
        (made on demand: a few ms, against seconds for the network; a cache would cost ~5 MB per
        480p frame)."""
        img = self.frames[t].astype(np.float32)            # RGB, as the loader's rgb=True
        padded = self.utils.apply_pad(img, padinfo=self.pad_info)
        norm = (padded / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
        return torch.from_numpy(np.ascontiguousarray(norm.transpose(2, 0, 1)))[None].float().to(self.torch_device)

    # -- one round ------------------------------------------------------------------------------
    def _strokes_on(self, frame: int) -> list[dict]:
        """Every stroke drawn on ``frame`` in the rounds so far, oldest first (the session's
        accumulated scribbles, get_scribbles(only_last=False), hold exactly these)."""
        strokes = []
        for _, scr in self.scribbles:
            per_frame = scr.get("scribbles", [])
            if frame < len(per_frame):
                strokes.extend(per_frame[frame])
        return strokes

    def _interaction_input(self, frame: int, first_round: bool) -> torch.Tensor:
        """(K, 3, Hp, Wp) float: [prev mask or 0.5, positive scribble, negative scribble] per object."""
        strokes = self._strokes_on(frame)
        prev = self.final_masks[frame]
        chans = []
        for obj in range(1, self.num_objects + 1):
            if first_round:
                scr = self.utils.scribble_to_image(strokes, frame, obj, dilation=SCRIBBLE_DILATION,
                                                   prev_mask=prev, singleimg=True)
                chans.append(np.stack([np.full_like(scr, 0.5), scr, np.zeros_like(scr)]))
            else:
                pos, neg = self.utils.scribble_to_image(strokes, frame, obj, dilation=SCRIBBLE_DILATION,
                                                        prev_mask=prev, blur=True, singleimg=True,
                                                        seperate_pos_neg=True)
                chans.append(np.stack([(prev == obj).astype(np.float32), pos, neg]))
        x = torch.from_numpy(np.stack(chans).astype(np.float32)).to(self.torch_device)
        (hl, hr), (wl, wr) = self.pad_info
        return nn.ReflectionPad2d((wl, wr, hl, hr))(x)

    def _tnet(self, image: torch.Tensor, r2_prev: torch.Tensor, predmask_prev: torch.Tensor):
        """ATnet.forward_TNet with the image encoder run once for all objects (the checkout runs
        it on K copies of the same frame). Returns (logits (K,1,Hp,Wp), r2 features of the frame)."""
        net, K = self.net, self.num_objects
        f_targ, _, r3_targ, r2_targ = (f.expand(K, -1, -1, -1) for f in net.encoder_3ch(image))
        f_mask_r5 = net.correlation_global_transfer(self.anno_3ch_r5, f_targ, self.anno_6ch_r5)
        f_mask_r2 = net.correlation_local_transfer(net.prev_conv1x1(r2_prev), net.prev_conv1x1(r2_targ),
                                                   predmask_prev)
        r5 = net.conv1x1(torch.cat([f_targ, f_mask_r5], dim=1))
        logits, _ = net.decoder_prop(r5, r3_targ, r2_targ, f_mask_r2)
        return logits, r2_targ

    def _alpha(self, t: int, now: int, backward: bool) -> float:
        marks = np.array(self.annotated)
        if backward:
            before = marks[marks < now]
            return 1.0 if len(before) == 0 else \
                SMALLEST_ALPHA + (1 - SMALLEST_ALPHA) * (t - before.max()) / (now - before.max())
        after = marks[marks > now]
        return 1.0 if len(after) == 0 else \
            SMALLEST_ALPHA + (1 - SMALLEST_ALPHA) * (after.min() - t) / (after.min() - now)

    @torch.no_grad()
    def _interact(self, frame: int, scribbles: dict) -> RoundOutput:
        T = len(self.frames)
        K = self.num_objects
        first_round = len(self.annotated) == 1
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        prop_list = self.utils.get_prop_list(list(self.annotated), frame, T, proportion=self.proportion)
        with checkout_context(self.checkout):
            # interaction: A-Net on the annotated frame
            image = self._image(frame)
            x = torch.cat([image.expand(K, -1, -1, -1), self._interaction_input(frame, first_round)], dim=1)
            logit, anno_6ch = self.net.forward_ANet(x)
            prob_anno = torch.sigmoid(logit)                       # (K, 1, Hp, Wp)
            anno_3ch, _, _, r2_anno = (f.expand(K, -1, -1, -1) for f in self.net.encoder_3ch(image))
            self.anno_6ch_r5.append(anno_6ch)
            self.anno_3ch_r5.append(anno_3ch)
            self.prob_maps[frame] = prob_anno[:, 0]
            timings["interaction"] = time.perf_counter() - t0

            # propagation: backward from the annotated frame, then forward (prop_list's order)
            t1 = time.perf_counter()
            seen_anno = 0
            for t in prop_list:
                if t == frame:
                    seen_anno += 1
                    r2_prev, prob_prev = r2_anno, prob_anno       # restart from the annotation
                    continue
                logit, r2_prev = self._tnet(self._image(t), r2_prev, prob_prev)
                prob_prev = torch.sigmoid(logit)
                alpha = self._alpha(t, frame, backward=seen_anno == 1)
                self.prob_maps[t] = alpha * prob_prev[:, 0] + (1 - alpha) * self.prob_maps[t]
            timings["propagation"] = time.perf_counter() - t1

        lo, hi = min(prop_list), max(prop_list)
        fused = self.utils_torch.combine_masks_with_batch(self.prob_maps[lo:hi + 1], n_obj=K, th=self.threshold)
        self.final_masks[lo:hi + 1] = self._crop(fused[:, 0]).cpu().numpy().astype(np.uint8)
        obj = self._crop(self.prob_maps).cpu().numpy().astype(np.float32)        # (T, K, H, W)
        probs = np.concatenate([1.0 - obj.max(axis=1, keepdims=True), obj], axis=1)
        timings["total"] = time.perf_counter() - t0
        return RoundOutput(masks=self.final_masks.copy(), probs=np.clip(probs, 0.0, 1.0), timings=timings)

    def _crop(self, x: torch.Tensor) -> torch.Tensor:
        (hl, hr), (wl, wr) = self.pad_info
        return x[..., hl:x.shape[-2] - hr, wl:x.shape[-1] - wr]
