"""Step and goal rewards against hand-made reward.csv rows."""
import numpy as np
import pytest

from agent.records import append_rows, read_records
from agent.rewards import RewardStats, goal_reward, step_reward


def test_step_reward():
    counts = np.array([1, 0, 0, 2])
    assert step_reward(counts, 1) == 1.0 and step_reward(counts, 2) == 1.0
    assert step_reward(counts, 0) == -1.0 and step_reward(counts, 3) == -1.0
    assert step_reward(np.array([2, 2, 2]), 1) == 1.0      # all tie: every frame is least-scribbled


def test_goal_reward_formula():
    assert goal_reward(0.8, 0.7, 0.05) == pytest.approx(1.0)
    assert goal_reward(0.7, 0.7, 0.05) == pytest.approx(-1.0)   # as good as random on average: -1
    with pytest.raises(ValueError):
        goal_reward(0.5, 0.5, 0.0)


def _row(seq, scr, rnd, next_iou):
    return {"sequence": seq, "scribble_iter": scr, "n_interaction": rnd - 1, "n_interaction_next": rnd,
            "action": 0, "reward_step": 1.0, "reward_done": 0.0, "done": rnd == 5,
            "state_iou": "0.1/0.1", "next_state_iou": next_iou, "annotated_frames": "1/0",
            "next_annotated_frames": "2/0"}


def test_goal_reward_from_reward_csv(tmp_path):
    path = tmp_path / "reward.csv"
    append_rows(path, [
        _row("bear", 1, 2, "0.5/0.7"), _row("bear", 1, 2, "0.6/0.8"), _row("bear", 1, 2, "0.7/0.9"),  # m .6 .7 .8
        _row("bear", 1, 3, "0.9/0.9"), _row("bear", 1, 3, "0.9/0.9"),                                  # sigma 0
        _row("bear", 2, 2, "0.4/0.6"),                                                                 # one run
        _row("cows", 1, 2, "0.2/0.2"), _row("cows", 1, 2, "0.3/0.3"),                                  # .2 .3
    ])
    stats = RewardStats.from_frame(read_records(path))
    mu, sigma, n = stats.table[("bear", 1, 2)]
    assert (mu, sigma, n) == (pytest.approx(0.7), pytest.approx(0.1), 3)       # ddof 1: sqrt(.02 / 2)
    assert stats.reward("bear", 1, 2, 0.9) == pytest.approx((0.9 - 0.7 - 0.1) / 0.1)
    assert stats.reward("cows", 1, 2, 0.25) == pytest.approx((0.25 - 0.25 - np.sqrt(0.005)) / np.sqrt(0.005))
    # sigma 0 and single runs: floored to min_sigma (0.01)
    assert stats.floored == {("bear", 1, 3), ("bear", 2, 2)}
    assert stats.reward("bear", 1, 3, 0.92) == pytest.approx((0.92 - 0.9 - 0.01) / 0.01)
    assert stats.reward("bear", 2, 2, 0.5) == pytest.approx((0.5 - 0.5 - 0.01) / 0.01)
    with pytest.raises(KeyError):
        stats.reward("bear", 3, 2, 0.5)


def test_small_sigma_floored_only_by_the_builtin_default(tmp_path):
    path = tmp_path / "reward.csv"
    append_rows(path, [
        _row("bear", 1, 2, "0.700/0.700"), _row("bear", 1, 2, "0.702/0.702"),   # m .700 .702
        _row("bear", 1, 3, "0.9/0.9"), _row("bear", 1, 3, "0.9/0.9"),             # sigma 0
        _row("bear", 2, 2, "0.4/0.6"),                                              # one run
    ])
    small = np.sqrt(((0.700 - 0.701) ** 2 + (0.702 - 0.701) ** 2) / 1)            # ddof 1: 0.001414
    assert 0 < small < 0.01
    paper = RewardStats.from_frame(read_records(path), 0.01, floor_small=False)
    builtin = RewardStats.from_frame(read_records(path), 0.01)
    # published: 0 < sigma < min_sigma is used as it is; only sigma 0 and a single run are replaced
    assert paper.table[("bear", 1, 2)][1] == pytest.approx(small)
    assert paper.reward("bear", 1, 2, 0.71) == pytest.approx((0.71 - 0.701 - small) / small)
    assert paper.floored == {("bear", 1, 3), ("bear", 2, 2)}
    assert paper.reward("bear", 1, 3, 0.92) == pytest.approx((0.92 - 0.9 - 0.01) / 0.01)
    # built-in default: raised to min_sigma as well
    assert builtin.table[("bear", 1, 2)][1] == 0.01
    assert builtin.reward("bear", 1, 2, 0.71) == pytest.approx((0.71 - 0.701 - 0.01) / 0.01)
    assert builtin.floored == {("bear", 1, 2), ("bear", 1, 3), ("bear", 2, 2)}
    with pytest.raises(ValueError, match="min_sigma"):
        RewardStats.from_frame(read_records(path), 0.0)
