"""QA network (agent/quality.py): published key layout, loading, batched inference."""
import logging

import numpy as np
import pytest
import torch
import torchvision

from agent.quality import QualityAssessor, QualityNet, load_quality_net
from tests.helpers import torch_threads


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks run faster on one thread (and much faster when other processes share the cores)."""
    with torch_threads(1):
        yield


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


def _boundary(m: np.ndarray) -> np.ndarray:
    """The benchmark's boundary map, re-stated: a pixel is boundary where the mask differs from its right,
    lower or lower-right neighbour (last row / column: right / lower only; the corner never)."""
    m = m.astype(bool)
    e, s, se = np.zeros_like(m), np.zeros_like(m), np.zeros_like(m)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = m[:, 1:], m[1:, :], m[1:, 1:]
    b = (m ^ e) | (m ^ s) | (m ^ se)
    b[-1, :] = m[-1, :] ^ e[-1, :]
    b[:, -1] = m[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _dilate(b: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation with the disk x^2 + y^2 <= r^2."""
    H, W = b.shape
    out = np.zeros_like(b)
    pad = np.pad(b, r)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                out |= pad[r + dy:r + dy + H, r + dx:r + dx + W]
    return out


def _f_by_hand(true: np.ndarray, pred: np.ndarray) -> float:
    """The benchmark's boundary F-measure (tolerance ceil(0.008 x image diagonal) px), re-stated."""
    r = int(np.ceil(0.008 * np.hypot(*true.shape)))
    bt, bp = _boundary(true), _boundary(pred)
    nt, np_ = bt.sum(), bp.sum()
    if nt == 0 and np_ == 0:
        return 1.0
    if nt == 0 or np_ == 0:
        return 0.0
    precision = (bp & _dilate(bt, r)).sum() / np_
    recall = (bt & _dilate(bp, r)).sum() / nt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# -- data generation, training and the wild setting on a tiny generated set ----------------------
@pytest.fixture(scope="module")
def qa_data(tiny_davis, tmp_path_factory):
    from interaction.qa_runs import generate_qa_data
    from VOS.registry import build_backend

    out = tmp_path_factory.mktemp("qa") / "quality_assessment"
    index = generate_qa_data(tiny_davis, "val", build_backend("classic"), out, rounds=3, progress=False)
    return tiny_davis, out, index


def test_generated_layout_targets_and_resume(qa_data):
    from PIL import Image

    from agent.qa_data import read_index
    from interaction.qa_runs import generate_qa_data
    from VOS.registry import build_backend

    spec, out, index = qa_data
    # 2 val sequences x 1 scribble x 3 rounds x 2 objects x 6 frames
    assert len(index) == 2 * 3 * 2 * 6
    assert sorted(index["sequence"].unique()) == ["bars-a", "bars-b"]
    assert set(index["interaction"]) == {1, 2, 3} and set(index["scribble"]) == {1}
    r = index[(index.sequence == "bars-b") & (index.interaction == 2) & (index.object == 2) & (index.frame == 4)]
    assert r["prob"].item() == "interaction-2/scribble-1/bars-b/probs/2/00004.png"
    gt = spec.annotations("bars-b")
    for _, row in index[index.sequence == "bars-b"].iterrows():
        q = np.asarray(Image.open(out / row["prob"]))
        assert q.dtype == np.uint8 and q.shape == gt.shape[1:]
        pred, true = q > 204, gt[row["frame"]] == row["object"]      # prob > 0.8 <=> round(255 p) > 204
        union = (pred | true).sum()
        j = 1.0 if union == 0 else (pred & true).sum() / union       # J by hand
        assert row["both_empty"] == int(union == 0)
        assert row["target"] == pytest.approx((j + _f_by_hand(true, pred)) / 2, abs=2e-6)   # CSV: 6 decimals
    assert 0 < (index["target"] < 0.999).sum() < len(index)          # imperfect frames are among them
    # a rerun finds every sample indexed and changes nothing
    before = (out / "index.csv").read_text()
    again = generate_qa_data(spec, "val", build_backend("classic"), out, rounds=3, progress=False)
    assert (out / "index.csv").read_text() == before and len(again) == len(read_index(out))
    from core.identity import IdentityMismatch

    with pytest.raises(IdentityMismatch, match="rounds: 3 there, 4 now"):
        generate_qa_data(spec, "val", build_backend("classic"), out, rounds=4, progress=False)


