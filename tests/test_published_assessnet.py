"""The QA network with the published AssessNet's weights: a random state dict in the published key layout
(``module.`` prefix, ResNet-50 stages as ``res2..res5``) loads strictly into ``QualityNet``, and our crop
(agent/roi.py) + network give what the published code computes, on the three inputs where our earlier crop
differed: an empty map, a soft map touching the border, a small object.

The reference here is an independent re-statement of the published arithmetic (PROTOCOL.md §6): the ROI per
axis in plain Python, ``theta`` for ``F.affine_grid(align_corners=True)``, and the forward pass through a
torchvision ResNet-50 holding the same tensors. Nothing of agent/roi.py or agent/quality.py is used for it.
"""
import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from agent.quality import load_quality_net
from agent.roi import crop_pairs, roi_boxes
from tests.helpers import torch_threads

H, W = 120, 200
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def published_axis(idx: list[int], n: int) -> tuple[float, float]:
    """Centre and size of the published ROI on one axis; idx: indices holding (prob > 0.5) >= 0.49."""
    if idx:
        lo, hi = min(idx), max(idx)
    else:
        lo, hi = 0, n
    if hi - lo < 128:
        r = 128 - (hi - lo)
        lo -= int(r / 2)
        hi += int(r / 2)
    s0 = hi - lo + 1
    lo = max(-5, lo - 0.25 * s0)
    hi = min(n + 5, hi + 0.25 * s0)
    return (hi + lo) / 2, hi - lo + 1


def published_crop(image: torch.Tensor, prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """image (3, H, W) in [0, 1], prob (H, W) -> 256x256 crops as the published code makes them."""
    m = (prob > 0.5).float()
    ys = sorted({int(v) for v in torch.nonzero(m >= 0.49)[:, 0]})
    xs = sorted({int(v) for v in torch.nonzero(m >= 0.49)[:, 1]})
    cy, h = published_axis(ys, H)
    cx, w = published_axis(xs, W)
    theta = torch.tensor([[[(2 * w / 2) / (W - 1), 0.0, (2 * cx - (W - 1)) / (W - 1)],
                           [0.0, (2 * h / 2) / (H - 1), (2 * cy - (H - 1)) / (H - 1)]]], dtype=torch.float32)
    grid = F.affine_grid(theta, [1, 4, 256, 256], align_corners=True)
    both = torch.cat([image, prob[None]], 0)[None]
    crop = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    return crop[:3], crop[3:]


def reference_forward(tv: torch.nn.Module, conv1_p: torch.Tensor, fc_w: torch.Tensor, fc_b: torch.Tensor,
                      img: torch.Tensor, prob: torch.Tensor) -> float:
    """The published AssessNet forward on one 256-px crop, through a torchvision ResNet-50."""
    x = (img[None] - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    x = tv.conv1(x) + F.conv2d(prob[None], conv1_p, stride=2, padding=3)
    x = tv.maxpool(tv.relu(tv.bn1(x)))
    x = tv.layer4(tv.layer3(tv.layer2(tv.layer1(x))))
    x = F.avg_pool2d(x, 8).flatten(1)
    return float(x @ fc_w.T + fc_b)


def three_maps() -> np.ndarray:
    """(3, H, W) float32: empty (soft values only), soft and touching the border, small object."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    empty = 0.45 * np.exp(-((yy - 60) ** 2 + (xx - 90) ** 2) / 800.0)
    soft = 0.95 * np.exp(-((yy - 5) ** 2 / 300.0 + (xx - 195) ** 2 / 600.0))      # > 0.5 up to the corner
    small = np.full((H, W), 0.1, np.float32)
    small[50:60, 80:100] = 0.9
    return np.stack([empty, soft, small]).astype(np.float32)


def test_published_assessnet_outputs(tmp_path):
    torch.manual_seed(0)
    tv = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():
        for mod in tv.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.normal_(1, 0.1)
                mod.bias.normal_(0, 0.1)
    conv1_p = torch.randn(64, 1, 7, 7) * 0.1
    fc_w, fc_b = torch.randn(1, 2048) * 0.05, torch.randn(1)
    stage = {"layer1": "res2", "layer2": "res3", "layer3": "res4", "layer4": "res5"}
    state = {}
    for k, v in tv.state_dict().items():
        head, _, rest = k.partition(".")
        if head != "fc":
            state[f"module.Encoder.{stage.get(head, head)}.{rest}"] = v.clone()
    state.update({"module.Encoder.conv1_p.weight": conv1_p,
                  "module.Encoder.conv1_m.weight": torch.randn(64, 1, 7, 7),
                  "module.Encoder.conv1_m.bias": torch.randn(64),
                  "module.Encoder.conv1_n.weight": torch.randn(64, 1, 7, 7),
                  "module.Encoder.mean": torch.tensor(MEAN).view(1, 3, 1, 1),
                  "module.Encoder.std": torch.tensor(STD).view(1, 3, 1, 1),
                  "module.fc1.weight": fc_w, "module.fc1.bias": fc_b})
    torch.save(state, tmp_path / "assess_net.pt")
    net = load_quality_net(tmp_path / "assess_net.pt")           # strict
    assert net.backbone == "resnet50" and net.crop_size == 256 and net.min_size == 128

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    maps = three_maps()
    image = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    with torch.no_grad(), torch_threads(1):
        expected = [reference_forward(tv, conv1_p, fc_w, fc_b, *published_crop(image, torch.from_numpy(p)))
                    for p in maps]
        boxes = torch.from_numpy(roi_boxes(maps, min_size=net.min_size))
        img, pm = crop_pairs(image[None], torch.from_numpy(maps)[:, None], boxes, torch.zeros(3, dtype=torch.long),
                             net.crop_size)
        ours = net(img, pm).tolist()
    assert len(set(np.round(expected, 3))) == 3                     # three different inputs
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)
