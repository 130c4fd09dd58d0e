"""The feature QA model's image evidence (agent.features.image_features) and within-video loss, by hand."""
from __future__ import annotations

import numpy as np
import torch

from agent.features import F_IMG, F_OBJ, F_OBJ_IMG, image_features, object_features
from agent.imitation import FeatureQuality, load_checkpoint, qa_loss, qa_training_set, save_checkpoint, train_feature_qa

RED, BLUE = (255, 0, 0), (0, 0, 255)


def two_frames():
    """A 10x10 blue video of 2 frames with a red 4x4 square, moved 2 px right in frame 1."""
    fr = np.zeros((2, 10, 10, 3), np.uint8)
    fr[:] = BLUE
    fr[0, 2:6, 2:6] = RED
    fr[1, 2:6, 4:8] = RED
    return fr


def posterior(fg: dict, bg: dict, code: int) -> float:
    """P(object | colour bin) from 512-bin histograms with +0.5 smoothing, as documented."""
    pf = (fg.get(code, 0) + 0.5) / (sum(fg.values()) + 256)
    pb = (bg.get(code, 0) + 0.5) / (sum(bg.values()) + 256)
    return pf / (pf + pb)


def test_image_features_by_hand():
    fr = two_frames()
    red, blue = 7 * 64, 7                     # 8 levels per channel: (7, 0, 0) and (0, 0, 7)
    fg, bg = {red: 16}, {blue: 84}           # frame 0 (annotated): the square is the object
    p_red, p_blue = posterior(fg, bg, red), posterior(fg, bg, blue)
    masks = np.zeros((2, 10, 10), np.int64)
    masks[0, 2:6, 2:6] = 1
    masks[1, 2:6, 2:6] = 1                   # frame 1: the mask stayed where the square was: half on blue
    f = image_features(fr, masks, [0], 1)
    assert f.shape == (2, 1, F_IMG)
    f = f[:, 0]
    np.testing.assert_allclose(f[:, 0], [p_red, (8 * p_red + 8 * p_blue) / 16], rtol=1e-5)
    np.testing.assert_allclose(f[:, 2], [0.0, (8 * p_red + 8 * p_blue) / 16 - p_red], rtol=1e-5, atol=1e-7)
    # image change: one step, its own unit; accumulated from the annotated frame 0, divided by T = 2
    np.testing.assert_allclose(f[:, 6], [0.0, 0.5], atol=1e-6)
    np.testing.assert_allclose(f[:, 7], [0.0, 0.0])          # the mask did not move
    masks[1] = 0
    masks[1, 2:6, 4:8] = 1                   # now it follows the square: 2 px = 0.5 sqrt(area)
    f = image_features(fr, masks, [0], 1)[:, 0]
    np.testing.assert_allclose(f[:, 0], [p_red, p_red], rtol=1e-5)
    np.testing.assert_allclose(f[:, 7], [0.5, 0.5], atol=1e-6)
    # the leak ring (2 px around the square) is all blue; the edges lie on the square's outline
    np.testing.assert_allclose(f[:, 1], [p_blue, p_blue], rtol=1e-5)
    assert f[0, 3] > 1.0


def test_object_colour_reference_skips_frames_where_the_object_is_absent():
    fr = np.concatenate([two_frames(), two_frames()[:1]])     # 3 frames
    masks = np.zeros((3, 10, 10), np.int64)
    masks[1, 2:6, 4:8] = 1                    # the object is only in frame 1 (not annotated)
    masks[2, 2:6, 2:6] = 1
    f = image_features(fr, masks, [0], 1)[:, 0]
    red, blue = 7 * 64, 7
    p_red = posterior({red: 16}, {blue: 84}, red)             # the reference is frame 1 (nearest non-empty)
    np.testing.assert_allclose(f[1:, 0], [p_red, p_red], rtol=1e-5)
    np.testing.assert_allclose(f[0, :4], 0.0)                 # empty mask: no colour or edge evidence


def test_object_features_with_frames_append_the_image_evidence():
    fr = two_frames()
    probs = np.zeros((2, 2, 10, 10), np.float32)
    probs[:, 1, 2:6, 2:6] = 0.9
    probs[:, 0] = 1 - probs[:, 1]
    base = object_features(probs, [0], 1)
    full = object_features(probs, [0], 1, frames=fr)
    assert base.shape[-1] == F_OBJ and full.shape[-1] == F_OBJ_IMG
    np.testing.assert_array_equal(full[..., :F_OBJ], base)
    np.testing.assert_array_equal(full[..., F_OBJ:], image_features(fr, probs.argmax(1), [0], 1))