def test_augmentation_identity_and_alignment():
    from agent.qa_data import Augment

    rng = np.random.default_rng(0)
    prob = np.zeros((40, 60), np.float32)
    prob[10:25, 5:50] = 1.0
    img = np.repeat((prob * 255).astype(np.uint8)[..., None], 3, axis=2)
    none = Augment(resize=None, crop=0, scale=(1, 1), shear=0, rotate=0, brightness=0, contrast=0, flip=False)
    out_img, out_prob = none(rng, img, prob)
    np.testing.assert_allclose(out_img, img / 255.0, atol=1e-6)
    np.testing.assert_allclose(out_prob, prob, atol=1e-6)
    # resize maps pixel centres: source (0.5, 0.5) of a 60x40 frame -> (0, 0) of a 30x20 one
    m, size = Augment(resize=(30, 20), crop=0, scale=(1, 1), shear=0, rotate=0, flip=False).matrix(rng, (60, 40))
    assert size == (30, 20)
    np.testing.assert_allclose(m @ [0.5, 0.5, 1], [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(m @ [58.5, 38.5, 1], [29, 19, 1], atol=1e-9)   # centre of the last 2x2 block
    # random geometry is the same for frame and map
    geo = Augment(resize=(90, 50), brightness=0, contrast=0)
    for seed in range(5):
        a_img, a_prob = geo(np.random.default_rng(seed), img, prob)
        assert a_img.shape == (50, 90, 3) and a_prob.shape == (50, 90)
        assert np.abs(a_img[..., 0] - a_prob).max() < 2 / 255
        assert a_prob.max() > 0.9          # the object is still there


def test_split_by_sequence_holds_out_whole_sequences():
    import pandas as pd

    from agent.qa_data import split_by_sequence

    df = pd.DataFrame({"sequence": [f"s{i % 7}" for i in range(70)], "target": np.linspace(0, 1, 70)})
    tr, va = split_by_sequence(df, 0.3, seed=1)
    assert va["sequence"].nunique() == 3 and tr["sequence"].nunique() == 4      # ceil(0.3 * 7)
    assert not set(tr["sequence"]) & set(va["sequence"]) and len(tr) + len(va) == 70
    tr2, va2 = split_by_sequence(df, 0.3, seed=1)
    assert set(va2["sequence"]) == set(va["sequence"])


def test_training_steps_reduce_loss(qa_data):
    from torch.utils.data import DataLoader, Subset

    from agent.qa_data import QADataset, init_head, train_epoch

    spec, out, index = qa_data
    torch.manual_seed(0)
    ds = QADataset(index, spec.root, out, crop_size=32, min_size=16, augment=None)
    # The classic backend segments the tiny bars almost perfectly (targets ~0.95-1): spread the 16 targets
    # over [0.2, 1] so that there is something to fit.
    pick = list(range(0, len(ds), len(ds) // 16))[:16]
    ds.targets[pick] = np.linspace(0.2, 1.0, 16, dtype=np.float32)
    batch = DataLoader(Subset(ds, pick), batch_size=16)
    net = QualityNet("resnet18", crop_size=32, min_size=16)
    init_head(net, float(ds.targets[pick].mean()))
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    losses = [train_epoch(net, batch, opt) for _ in range(5)]   # each value: the loss before that step
    assert losses[0] == pytest.approx(ds.targets[pick].var(), rel=1e-4)   # predictions start at the mean
    assert losses[-1] < 0.5 * losses[0]


def test_training_history_checkpoint_and_resume(qa_data, tmp_path):
    from agent.qa_data import QADataset, train_quality

    spec, out, index = qa_data
    torch.manual_seed(0)
    ds = QADataset(index.iloc[::4], spec.root, out, crop_size=32, min_size=16, augment=None)
    net = QualityNet("resnet18", crop_size=32, min_size=16)
    hist = train_quality(net, ds, ds, epochs=2, ckpt_path=tmp_path / "assess_net.pt",
                         history_path=tmp_path / "h.json", lr=1e-3, batch_size=16, progress=False)
    assert [h["epoch"] for h in hist] == [1, 2]
    assert hist[1]["lr"] == pytest.approx(0.95e-3)                 # ExponentialLR per epoch
    assert {"val_pearson", "val_spearman", "val_mae", "train_loss"} <= set(hist[-1])
    assert (tmp_path / "h.csv").exists()
    # a rerun with more epochs continues where the checkpoint stopped
    net2 = QualityNet("resnet18", crop_size=32, min_size=16)
    hist2 = train_quality(net2, ds, ds, epochs=3, ckpt_path=tmp_path / "assess_net.pt", lr=1e-3, batch_size=16,
                          progress=False)
    assert [h["epoch"] for h in hist2] == [1, 2, 3] and hist2[:2] == hist
    assert hist2[2]["lr"] == pytest.approx(1e-3 * 0.95 ** 2)
    # our checkpoint loads strictly for inference, with its crop settings
    loaded = load_quality_net(tmp_path / "assess_net.pt")
    assert loaded.crop_size == 32 and loaded.min_size == 16


def test_wild_setting_end_to_end(tiny_davis, tmp_path):
    """The wild loop's quality is the QA network's prediction on the round's probabilities, averaged over
    objects, and wild-worst follows it. The network: random weights with a small head around 0.5, saved
    as our checkpoint and loaded back."""
    from agent.selection import WorstSelector
    from interaction.loop import run_episodes
    from VOS.registry import build_backend

    torch.manual_seed(0)
    net = QualityNet("resnet18", crop_size=32, min_size=16)
    with torch.no_grad():
        net.fc1.weight.mul_(0.05)
        net.fc1.bias.fill_(0.5)
    torch.save({"model": net.state_dict(), "meta": net.meta()}, tmp_path / "assess_net.pt")
    qa = QualityAssessor(load_quality_net(tmp_path / "assess_net.pt"), "cpu", batch_size=16)
    frames = tiny_davis.frames("bars-a")
    expected = []
    recs = run_episodes(tiny_davis, [("bars-a", 1)], "val", build_backend("classic"), WorstSelector(), 3,
                        setting="wild", quality_fn=qa, progress=False,
                        on_round=lambda rec, rr, out: expected.append(qa(frames, out.probs).mean(axis=1)))
    rounds = recs[0].rounds
    assert len(rounds) == 3 and frames.shape[0] == 6
    for r, e in zip(rounds, expected, strict=True):
        assert r.quality is not None and r.quality.shape == (6,)
        np.testing.assert_allclose(r.quality, e, rtol=1e-6)
        assert 0 < r.quality.min() and r.quality.max() < 1 and np.ptp(r.quality) > 0   # not clipped, not flat
    # wild-worst asks for the frame the QA network rates worst among those not annotated yet
    for i, r in enumerate(rounds[:-1]):
        masked = r.quality.copy()
        masked[[x.frame for x in rounds[:i + 1]]] = np.inf
        assert r.next_frame == int(np.argmin(masked))
