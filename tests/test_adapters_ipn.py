"""The IPN adapter (VOS/ipn.py) on the user's checkout, with random weights, on CPU.

The interaction and propagation nets are built from the checkout with random weights, saved by
the test as I.pth / P.pth are laid out (state dicts of ``nn.DataParallel`` models: ``module.``
prefix) and loaded back through the adapter. Two rounds run on a 6-frame 64x96 sequence with 2
elongated objects; scribbles come from the benchmark's robot (min_nb_nodes 4, as the published
IPN evaluation).

With random weights nothing says where IPN's masks should go, so "the mask moves toward the
scribble" is not asserted on the raw network. Asserted instead: shapes, ranges, the soft
aggregation, that round 2 changes the annotated frame's output and leaves the frames before the
previous annotation exactly as they were (IPN's ``Get_weight``), that the loaded weights are the
saved ones, and, with the interaction net's output replaced by a read-out of its own scribble
inputs, that each object's scribbled pixels get that object's label at the original size.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from tests.helpers import checkout_path, needs_checkout, require_checkout_path, torch_threads, two_bars_clip
from VOS._checkout import CheckoutMissing

IPN = checkout_path("ipn")              # VOS/IPN, else ../shared/vos-checkouts/IPN
CLONE = "git clone https://github.com/zyy-cn/IPN VOS/IPN"
needs_ipn = needs_checkout("ipn")
T, H, W, K = 6, 64, 96, 2
FIRST, SECOND = 2, 4


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    with torch_threads(1):
        yield


def test_missing_checkout_names_clone_command(tmp_path):
    from VOS.ipn import IPNBackend

    with pytest.raises(CheckoutMissing, match=CLONE.replace(".", r"\.")):
        IPNBackend("cpu", checkout=tmp_path / "IPN")


def test_check_lists_checkout_and_both_weights(tmp_path):
    from VOS.ipn import IPNBackend

    items = IPNBackend.check(tmp_path)
    assert [ok for _, ok, _ in items] == [False, False, False]
    assert items[0][2] == CLONE
    assert str(tmp_path / "IPN" / "weights" / "I.pth") in items[1][2]
    assert str(tmp_path / "IPN" / "weights" / "P.pth") in items[2][2]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random Inet/Pnet weights saved with the ``module.`` prefix of the published files, built
    with TORCH_HOME pointing at an empty directory that must stay empty (no ImageNet download)."""
    require_checkout_path("ipn")
    from VOS._checkout import checkout_context
    from VOS.ipn import load_ipn_checkout

    d = tmp_path_factory.mktemp("ipn")
    home, old = d / "torch_home", os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(home)
    try:
        handle = load_ipn_checkout(IPN)
        torch.manual_seed(0)
        with checkout_context(handle):
            nets = {"I": handle["interaction_net"].Inet(), "P": handle["propagation_net"].Pnet()}
    finally:
        if old is None:
            del os.environ["TORCH_HOME"]
        else:
            os.environ["TORCH_HOME"] = old
    assert not home.exists() or not any(home.rglob("*.pth"))
    paths = {}
    for key, net in nets.items():
        paths[key] = d / f"{key}.pth"
        torch.save({"module." + k: v for k, v in net.state_dict().items()}, paths[key])
    probe = nets["P"].Decoder.pred2.weight.detach().clone()
    return paths, probe


@pytest.fixture(scope="module")
def run(weights):
    from datasets import davis_compat as dc
    from VOS.ipn import IPNBackend

    paths, _ = weights
    frames, gt = two_bars_clip(T, H, W)
    robot = dc.robot_for(4)
    backend = IPNBackend("cpu", checkout=IPN, weights_i=paths["I"], weights_p=paths["P"])
    backend.start(frames, K)
    scr1 = robot.interact("tiny", np.zeros((T, H, W), np.int64), gt.astype(np.int64), nb_objects=K, frame=FIRST)
    out1 = backend.interact(FIRST, scr1)
    scr2 = robot.interact("tiny", out1.masks.astype(np.int64), gt.astype(np.int64), nb_objects=K, frame=SECOND)
    out2 = backend.interact(SECOND, scr2)
    return dict(backend=backend, frames=frames, gt=gt, scr1=scr1, scr2=scr2, out1=out1, out2=out2)


