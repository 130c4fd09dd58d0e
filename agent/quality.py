"""The quality-assessment (QA) network: predicts one object's J&F in one frame without ground truth.

Architecture (PROTOCOL.md §6): the ROI crop of an RGB frame (ImageNet-normalised inside the network) and of
the object's probability map go through ``conv1(image) + conv1_p(prob)`` -> bn1 -> ReLU -> maxpool -> the
four ResNet stages -> global average pooling (the published 8×8 average pool at 256-px input) ->
``Linear(C, 1)``, no sigmoid.

Two backbones:

- ``resnet50`` with 256-px crops: the published network. Its state dict has exactly the published key
  layout (``Encoder.conv1_p.weight``, ``Encoder.conv1.*``, ``Encoder.bn1.*``, ``Encoder.res2..res5.*``,
  ``Encoder.mean``, ``Encoder.std``, the unused ``Encoder.conv1_m.{weight,bias}`` and
  ``Encoder.conv1_n.weight``, ``fc1.{weight,bias}``), so the published ``weights/assess_net.pt`` loads
  strictly.
- ``resnet18`` with 128-px crops: the default of the built-in (CPU) pipeline. ~11 M parameters instead of
  ~24 M and a quarter of the pixels: about 16× fewer FLOPs per crop, so a 40-frame, 2-object 480p video is
  scored in about a second on 2 CPU cores. The ROI rule is unchanged (minimum ROI side 128 px of the
  frame): only the resolution the ROI is resampled to is lower.

ImageNet initialisation of the backbone is optional; torchvision's weights are used only if they are
already in the torch hub cache (or given as a file): this machine class has no network access.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torchvision

from agent.roi import crop_pairs, roi_boxes

log = logging.getLogger(__name__)

BACKBONES = {"resnet50": 2048, "resnet18": 512}
#: the built-in pipeline's choice and the published one
DEFAULT_BACKBONE = "resnet18"
DEFAULT_CROP = {"resnet50": 256, "resnet18": 128}
PUBLISHED = {"backbone": "resnet50", "crop_size": 256, "min_size": 128}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_WEIGHTS = {"resnet50": "ResNet50_Weights", "resnet18": "ResNet18_Weights"}


class QualityEncoder(nn.Module):
    """ResNet trunk taking an RGB crop and a probability-map crop. Attribute names are the published ones."""

    def __init__(self, backbone: str = DEFAULT_BACKBONE) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown QA backbone '{backbone}'; known: {', '.join(BACKBONES)}")
        resnet = getattr(torchvision.models, backbone)(weights=None)
        self.conv1_p = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        # In the published checkpoint but never used in its forward pass; kept so its key layout loads strictly.
        self.conv1_m = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=True)
        self.conv1_n = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.res2, self.res3, self.res4, self.res5 = resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """image: (N, 3, S, S) RGB in [0, 1]; prob: (N, 1, S, S) in [0, 1]. Returns (N, C, S/32, S/32)."""
        x = self.conv1((image - self.mean) / self.std) + self.conv1_p(prob)
        x = self.maxpool(self.relu(self.bn1(x)))
        return self.res5(self.res4(self.res3(self.res2(x))))


class QualityNet(nn.Module):
    """QA network: (image crop, probability crop) -> predicted J&F (unbounded scalar, trained towards [0, 1]).

    backbone: 'resnet50' (published) or 'resnet18' (CPU default). pretrained: False, True (torchvision's
    ImageNet weights, only if already cached; otherwise a warning and random init), or a path to a
    torchvision ResNet state dict. crop_size / min_size: the ROI resampling the network expects (kept as
    attributes and saved in our checkpoints' metadata; not in the state dict).
    """

    def __init__(self, backbone: str = DEFAULT_BACKBONE, pretrained: bool | str = False,
                 crop_size: int | None = None, min_size: int = 128) -> None:
        super().__init__()
        self.backbone = backbone
        self.crop_size = int(crop_size or DEFAULT_CROP[backbone])
        self.min_size = int(min_size)
        self.Encoder = QualityEncoder(backbone)
        self.fc1 = nn.Linear(BACKBONES[backbone], 1)
        if pretrained:
            self.pretrained = load_imagenet(self.Encoder, backbone, pretrained)
        else:
            self.pretrained = False

    def forward(self, image: torch.Tensor, prob: torch.Tensor) -> torch.Tensor:
        """image: (N, 3, S, S) RGB in [0, 1]; prob: (N, 1, S, S) in [0, 1]. Returns (N,) predicted J&F."""
        feat = self.Encoder(image, prob).mean(dim=(2, 3))   # == the published 8×8 avg pool at S = 256
        return self.fc1(feat).squeeze(1)

    def meta(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "crop_size": self.crop_size, "min_size": self.min_size}


def load_imagenet(encoder: QualityEncoder, backbone: str, source: bool | str) -> bool:
    """Put torchvision ImageNet weights into the encoder's trunk. Never downloads: returns False (with a
    warning saying what to do) when the weights are not in the torch hub cache."""
    if isinstance(source, (str, os.PathLike)) and not isinstance(source, bool):
        path = Path(source)
    else:
        weights = getattr(torchvision.models, _WEIGHTS[backbone]).IMAGENET1K_V1
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)
        if not path.is_file():
            log.warning("ImageNet weights for %s are not cached at %s and cannot be downloaded here; the QA "
                        "backbone starts from random initialisation. To use them, download %s on a machine "
                        "with network access and copy it to that path (or pass its path as `pretrained`).",
                        backbone, path, weights.url)
            return False
    if not path.is_file():
        raise FileNotFoundError(f"ImageNet weights file {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    rename = {"layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
    mapped = {}
    for k, v in state.items():
        head, _, rest = k.partition(".")
        if head == "fc":
            continue
        mapped[f"{rename.get(head, head)}.{rest}" if rest else k] = v
    missing, unexpected = encoder.load_state_dict(mapped, strict=False)
    bad = [m for m in missing if not m.startswith(("conv1_p", "conv1_m", "conv1_n", "mean", "std"))]
    if bad or unexpected:
        raise RuntimeError(f"{path} is not a torchvision {backbone} state dict (missing {bad[:5]}, "
                           f"unexpected {unexpected[:5]})")
    log.info("QA backbone initialised from ImageNet weights %s", path)
    return True


# -- checkpoints -----------------------------------------------------------------------
QA_LAYOUT = ("a QA network: the published assess_net.pt (a state dict with Encoder.conv1_p.weight, Encoder.conv1.*, "
             "Encoder.bn1.*, Encoder.res2..res5.*, Encoder.mean/std and fc1.weight/bias) or this project's "
             "{'model': state dict, 'meta': {...}} from quality_assessment.py")


def infer_backbone(state: dict[str, torch.Tensor], path: str | os.PathLike = "the state dict") -> str:
    """'resnet50' or 'resnet18' from a QA state dict (fc1 width); CheckpointError naming ``path`` when
    it has no fc1.weight (not a QA network)."""
    from core.checkpoint import CheckpointError

    w = state.get("fc1.weight")
    if not isinstance(w, torch.Tensor) or w.dim() != 2:
        raise CheckpointError(f"{path} has no 2-D fc1.weight, so it is not a QA network; expected {QA_LAYOUT}")
    width = w.shape[1]
    for name, c in BACKBONES.items():
        if c == width:
            return name
    raise ValueError(f"fc1.weight has {width} inputs: not a known QA backbone ({BACKBONES})")


def _fit_unused(net: QualityNet, state: dict[str, torch.Tensor]) -> None:
    """Give the unused layers and the mean/std buffers the checkpoint's shapes (their shapes in the published
    file are not documented; they take no part in the forward pass except mean/std, whose values matter
    but whose layout ((1,3,1,1) or (3,1,1)) does not)."""
    enc = net.Encoder
    for name in ("conv1_m", "conv1_n"):
        for p in ("weight", "bias"):
            key = f"Encoder.{name}.{p}"
            mod = getattr(enc, name)
            cur = getattr(mod, p)
            if key in state and (cur is None or cur.shape != state[key].shape):
                setattr(mod, p, nn.Parameter(torch.zeros_like(state[key], device=enc.conv1.weight.device)))
    for name in ("mean", "std"):
        key = f"Encoder.{name}"
        if key in state and state[key].numel() == 3:
            state[key] = state[key].reshape(1, 3, 1, 1)


def load_quality_net(path: str | os.PathLike, device: torch.device | str = "cpu",
                     backbone: str | None = None) -> QualityNet:
    """Load a QA network from ``path`` strictly, on ``device``, in eval mode.

    Accepts our checkpoints (``{'model': state, 'meta': {backbone, crop_size, min_size}, ...}``) and bare
    state dicts such as the published ``assess_net.pt`` (``module.`` prefix stripped; backbone inferred
    from fc1's width unless given; ResNet-50 published crops: 256 px, min ROI 128 px).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"QA weights {path} not found: train them with `python quality_assessment.py` "
                                f"or place the published assess_net.pt there")
    from core.checkpoint import load, load_into, state_dict_of

    ckpt = load(path, expected=QA_LAYOUT, map_location=device,
                fix="train it again (`python quality_assessment.py`) or download the published assess_net.pt again")
    meta = dict(ckpt.get("meta") or {}) if isinstance(ckpt, dict) and isinstance(ckpt.get("model"), dict) else {}
    state = dict(state_dict_of(ckpt, path, expected=QA_LAYOUT, wrappers=("model", "state_dict")))
    found = meta.get("backbone") or infer_backbone(state, path)
    if backbone is not None and backbone != found:
        raise ValueError(f"{path} holds a {found} QA network, not {backbone}")
    if not meta:
        meta = dict(PUBLISHED, backbone=found) if found == "resnet50" else {"backbone": found}
    net = QualityNet(found, crop_size=meta.get("crop_size"), min_size=meta.get("min_size", 128))
    net.to(device)
    _fit_unused(net, state)
    # Checkpoints written before torch 0.4.1 lack BatchNorm's num_batches_tracked; it is unused in eval.
    for k, v in net.state_dict().items():
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    load_into(net, state, path, expected=QA_LAYOUT)
    net.source = str(path)
    return net.eval()


