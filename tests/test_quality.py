"""QA network (agent/quality.py): published key layout, loading, batched inference."""
import logging

import numpy as np
import pytest
import torch
import torchvision

from agent.quality import QualityAssessor, QualityNet, load_quality_net

STAGES = [("res2", 64, 3), ("res3", 128, 4), ("res4", 256, 6), ("res5", 512, 3)]   # ResNet-50


def _bn(prefix, c):
    return {f"{prefix}.weight": torch.rand(c), f"{prefix}.bias": torch.rand(c),
            f"{prefix}.running_mean": torch.rand(c), f"{prefix}.running_var": torch.rand(c) + 0.5,
            f"{prefix}.num_batches_tracked": torch.tensor(7)}


def published_state(prefix="module."):
    """The published assess_net.pt layout, written from the PROTOCOL key list and ResNet-50 shapes."""
    s = {"Encoder.conv1_p.weight": torch.randn(64, 1, 7, 7),
         "Encoder.conv1_m.weight": torch.randn(64, 1, 7, 7), "Encoder.conv1_m.bias": torch.randn(64),
         "Encoder.conv1_n.weight": torch.randn(64, 1, 7, 7),
         "Encoder.conv1.weight": torch.randn(64, 3, 7, 7),
         "Encoder.mean": torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
         "Encoder.std": torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
         "fc1.weight": torch.randn(1, 2048), "fc1.bias": torch.randn(1)}
    s.update(_bn("Encoder.bn1", 64))
    inplanes = 64
    for name, planes, blocks in STAGES:
        for b in range(blocks):
            p = f"Encoder.{name}.{b}"
            s[f"{p}.conv1.weight"] = torch.randn(planes, inplanes, 1, 1)
            s.update(_bn(f"{p}.bn1", planes))
            s[f"{p}.conv2.weight"] = torch.randn(planes, planes, 3, 3)
            s.update(_bn(f"{p}.bn2", planes))
            s[f"{p}.conv3.weight"] = torch.randn(planes * 4, planes, 1, 1)
            s.update(_bn(f"{p}.bn3", planes * 4))
            if b == 0:
                s[f"{p}.downsample.0.weight"] = torch.randn(planes * 4, inplanes, 1, 1)
                s.update(_bn(f"{p}.downsample.1", planes * 4))
            inplanes = planes * 4
    return {prefix + k: v for k, v in s.items()}


def test_published_layout_loads_strictly(tmp_path):
    torch.manual_seed(0)
    state = published_state()
    path = tmp_path / "assess_net.pt"
    torch.save(state, path)
    net = load_quality_net(path, "cpu")
    assert net.backbone == "resnet50" and net.crop_size == 256 and net.min_size == 128
    own = net.state_dict()
    assert set(own) == {k[len("module."):] for k in state}
    for k, v in state.items():
        torch.testing.assert_close(own[k[len("module."):]], v)
    # our freshly built resnet50 has exactly this key set and these shapes
    fresh = QualityNet("resnet50").state_dict()
    assert {k: tuple(v.shape) for k, v in fresh.items()} == {k[7:]: tuple(v.shape) for k, v in state.items()}
    with pytest.raises(ValueError):
        load_quality_net(path, "cpu", backbone="resnet18")


def test_published_layout_variants_and_errors(tmp_path):
    torch.manual_seed(1)
    state = published_state(prefix="")
    # an old checkpoint without num_batches_tracked, mean/std as (3,1,1) and other shapes for unused layers
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    state["Encoder.mean"] = state["Encoder.mean"].view(3, 1, 1)
    state["Encoder.conv1_m.weight"] = torch.randn(64, 4, 7, 7)
    torch.save(state, tmp_path / "a.pt")
    net = load_quality_net(tmp_path / "a.pt")
    torch.testing.assert_close(net.Encoder.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    # a missing used key is an error (strict)
    del state["Encoder.res3.0.conv2.weight"]
    torch.save(state, tmp_path / "b.pt")
    with pytest.raises(RuntimeError, match="res3.0.conv2.weight"):
        load_quality_net(tmp_path / "b.pt")
    with pytest.raises(FileNotFoundError):
        load_quality_net(tmp_path / "missing.pt")


def test_forward_shape_and_own_checkpoint_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = QualityNet("resnet18").eval()
    img, prob = torch.rand(2, 3, 128, 128), torch.rand(2, 1, 128, 128)
    y = net(img, prob)
    assert y.shape == (2,)
    torch.save({"model": {"module." + k: v for k, v in net.state_dict().items()},
                "meta": {**net.meta(), "min_size": 96}}, tmp_path / "own.pt")
    back = load_quality_net(tmp_path / "own.pt")
    assert back.backbone == "resnet18" and back.crop_size == 128 and back.min_size == 96
    torch.testing.assert_close(back(img, prob), y)
    # the probability map matters (conv1_p is in the path)
    assert not torch.allclose(net(img, torch.zeros_like(prob)), y)


def test_pretrained_without_cache_is_a_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with caplog.at_level(logging.WARNING):
        net = QualityNet("resnet18", pretrained=True)
    assert net.pretrained is False
    assert "cannot be downloaded" in caplog.text
    # a torchvision state dict given as a file is used, stages renamed
    torch.manual_seed(3)
    tv = torchvision.models.resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "r18.pth")
    net = QualityNet("resnet18", pretrained=str(tmp_path / "r18.pth"))
    assert net.pretrained is True
    torch.testing.assert_close(net.Encoder.res3[1].conv2.weight, tv.layer2[1].conv2.weight)
    torch.testing.assert_close(net.Encoder.conv1.weight, tv.conv1.weight)


def test_assessor_shape_range_and_batching():
    torch.manual_seed(0)
    net = QualityNet("resnet18", crop_size=64, min_size=32)
    with torch.no_grad():
        net.fc1.bias.fill_(0.5)
    rng = np.random.default_rng(0)
    T, K, H, W = 5, 2, 60, 80
    frames = rng.integers(0, 256, (T, H, W, 3), dtype=np.uint8)
    probs = rng.random((T, K + 1, H, W)).astype(np.float32)
    probs[2, 1] = 0.0                                   # an empty map: whole-frame ROI
    q = QualityAssessor(net, "cpu", batch_size=32)(frames, probs)
    assert q.shape == (T, K) and q.dtype == np.float32
    assert (q >= 0).all() and (q <= 1).all()
    q1 = QualityAssessor(net, "cpu", batch_size=1)(frames, probs)
    np.testing.assert_allclose(q, q1, atol=1e-5)
    # each entry is the network on that object's crop alone
    one = QualityAssessor(net, "cpu")(frames[3:4], probs[3:4, [0, 2]])
    np.testing.assert_allclose(one[0, 0], q[3, 1], atol=1e-5)
    # large fc bias: clipped to 1
    with torch.no_grad():
        net.fc1.bias.fill_(50.0)
    assert (QualityAssessor(net, "cpu")(frames, probs) == 1.0).all()
