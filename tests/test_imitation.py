"""v2 agent state features (by hand), the feature QA model and the imitation ranker (toy learning tests)."""
from __future__ import annotations

import math

import numpy as np
import torch

from agent.features import F_OBJ, F_V2, agent_state_v2, annotation_distance, object_features
from agent.imitation import (
    FeatureQAEnsemble,
    FeatureQuality,
    RankEnsemble,
    RankNet,
    V2Selector,
    crossfit_decisions,
    listwise_targets,
    load_checkpoint,
    qa_inputs,
    qa_training_set,
    ranker_decisions,
    save_checkpoint,
    train_feature_qa,
    train_ranker,
)


def H(p):
    return -(p * math.log2(p) + (1 - p) * math.log2(1 - p))


def toy_probs():
    p1 = np.array([[[0.9, 0.9], [0.1, 0.1]],
                   [[0.7, 0.3], [0.1, 0.1]],
                   [[0.01, 0.01], [0.01, 0.01]]], np.float32)
    return np.stack([1 - p1, p1], axis=1)  # (3, 2, 2, 2)


def test_annotation_distance():
    assert annotation_distance(6, [1, 4, 4]).tolist() == [1, 0, 1, 1, 0, 1]
    assert annotation_distance(3, []).tolist() == [3, 3, 3]