# -- inference ---------------------------------------------------------------------------
class QualityAssessor:
    """Predicted J&F of every object in every frame: the loop's ``QualityFn`` for the wild setting.

    ``assessor(frames, probs)`` with frames (T, H, W, 3) uint8 RGB and probs (T, K+1, H, W) float32 in [0, 1]
    (channel 0 background) returns (T, K) float32 in [0, 1]. Crops are made and scored ``batch_size`` at a
    time, over frames and objects together.
    """

    def __init__(self, net: QualityNet, device: torch.device | str = "cpu", batch_size: int = 32) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device).eval()
        self.batch_size = int(batch_size)
        #: the weights file (for error messages and the run identity); None for a network built in memory
        self.source = getattr(net, "source", None)
        self.weight_files = [self.source] if self.source else None

    @torch.no_grad()
    def __call__(self, frames: np.ndarray, probs: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        probs = np.asarray(probs, dtype=np.float32)
        T, H, W = frames.shape[:3]
        if probs.ndim != 4 or probs.shape[0] != T or probs.shape[2:] != (H, W):
            raise ValueError(f"probs {probs.shape} do not match frames {frames.shape}")
        K = probs.shape[1] - 1
        if K < 1:
            return np.zeros((T, 0), np.float32)
        boxes = roi_boxes(probs[:, 1:].reshape(T * K, H, W), min_size=self.net.min_size)   # (T*K, 4)
        out = np.empty(T * K, np.float32)
        step = max(1, self.batch_size // K)           # frames per batch
        for t0 in range(0, T, step):
            t1 = min(T, t0 + step)
            fr = torch.from_numpy(frames[t0:t1]).to(self.device).permute(0, 3, 1, 2).float().div_(255)
            pm = torch.from_numpy(probs[t0:t1, 1:]).to(self.device).reshape(-1, 1, H, W)
            bx = torch.from_numpy(boxes[t0 * K:t1 * K]).to(self.device)
            idx = torch.arange(t1 - t0, device=self.device).repeat_interleave(K)
            img, pr = crop_pairs(fr, pm, bx, idx, self.net.crop_size)
            out[t0 * K:t1 * K] = self.net(img, pr).float().cpu().numpy()
        return np.clip(out.reshape(T, K), 0.0, 1.0)


__all__ = ["BACKBONES", "DEFAULT_BACKBONE", "DEFAULT_CROP", "PUBLISHED", "QualityAssessor", "QualityEncoder",
           "QualityNet", "infer_backbone", "load_imagenet", "load_quality_net"]
