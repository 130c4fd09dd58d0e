"""The ATNet adapter (VOS/atnet.py) on the user's checkout, with random weights, on CPU.

The network is built from the checkout with random weights, saved by the test in the layout of
ATNet-checkpoint.pth (ATnet's plain state dict) and loaded back through the adapter. Two rounds
run on a 6-frame 64x96 sequence with 2 elongated objects; scribbles come from the benchmark's
robot (min_nb_nodes 2, as the published ATNet evaluation).

With random weights ATNet's sigmoid outputs stay near 0.5, below the 0.8 threshold, so its masks
are all background: "the mask moves toward the scribble" cannot be asserted on the raw random
network. What is asserted instead: shapes, ranges, the fusion rule, that round 2 changes the
annotated frame's output and nothing outside the published propagation range, that the network
receives the scribble where the robot drew it, and, with A-Net's output replaced by a read-out of
its own scribble input, that the annotated frame's mask takes the scribbled labels at the original
resolution (so padding, cropping and fusion are right).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import checkout_path, needs_checkout, require_checkout_path, two_bars_clip
from VOS._checkout import CheckoutMissing
from VOS._correlation import Correlation, correlation

ATNET = checkout_path("atnet")          # VOS/ATNet, else ../shared/vos-checkouts/ATNet
needs_atnet = needs_checkout("atnet")
T, H, W, K = 6, 64, 96, 2
FIRST, SECOND = 2, 4


# -- the correlation layer ------------------------------------------------------------------------
def _correlation_loop(a: np.ndarray, b: np.ndarray, pad: int, ks: int, md: int, s1: int, s2: int) -> np.ndarray:
    """FlowNet2's correlation_forward written as its loops, element by element (float64)."""
    n, c, h, w = a.shape
    kr = (ks - 1) // 2
    r = md // s2
    side = 2 * r + 1
    pa = np.pad(a, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    pb = np.pad(b, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = int(np.ceil((h + 2 * pad - 2 * (md + kr)) / s1))
    ow = int(np.ceil((w + 2 * pad - 2 * (md + kr)) / s1))
    out = np.zeros((n, side * side, oh, ow))

    def at(x, i, ch, y, xx):   # zero outside the padded tensor
        return x[i, ch, y, xx] if 0 <= y < x.shape[2] and 0 <= xx < x.shape[3] else 0.0

    for i in range(n):
        for oy in range(oh):
            for ox in range(ow):
                y1, x1 = oy * s1 + md, ox * s1 + md
                for tj in range(-r, r + 1):
                    for ti in range(-r, r + 1):
                        acc = 0.0
                        for j in range(-kr, kr + 1):
                            for q in range(-kr, kr + 1):
                                for ch in range(c):
                                    acc += at(pa, i, ch, y1 + j, x1 + q) * at(pb, i, ch, y1 + tj * s2 + j, x1 + ti * s2 + q)
                        out[i, (tj + r) * side + ti + r, oy, ox] = acc / (ks * ks * c)
    return out


@pytest.mark.parametrize("shape,pad,ks,md,s1,s2", [
    ((1, 3, 5, 7), 8, 1, 8, 1, 2),    # ATNet's setting (displacement 4 x stride 2)
    ((2, 2, 6, 5), 2, 1, 2, 1, 1),
    ((1, 2, 7, 8), 3, 3, 2, 2, 1),    # kernel 3, stride1 2
])
def test_correlation_equals_direct_loops(shape, pad, ks, md, s1, s2):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=shape), rng.normal(size=shape)
    want = _correlation_loop(a, b, pad, ks, md, s1, s2)
    got = correlation(torch.tensor(a), torch.tensor(b), pad, ks, md, s1, s2).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    layer = Correlation(pad_size=pad, kernel_size=ks, max_displacement=md, stride1=s1, stride2=s2)
    np.testing.assert_allclose(layer(torch.tensor(a), torch.tensor(b)).numpy(), want, rtol=1e-10, atol=1e-12)


def test_missing_checkout_names_clone_command(tmp_path):
    from VOS.atnet import ATNetBackend

    with pytest.raises(CheckoutMissing, match=r"git clone https://github\.com/yuk6heo/IVOS-ATNet VOS/ATNet"):
        ATNetBackend("cpu", checkout=tmp_path / "ATNet")


# -- the network, two rounds ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """Random ATnet weights saved as ATNet-checkpoint.pth is laid out (plain state dict); built
    with ImageNet downloads made impossible."""
    require_checkout_path("atnet")
    import torch.hub
    import torch.utils.model_zoo as zoo

    from VOS.atnet import build_network, load_atnet_checkout

    def refuse(*_a, **_k):
        raise AssertionError("ImageNet download attempted while building ATNet")

    saved = zoo.load_url, torch.hub.load_state_dict_from_url
    zoo.load_url = torch.hub.load_state_dict_from_url = refuse
    try:
        torch.manual_seed(0)
        net = build_network(load_atnet_checkout(ATNET))
    finally:
        zoo.load_url, torch.hub.load_state_dict_from_url = saved
    path = tmp_path_factory.mktemp("atnet") / "ATNet-checkpoint.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def run(checkpoint):
    """Two rounds: robot scribbles on frame 2 (vs. an empty prediction), then on frame 4 (vs.
    round 1's masks)."""
    from datasets import davis_compat as dc
    from VOS.atnet import ATNetBackend

    frames, gt = two_bars_clip(T, H, W)
    robot = dc.robot_for(2)
    backend = ATNetBackend("cpu", checkout=ATNET, weights=checkpoint)
    backend.start(frames, K)
    scr1 = robot.interact("tiny", np.zeros((T, H, W), np.int64), gt.astype(np.int64), nb_objects=K, frame=FIRST)
    out1 = backend.interact(FIRST, scr1)
    state1 = backend.get_state()
    scr2 = robot.interact("tiny", out1.masks.astype(np.int64), gt.astype(np.int64), nb_objects=K, frame=SECOND)
    out2 = backend.interact(SECOND, scr2)
    return dict(backend=backend, frames=frames, gt=gt, scr1=scr1, scr2=scr2, out1=out1, out2=out2, state1=state1)


@needs_atnet
def test_outputs_have_the_interface_shapes_and_ranges(run):
    for out in (run["out1"], run["out2"]):
        assert out.masks.shape == (T, H, W) and out.masks.dtype == np.uint8
        assert out.probs.shape == (T, K + 1, H, W) and out.probs.dtype == np.float32
        assert np.isfinite(out.probs).all() and out.probs.min() >= 0 and out.probs.max() <= 1
        obj = out.probs[:, 1:]
        np.testing.assert_allclose(out.probs[:, 0], 1 - obj.max(1), atol=1e-6)
        # the published fusion: best object per pixel if its probability exceeds 0.8
        want = np.where(obj.max(1) > 0.8, obj.argmax(1) + 1, 0)
        np.testing.assert_array_equal(out.masks, want)
        assert {"interaction", "propagation", "total"} <= set(out.timings)


@needs_atnet
def test_round_two_changes_the_annotated_frame_and_only_the_propagated_range(run):
    p1, p2 = run["out1"].probs, run["out2"].probs
    diff = np.abs(p2 - p1).reshape(T, -1).max(1)
    assert diff[SECOND] > 1e-3                   # A-Net saw new scribbles on frame 4
    # frames 0..2 lie beyond 99% of the way back to the earlier annotation (frame 2): untouched
    assert np.all(diff[: FIRST + 1] == 0)
    assert np.all(diff[FIRST + 1:] > 0)


def _before_round_two(run):
    """A second handle on the run's backend (same network), set to its state after round 1."""
    b = run["backend"]
    b2 = type(b).__new__(type(b))
    b2.__dict__.update(b.__dict__)
    b2.set_state(run["state1"])
    return b2


@needs_atnet
def test_network_input_carries_the_scribbles(run):
    """A-Net's scribble channels at round 2 (cropped back to 64x96) are positive where the robot
    drew each object's strokes, and the previous-mask channel is round 1's mask."""
    b2 = _before_round_two(run)
    b2.scribbles = b2.scribbles + [(SECOND, run["scr2"])]
    b2.annotated = b2.annotated + [SECOND]
    x = b2._crop(b2._interaction_input(SECOND, first_round=False)).numpy()   # (K, 3, H, W)
    assert x.shape == (K, 3, H, W)
    strokes = run["scr2"]["scribbles"][SECOND]
    assert strokes, "the robot drew nothing on frame 4"
    for k in range(1, K + 1):
        np.testing.assert_array_equal(x[k - 1, 0], (run["out1"].masks[SECOND] == k).astype(np.float32))
        pts = [np.floor(np.asarray(s["path"]) * [W, H]).astype(int) for s in strokes if s["object_id"] == k]
        if not pts:
            continue
        pts = np.concatenate(pts)
        inside = (pts[:, 0] > 2) & (pts[:, 0] < W - 3) & (pts[:, 1] > 2) & (pts[:, 1] < H - 3)
        pts = pts[inside]
        assert np.all(x[k - 1, 1][pts[:, 1], pts[:, 0]] > 0.5)       # positive channel of object k
        # round 1 predicted no pixel of k, so no negative scribble may survive for k
        if not (run["out1"].masks[SECOND] == k).any():
            assert x[k - 1, 2].max() == 0


@needs_atnet
def test_scribbled_labels_reach_the_mask_at_original_size(run):
    """With A-Net's logits replaced by a read-out of its own scribble channels (features left as
    the network computes them), round 2's annotated frame takes each scribbled label on the
    pixels under the strokes: the adapter's padding, cropping and fusion put them in place."""
    b = _before_round_two(run)
    real = b.net.forward_ANet

    def read_out(x):
        _, feat = real(x)
        return 20.0 * (x[:, 4:5] - x[:, 5:6] - 0.3), feat     # input channels 3..5: prev/pos/neg

    b.net.forward_ANet = read_out
    try:
        out = b.interact(SECOND, run["scr2"])
    finally:
        del b.net.forward_ANet
    hit = 0
    for s in run["scr2"]["scribbles"][SECOND]:
        if s["object_id"] == 0:
            continue
        pts = np.floor(np.asarray(s["path"]) * [W, H]).astype(int)
        pts = pts[(pts[:, 0] > 2) & (pts[:, 0] < W - 3) & (pts[:, 1] > 2) & (pts[:, 1] < H - 3)]
        labels = out.masks[SECOND][pts[:, 1], pts[:, 0]]
        assert np.all(labels == s["object_id"]), (s["object_id"], np.unique(labels))
        hit += len(pts)
    assert hit > 10
    # the labels land where the ground truth has them (the robot scribbles inside the objects)
    m, gt = out.masks[SECOND], run["gt"][SECOND]
    for k in range(1, K + 1):
        assert (m == k).any() and ((m == k) & (gt == k)).sum() > 0.5 * (m == k).sum()


@needs_atnet
def test_shared_encoder_tnet_equals_checkout_forward(run):
    b = run["backend"]
    img = b._image(3)
    r2_prev = b.net.encoder_3ch(b._image(SECOND))[3].expand(K, -1, -1, -1)
    prev = torch.rand(K, 1, *b.padded_hw, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine, r2 = b._tnet(img, r2_prev, prev)
        theirs, r2_t = b.net.forward_TNet(b.anno_3ch_r5, img.expand(K, -1, -1, -1), b.anno_6ch_r5, r2_prev, prev)
    torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(r2, r2_t)


@needs_atnet
def test_trial_restores_state(run):
    b = run["backend"]
    before = b.get_state()
    with b.trial():
        scr = {"sequence": "tiny", "scribbles": [[] for _ in range(T)]}
        scr["scribbles"][5] = [{"path": [[0.2, 0.28], [0.6, 0.28]], "object_id": 1, "start_time": 0, "end_time": 1}]
        b.interact(5, scr)
        assert b.annotated[-1] == 5
    after = b.get_state()
    assert after["annotated"] == before["annotated"] == [FIRST, SECOND]
    assert torch.equal(after["prob_maps"], before["prob_maps"])
    assert len(after["anno_6ch_r5"]) == 2
    np.testing.assert_array_equal(after["final_masks"], before["final_masks"])