def test_object_features_by_hand():
    f = object_features(toy_probs(), [0], 1)
    assert f.shape == (3, 1, F_OBJ)
    f = f[:, 0]
    np.testing.assert_allclose(f[:, 0], [0, 1 / 3, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(f[:, 1], [0, 0.5, math.log(3) / math.log(4)], atol=1e-6)
    np.testing.assert_allclose(f[:, 2], [1, 0, 0])
    np.testing.assert_allclose(f[:, 3], [0.9, 0.7, 0.0], atol=1e-6)
    np.testing.assert_allclose(f[:, 4], [0.0, 2 / 4, 0.0], atol=1e-6)
    np.testing.assert_allclose(f[:, 5], [H(0.9), (2 * H(0.7) + 2 * H(0.1)) / 4, 0.0], atol=1e-5)
    np.testing.assert_allclose(f[:, 6], [0.0, math.log(2 / 3), math.log(1 / 3)], atol=1e-6)
    np.testing.assert_allclose(f[:, 7], [0.5, 0.25, 0.0])
    np.testing.assert_allclose(f[:, 8], [0.5, 0.5, 0.0])   # IoU with t-1 (t=0: with t+1)
    np.testing.assert_allclose(f[:, 9], [0.5, 0.0, 0.0])   # IoU with t+1 (t=T-1: with t-1)
    np.testing.assert_allclose(f[:, 10], [0, 0, 1])
    np.testing.assert_allclose(f[:, 11], 1 / 8)


def test_agent_state_v2_by_hand():
    obj = object_features(toy_probs(), [0], 1)
    s = agent_state_v2(np.array([0.9, 0.5, 0.2]), np.array([0.8, 0.5, 0.4]), np.array([1, 0, 0]), obj, 1)
    assert s.shape == (3, F_V2)
    np.testing.assert_allclose(s[:, 0], [0.9, 0.5, 0.2], atol=1e-6)
    np.testing.assert_allclose(s[:, 1], [0.1, 0.0, -0.2], atol=1e-6)
    np.testing.assert_allclose(s[:, 2], [0.9 - 1.6 / 3, 0.5 - 1.6 / 3, 0.2 - 1.6 / 3], atol=1e-6)
    np.testing.assert_allclose(s[:, 3], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(s[:, 4], [0.2, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(s[:, 5], [1, 0, 0])
    np.testing.assert_allclose(s[:, 6], [1, 0, 0])
    np.testing.assert_allclose(s[:, 7], [0, 1 / 3, 2 / 3], atol=1e-6)
    np.testing.assert_allclose(s[:, 9], [0, 0.5, 1])
    np.testing.assert_allclose(s[:, 10], 1 / 8)
    np.testing.assert_allclose(s[:, 11:], obj[:, 0, 3:10], atol=1e-6)
    # no previous round: no change
    assert np.all(agent_state_v2(np.array([0.9, 0.5, 0.2]), None, np.array([1, 0, 0]), obj, 1)[:, 1] == 0)


def test_listwise_targets():
    t = listwise_targets(np.array([0.0, 0.0, 0.0]))
    np.testing.assert_allclose(t, 1 / 3)
    t = listwise_targets(np.array([0.1, 0.3, 0.2]))
    assert t.argmax() == 1 and abs(t.sum() - 1) < 1e-9


def test_feature_qa_learns_a_toy_target(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, 4 * F_OBJ)).astype(np.float32)
    y = 1 / (1 + np.exp(-(1.5 * x[:, 3] - x[:, 0])))            # depends on two inputs
    net = train_feature_qa(x[:1000], y[:1000], epochs=30, seed=0)
    with torch.no_grad():
        p = net(torch.as_tensor(x[1000:])).numpy()
    assert np.corrcoef(p, y[1000:])[0, 1] > 0.95
    assert np.mean((p - y[1000:]) ** 2) < 0.1 * np.var(y[1000:])
    save_checkpoint(net, tmp_path / "qa.pt")
    again = load_checkpoint(tmp_path / "qa.pt", "feature-qa")
    with torch.no_grad():
        np.testing.assert_allclose(again(torch.as_tensor(x[1000:])).numpy(), p, atol=1e-6)
    # used as the wild quality function: (T, K) predictions from probs and the annotated frames
    qa = FeatureQuality(again)
    qa.set_annotated([0])
    out = qa(np.zeros((3, 2, 2, 3), np.uint8), toy_probs())
    assert out.shape == (3, 1) and np.all((out >= 0) & (out <= 1))
    assert qa_inputs(qa.last_features).shape == (3, 1, 4 * F_OBJ)


def test_ranker_learns_to_pick_the_frame_the_teacher_prefers(tmp_path):
    rng = np.random.default_rng(1)

    def decision(T):
        s = rng.uniform(0, 1, size=(T, F_V2)).astype(np.float32)
        cands = np.sort(rng.choice(T, size=6, replace=False))
        gains = 0.1 * s[cands, 11] - 0.05 * s[cands, 0]  # the teacher's gain: confident mask, low quality
        return {"state": s, "candidates": cands, "gains": gains}

    train = [decision(int(rng.integers(10, 16))) for _ in range(120)]
    net = train_ranker(train, epochs=12, seed=0)
    hits = 0
    for _ in range(50):
        d = decision(12)
        with torch.no_grad():
            sc = net(torch.as_tensor(d["state"])[None])[0].numpy()
        hits += int(d["candidates"][np.argmax(sc[d["candidates"]])] == d["candidates"][np.argmax(d["gains"])])
    assert hits >= 35   # chance: 50 / 6 ~ 8
    # the default state leaves out the distance and position columns 7..9: scores do not depend on them
    s = torch.as_tensor(d["state"])[None]
    s2 = s.clone()
    s2[..., 7:10] = torch.rand(s.shape[1], 3)
    with torch.no_grad():
        assert torch.equal(net(s), net(s2))
        s2[..., 11] += 0.5
        assert not torch.equal(net(s), net(s2))
    save_checkpoint(net, tmp_path / "v2.pt")
    assert isinstance(load_checkpoint(tmp_path / "v2.pt", "agent-v2"), RankNet)


def test_ranker_ensemble_averages_standardised_member_scores(tmp_path):
    rng = np.random.default_rng(2)
    train = []
    for _ in range(20):
        s = rng.uniform(0, 1, size=(8, F_V2)).astype(np.float32)
        cands = np.sort(rng.choice(8, size=4, replace=False))
        train.append({"state": s, "candidates": cands, "gains": s[cands, 11] - s[cands, 0]})
    ens = train_ranker(train, epochs=2, seed=1, members=3)
    assert isinstance(ens, RankEnsemble) and len(ens.members) == 3
    # member i is the single net of seed 1 * 3 + i, trained alone
    alone = train_ranker(train, epochs=2, seed=4)
    pairs = zip(ens.members[1].state_dict().values(), alone.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    state = torch.as_tensor(train[0]["state"])[None]
    with torch.no_grad():
        got = ens(state)[0].numpy()
        raw = [m(state)[0].numpy().astype(np.float64) for m in ens.members]
    want = np.mean([(r - r.mean()) / r.std() for r in raw], axis=0)    # numpy, by hand
    assert np.allclose(got, want, atol=1e-4)
    save_checkpoint(ens, tmp_path / "ens.pt", {"seed": 1})
    back = load_checkpoint(tmp_path / "ens.pt", "agent-v2")
    assert isinstance(back, RankEnsemble) and len(back.members) == 3
    with torch.no_grad():
        assert torch.equal(back(state), ens(state))
    # a single net saved over the same path loads as a single net again
    save_checkpoint(alone, tmp_path / "ens.pt", {"seed": 4, "members": 3})
    assert isinstance(load_checkpoint(tmp_path / "ens.pt", "agent-v2"), RankNet)


def test_feature_qa_ensemble_is_the_mean_of_its_members(tmp_path):
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, size=(200, 4 * F_OBJ)).astype(np.float32)
    y = x[:, 2] * 0.8
    ens = train_feature_qa(x, y, epochs=2, seed=1, members=3)
    assert isinstance(ens, FeatureQAEnsemble) and len(ens.members) == 3
    alone = train_feature_qa(x, y, epochs=2, seed=5)           # member 2: seed 1 * 3 + 2
    xt = torch.as_tensor(x[:10])
    with torch.no_grad():
        assert torch.equal(ens.members[2](xt), alone(xt))
        want = np.mean([m(xt).numpy() for m in ens.members], axis=0)
        assert np.allclose(ens(xt).numpy(), want, atol=1e-6)
        save_checkpoint(ens, tmp_path / "qa.pt")
        back = load_checkpoint(tmp_path / "qa.pt", "feature-qa")
        assert isinstance(back, FeatureQAEnsemble) and torch.equal(back(xt), ens(xt))
    assert FeatureQuality(back).predict(x[:6].reshape(6, 1, 4, F_OBJ)[:, :, 0]).shape == (6, 1)


def test_crossfit_decisions_predict_each_sequence_with_a_qa_model_that_did_not_see_it():
    rng = np.random.default_rng(3)

    def episode(seq):
        out = []
        for r in (1, 2):
            feats = rng.uniform(0, 1, size=(6, 1, F_OBJ)).astype(np.float32)
            jf = feats[..., 2].copy()
            out.append({"sequence": seq, "round": r, "obj_feats": feats, "jf_obj": jf, "gt_quality": jf.mean(1),
                        "counts": np.eye(6, dtype=int)[0], "candidates": np.array([1, 3, 5]),
                        "gains": rng.uniform(0, 0.1, 3).astype(np.float32)})
        return out

    eps = [episode("a"), episode("b"), episode("a"), episode("c")]
    got = crossfit_decisions(eps, folds=2, qa_epochs=3, seed=5)
    # by hand: sequences a, b, c dealt round robin into 2 folds: {a, c} and {b}
    qa_b = FeatureQuality(train_feature_qa(*qa_training_set([eps[1]]), epochs=3, seed=5))
    qa_ac = FeatureQuality(train_feature_qa(*qa_training_set([eps[0], eps[2], eps[3]]), epochs=3, seed=5))
    want = (ranker_decisions([eps[0]], qa_b) + ranker_decisions([eps[1]], qa_ac) + ranker_decisions([eps[2]], qa_b)
            + ranker_decisions([eps[3]], qa_b))
    assert len(got) == len(want) == 8
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g["state"], w["state"]) and np.array_equal(g["candidates"], w["candidates"])
    insample = ranker_decisions(eps, FeatureQuality(train_feature_qa(*qa_training_set(eps), epochs=3, seed=5)))
    assert not np.array_equal(got[0]["state"], insample[0]["state"])
    # one sequence: nothing to hold out, the QA model is trained on all of it
    one = crossfit_decisions([eps[0], eps[2]], folds=3, qa_epochs=3, seed=5)
    qa_a = FeatureQuality(train_feature_qa(*qa_training_set([eps[0], eps[2]]), epochs=3, seed=5))
    assert np.array_equal(one[1]["state"], ranker_decisions([eps[0], eps[2]], qa_a)[1]["state"])


def test_v2_selector_reads_the_context():
    torch.manual_seed(0)
    net = RankNet()

    class Ctx:
        round = 1
        num_frames = 3
        quality = np.array([0.9, 0.5, 0.2])
        counts = np.array([1, 0, 0])
        annotated = [0]
        probs = toy_probs()

    sel = V2Selector(net)
    s = sel.state(Ctx())
    with torch.no_grad():
        scores = net(torch.as_tensor(s)[None])[0].numpy()
    assert sel(Ctx()) == int(np.argmax(scores))
    # pool: the best-scored frame among those of the lowest quality ranks only; ranks of [0.9, 0.5, 0.2]
    # / (T - 1) are [1, 0.5, 0], so pool 0.5 leaves frames 1 and 2, pool 0 frame 2 alone
    assert V2Selector(net, pool=0.5)(Ctx()) == 1 + int(np.argmax(scores[1:]))
    assert V2Selector(net, pool=0.0)(Ctx()) == 2


def test_ours_from_weights_keeps_the_published_layout(tmp_path):
    from agent.qnet import QNet
    from agent.recommender import AgentSelector, selector_from_weights

    published = {f"module.{k}": v for k, v in QNet().state_dict().items()}   # the published file's layout
    torch.save(published, tmp_path / "agent.pt")
    sel = selector_from_weights(tmp_path / "agent.pt")
    assert isinstance(sel, AgentSelector)
    save_checkpoint(RankNet(), tmp_path / "v2.pt")
    assert isinstance(selector_from_weights(tmp_path / "v2.pt"), V2Selector)
    save_checkpoint(RankEnsemble(2), tmp_path / "v2e.pt")
    sel = selector_from_weights(tmp_path / "v2e.pt")
    assert isinstance(sel, V2Selector) and isinstance(sel.net, RankEnsemble)