def test_within_video_loss_by_hand():
    pred, tgt, g = torch.tensor([0.5, 0.7, 0.2]), torch.tensor([0.4, 0.9, 0.2]), torch.tensor([3, 3, 8])
    # errors 0.1, -0.2 (group 3, mean -0.05 -> 0.15, -0.15) and 0 (group 8)
    assert abs(qa_loss(pred, tgt).item() - 0.05 / 3) < 1e-7
    assert abs(qa_loss(pred, tgt, g, 2.0).item() - (0.05 / 3 + 2 * 0.045 / 3)) < 1e-7


def test_image_qa_model_round_trip_and_reads_the_frames(tmp_path):
    rng = np.random.default_rng(0)
    fr = rng.integers(0, 255, (4, 12, 12, 3), dtype=np.uint8)
    probs = np.zeros((4, 2, 12, 12), np.float32)
    probs[:, 1, 3:9, 3:9] = 0.8
    probs[:, 0] = 1 - probs[:, 1]
    feats = object_features(probs, [0], 1, frames=fr)
    episodes = [[{"obj_feats": feats, "jf_obj": rng.random((4, 1)).astype(np.float32), "sequence": "a"}]]
    x, y, g = qa_training_set(episodes, F_OBJ_IMG, groups=True)
    assert x.shape == (4, 4 * F_OBJ_IMG) and g.tolist() == [0, 0, 0, 0]
    net = train_feature_qa(x, y, epochs=2, groups=g, within=1.0, members=2)
    save_checkpoint(net, tmp_path / "qa.pt")
    back = load_checkpoint(tmp_path / "qa.pt", "feature-qa")
    assert back.features == F_OBJ_IMG
    q = FeatureQuality(back)
    q.set_annotated([0])
    np.testing.assert_allclose(q(fr, probs), q.predict(feats), rtol=1e-6)
    try:
        q.predict(feats[..., :F_OBJ])
    except ValueError as e:
        assert "image" in str(e)
    else:
        raise AssertionError("a model with image evidence must refuse features without it")


def test_feature_qa_dropout_only_while_training_and_weight_decay(tmp_path):
    from agent.features import F_OBJ as F
    from agent.imitation import FeatureQANet, checkpoint_config

    torch.manual_seed(0)
    net = FeatureQANet(hidden=16, features=F, dropout=0.5)
    x = torch.randn(7, 4 * F)
    lin = [m for m in net.mlp if isinstance(m, torch.nn.Linear)]
    # by hand: sigmoid(L3 relu(L2 relu(L1 norm(x)))), no dropout in eval mode
    h = torch.relu(lin[0](net.norm(x)))
    by_hand = torch.sigmoid(lin[2](torch.relu(lin[1](h)))).squeeze(-1)
    net.eval()
    torch.testing.assert_close(net(x), by_hand)
    net.train()
    a, b = net(x), net(x)
    assert not torch.allclose(a, b), "training dropout must draw new masks"
    assert not torch.allclose(a, by_hand)
    # the same weights in a net without dropout: equal in both modes
    plain = FeatureQANet(hidden=16, features=F)
    plain.load_state_dict(net.state_dict())
    torch.testing.assert_close(plain.train()(x), by_hand)
    # the option travels with the checkpoint; the keys are those of a net without dropout
    rng = np.random.default_rng(1)
    xs, ys = rng.normal(size=(300, 4 * F)).astype(np.float32), rng.random(300).astype(np.float32)
    ens = train_feature_qa(xs, ys, epochs=2, members=2, dropout=0.3)
    save_checkpoint(ens, tmp_path / "qa.pt")
    assert checkpoint_config(tmp_path / "qa.pt")[1]["dropout"] == 0.3
    back = load_checkpoint(tmp_path / "qa.pt", "feature-qa")
    assert all(m.dropout == 0.3 for m in back.members) and not back.training
    torch.testing.assert_close(back(torch.as_tensor(xs)), ens(torch.as_tensor(xs)))
    # weight decay shrinks the weights (Adam's L2 term), same seed and data
    norm = {wd: sum(float((p.detach() ** 2).sum()) for n, p in train_feature_qa(xs, ys, epochs=5, weight_decay=wd)
                    .named_parameters() if "weight" in n) for wd in (0.0, 0.5)}
    assert norm[0.5] < 0.8 * norm[0.0], norm