@needs_ipn
def test_weights_are_the_saved_ones(run, weights):
    assert torch.equal(run["backend"].net_p.Decoder.pred2.weight, weights[1])


@needs_ipn
def test_outputs_have_the_interface_shapes_and_ranges(run):
    assert run["scr1"]["scribbles"][FIRST] and run["scr2"]["scribbles"][SECOND]
    for out in (run["out1"], run["out2"]):
        assert out.masks.shape == (T, H, W) and out.masks.dtype == np.uint8
        assert out.probs.shape == (T, K + 1, H, W) and out.probs.dtype == np.float32
        assert np.isfinite(out.probs).all() and out.probs.min() >= 0 and out.probs.max() <= 1
        np.testing.assert_allclose(out.probs.sum(1), 1, atol=1e-5)
        np.testing.assert_array_equal(out.masks, out.probs.argmax(1))
        assert {"interaction", "propagation", "total"} <= set(out.timings)


def test_soft_aggregation_by_hand():
    from VOS.ipn import soft_aggregate

    p = torch.tensor([0.8, 0.5]).view(2, 1, 1, 1)              # K=2 objects, one pixel
    em = np.array([0.2 * 0.5, 0.8, 0.5])                        # [prod(1-p), p1, p2]
    logit = np.log(em / (1 - em))
    want = np.exp(logit) / np.exp(logit).sum()
    np.testing.assert_allclose(soft_aggregate(p)[0, :, 0, 0].numpy(), want, rtol=1e-6)


@needs_ipn
def test_round_two_changes_the_annotated_frame_only_from_the_last_annotation_on(run):
    p1, p2 = run["out1"].probs, run["out2"].probs
    diff = np.abs(p2 - p1).reshape(T, -1).max(1)
    assert diff[SECOND] > 1e-3
    # Get_weight: frames before the previous annotation (frame 2) keep round 1's values exactly
    assert np.all(diff[:FIRST] == 0)
    assert run["backend"].prev_targets == [FIRST, SECOND]


@needs_ipn
def test_scribbled_pixels_get_their_object_label(run):
    """The interaction net's probability replaced by 0.9 on its positive-scribble input, 0.05
    elsewhere: the annotated frame's mask must carry each object's label under its strokes."""
    b = run["backend"]
    real = b.net_i.forward

    def read_out(tf, tm, tp, tn, gm, lw):
        _, ce, ref = real(tf, tm, tp, tn, gm, lw)
        return 0.05 + 0.85 * tp, ce, ref

    b.net_i.forward = read_out
    video = b.frames, b.all_f                      # not per-round state: trial() keeps them as they are
    try:
        with b.trial():
            b.start(run["frames"][:FIRST + 1], K)      # a shorter clip: less propagation
            out = b.interact(FIRST, run["scr1"])
    finally:
        del b.net_i.forward
        b.frames, b.all_f = video
    hit = 0
    for s in run["scr1"]["scribbles"][FIRST]:
        if s["object_id"] == 0:
            continue
        pts = np.clip(np.floor(np.asarray(s["path"]) * [W, H]).astype(int), 0, [W - 1, H - 1])
        labels = out.masks[FIRST][pts[:, 1], pts[:, 0]]
        assert np.mean(labels == s["object_id"]) > 0.9, (s["object_id"], np.unique(labels))
        hit += len(pts)
    assert hit > 10


@needs_ipn
def test_trial_restores_state(run):
    b = run["backend"]
    before = b.get_state()
    scr = {"sequence": "tiny", "scribbles": [[] for _ in range(T)]}
    scr["scribbles"][5] = [{"path": [[0.2, 0.28], [0.6, 0.28]], "object_id": 1, "start_time": 0, "end_time": 1}]
    with b.trial():
        b.interact(5, scr)
        assert b.prev_targets[-1] == 5
    after = b.get_state()
    assert after["prev_targets"] == before["prev_targets"] == [FIRST, SECOND]
    assert torch.equal(after["mask_objs"], before["mask_objs"])
