"""DQN parts: schedule, targets, double-DQN selection, grouping by length, update step, replay."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from agent.dqn import (
    ReplayBuffer,
    Transition,
    double_dqn_next_value,
    dqn_loss,
    dqn_targets,
    epsilon,
    greedy_action,
    make_optimizer,
    make_state,
    q_values,
    update,
)
from agent.qnet import QNet


def test_epsilon_schedule():
    assert epsilon(0) == pytest.approx(0.70)
    assert epsilon(1000) == pytest.approx(0.25 + 0.45 / math.e)
    assert epsilon(10**6) == pytest.approx(0.25)


def test_targets_and_loss_by_hand():
    y_step, y_done = dqn_targets(torch.tensor([2.0, -1.0]), torch.tensor([1.0, -1.0]), torch.tensor([3.0, 0.5]))
    torch.testing.assert_close(y_step, torch.tensor([0.95 * 2 + 0.1, -0.95 - 0.1]))
    torch.testing.assert_close(y_done, torch.tensor([0.3, 0.05]))
    q = torch.tensor([1.0, 0.0])
    # ((1-2)^2 + (0-(-1.05))^2)/2 + ((1-.3)^2 + (0-.05)^2)/2
    expected = ((1 - 2.0) ** 2 + 1.05 ** 2) / 2 + (0.7 ** 2 + 0.05 ** 2) / 2
    assert float(dqn_loss(q, torch.tensor([2.0, -1.05]), torch.tensor([0.3, 0.05]))) == pytest.approx(expected)


class _Column(nn.Module):
    """Q(s)[t] = s[t, col]: a network whose Q-values are read off the state."""

    def __init__(self, col):
        super().__init__()
        self.col = col

    def forward(self, s):
        return s[..., self.col]


def test_double_dqn_policy_picks_target_values():
    s1 = make_state([0.1, 0.9, 0.5], [7, 3, 1])        # policy argmax = frame 1 -> target value 3
    s2 = make_state([0.8, 0.2], [4, 9])                 # different length; argmax 0 -> 4
    v = double_dqn_next_value(_Column(0), _Column(1), [s1, s2], "cpu")
    torch.testing.assert_close(v, torch.tensor([3.0, 4.0]))


def test_grouping_by_length_matches_single_runs():
    torch.manual_seed(0)
    net = QNet()
    rng = np.random.default_rng(0)
    states = [rng.random((n, 2)).astype(np.float32) for n in (5, 3, 5, 4)]
    got = q_values(net, states, "cpu")
    for s, q in zip(states, got, strict=True):
        torch.testing.assert_close(q, net(torch.from_numpy(s)[None])[0])


def _batch(rng, n=32):
    out = []
    for i in range(n):
        T = 25 if i % 3 else 10
        s = make_state(rng.random(T), rng.integers(0, 3, T))
        s2 = make_state(rng.random(T), rng.integers(0, 3, T))
        out.append(Transition(s, int(rng.integers(T)), s2, float(rng.choice([-1, 1])), float(rng.normal(0, 2)),
                              bool(i % 4 == 3)))
    return out


def _loss_by_hand(policy, target, batch) -> float:
    """The published TD loss, one transition at a time (no grouping by length), in float64:
    mean (Q(s,a) - (0.95 Q_target(s', argmax Q_policy(s')) + 0.1 r_step))^2 + mean (Q(s,a) - 0.1 r_done)^2."""
    se_step = se_done = 0.0
    with torch.no_grad():
        for t in batch:
            q = float(policy(torch.from_numpy(t.state)[None])[0, t.action])
            a_next = int(policy(torch.from_numpy(t.next_state)[None])[0].argmax())
            v_next = float(target(torch.from_numpy(t.next_state)[None])[0, a_next])
            se_step += (q - (0.95 * v_next + 0.1 * t.reward_step)) ** 2
            se_done += (q - 0.1 * t.reward_done) ** 2
    return (se_step + se_done) / len(batch)


def test_one_update_lowers_td_loss_and_clamps_gradients():
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    policy, target = QNet(), QNet()
    target.load_state_dict(policy.state_dict())
    with torch.no_grad():                        # a target that differs from the policy
        for p in target.parameters():
            p.add_(0.05 * torch.randn_like(p))
    opt = make_optimizer(policy)
    batch = _batch(rng)
    before_params = {n: p.detach().clone() for n, p in policy.named_parameters()}
    before = _loss_by_hand(policy, target, batch)
    info = update(policy, target, opt, batch, "cpu", rng, target_copy_prob=0.0)
    assert info["loss"] == pytest.approx(before, rel=1e-5)
    assert info["target_copied"] == 0.0
    assert max(float(p.grad.abs().max()) for p in policy.parameters()) <= 1.0
    assert _loss_by_hand(policy, target, batch) < before
    # Adam's first step moves every parameter by at most lr (5e-6): m_hat / sqrt(v_hat) = g / |g|
    lr = opt.param_groups[0]["lr"]
    assert lr == 5e-6 and opt.param_groups[0]["weight_decay"] == 5e-4
    moves = torch.cat([(p.detach() - before_params[n]).abs().flatten() for n, p in policy.named_parameters()])
    size = torch.cat([torch.maximum(p.detach().abs(), before_params[n].abs()).flatten()
                      for n, p in policy.named_parameters()])
    rounding = 2 * torch.finfo(torch.float32).eps * size          # float32 parameters: a move is exact to an ulp
    assert bool((moves <= lr * (1 + 1e-5) + rounding).all())
    assert float(moves.max()) >= lr * 0.99                      # and the largest moves are that large


def test_target_copy_happens_with_probability_one():
    torch.manual_seed(0)
    policy, target = QNet(), QNet()
    opt = make_optimizer(policy)
    update(policy, target, opt, _batch(np.random.default_rng(2), 8), "cpu", np.random.default_rng(0),
           target_copy_prob=1.0)
    for k, v in policy.state_dict().items():
        assert torch.equal(v, target.state_dict()[k])


def test_replay_buffer():
    buf = ReplayBuffer(capacity=3)
    ts = [Transition(make_state([0.0], [0]), 0, make_state([1.0], [1]), 1.0, float(i)) for i in range(5)]
    buf.extend(ts)
    assert len(buf) == 3 and [t.reward_done for t in buf.memory] == [2.0, 3.0, 4.0]
    sample = buf.sample(3, np.random.default_rng(0))
    assert sorted(t.reward_done for t in sample) == [2.0, 3.0, 4.0]      # without replacement
    assert len(buf.sample(10, np.random.default_rng(0))) == 3
    other = ReplayBuffer(1)
    other.load_state_dict(buf.state_dict())
    assert other.capacity == 3 and [t.reward_done for t in other.memory] == [2.0, 3.0, 4.0]


def _toy_transitions(rng, n, T=8):
    """Random-policy transitions of a toy task whose goal reward is +2 for choosing the
    lowest-quality frame not annotated yet (else -1); step reward as published."""
    out = []
    for _ in range(n):
        q = rng.uniform(0.3, 1.0, T)
        c = (rng.random(T) < 0.3).astype(np.int64)
        a = int(rng.integers(T))
        best = _toy_best(q, c)
        q2, c2 = q.copy(), c.copy()
        q2[a], c2[a] = 0.95, c2[a] + 1
        out.append(Transition(make_state(q, c), a, make_state(q2, c2), 1.0 if c[a] == c.min() else -1.0,
                              2.0 if a == best else -1.0))
    return out


def _toy_best(q, c):
    free = np.flatnonzero(c == 0)
    return int(free[np.argmin(q[free])]) if len(free) else int(np.argmin(q))


def test_updates_learn_a_toy_policy():
    """The whole update path (state encoding, action indexing, targets, double DQN, clamping)
    must let the greedy action find the rewarded frame: fails if indices or targets are wrong.
    Random choice hits ~1/6 here; 300 updates at lr 1e-3 reach ~0.85 (lr 5e-6: ~0.15)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    buf = ReplayBuffer()
    buf.extend(_toy_transitions(rng, 2000))
    policy = QNet()
    target = QNet()
    target.load_state_dict(policy.state_dict())
    opt = make_optimizer(policy, lr=1e-3)
    for _ in range(300):
        update(policy, target, opt, buf.sample(32, rng), "cpu", rng)
    test = _toy_transitions(np.random.default_rng(1), 200)
    hits = [greedy_action(policy, t.state, "cpu") == _toy_best(t.state[:, 0], t.state[:, 1]) for t in test]
    assert np.mean(hits) > 0.6


def test_offline_updates_on_the_prefilled_replay():
    from agent.training import new_train_state, offline_updates

    torch.set_num_threads(1)
    prefill = _toy_transitions(np.random.default_rng(3), 64)
    st = new_train_state("cpu", 0, prefill, lr=1e-3)
    assert st.optimizer.param_groups[0]["lr"] == 1e-3 and len(st.replay) == 64
    before = {k: v.clone() for k, v in st.policy.state_dict().items()}
    losses = offline_updates(st, 5, "cpu", progress=False)
    assert len(losses) == 5 and len(st.replay) == 64 and st.episodes == 0 and st.steps == 0
    assert any(not torch.equal(v, st.policy.state_dict()[k]) for k, v in before.items())
    small = new_train_state("cpu", 0, prefill[:10])
    assert offline_updates(small, 5, "cpu", progress=False) == []       # fewer than a batch: nothing
