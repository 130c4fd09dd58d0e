"""Transition records (reward.csv / pretrain.csv), episode rows, and the training window."""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from agent.records import (
    COLUMNS,
    append_rows,
    completed_episodes,
    decode_vector,
    encode_vector,
    episode_rows,
    prefill_transitions,
    read_records,
    row_to_transition,
    varied_sequences,
)
from agent.window import episode_window


def test_window_published_examples():
    assert episode_window(80, 40, 25) == (28, 53)      # frames 28..52
    assert episode_window(80, 75, 25) == (53, 78)      # frames 53..77
    assert episode_window(80, 2, 25) == (1, 26)        # frames 1..25
    assert episode_window(10, 7, 25) == (0, 10)        # shorter video: the whole video
    for T in (25, 26, 40):
        for f in range(T):
            s, e = episode_window(T, f)
            assert e - s == 25 and s <= f < e <= T


def _rows(rng, seq, scr, n, T=5):
    out = []
    for i in range(n):
        out.append({"sequence": seq, "scribble_iter": scr, "n_interaction": i % 4 + 1, "n_interaction_next": i % 4 + 2,
                    "action": int(rng.integers(T)), "reward_step": float(rng.choice([-1.0, 1.0])),
                    "reward_done": float(rng.normal()), "done": i % 4 == 3,
                    "state_iou": rng.random(T), "next_state_iou": rng.random(T),
                    "annotated_frames": rng.integers(0, 3, T), "next_annotated_frames": rng.integers(0, 3, T)})
    return out


def test_csv_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "pretrain.csv"
    rows = _rows(rng, "bear", 1, 4) + _rows(rng, "bike-packing", 3, 4)
    append_rows(path, rows[:4])
    append_rows(path, rows[4:])               # appending keeps one header
    df = read_records(path)
    assert list(df.columns) == COLUMNS and len(df) == 8
    assert path.read_text().count("sequence,") == 1
    for (_, got), want in zip(df.iterrows(), rows, strict=True):
        for c in ["sequence", "scribble_iter", "n_interaction", "n_interaction_next", "action", "reward_step",
                  "reward_done", "done"]:
            assert got[c] == want[c], c
        np.testing.assert_array_equal(decode_vector(got["state_iou"]), want["state_iou"])      # exact floats
        np.testing.assert_array_equal(decode_vector(got["annotated_frames"], np.int64), want["annotated_frames"])
    # write what was read: the same file
    path2 = tmp_path / "again.csv"
    append_rows(path2, df.to_dict("records"))
    assert path2.read_text() == path.read_text()
    pd.testing.assert_frame_equal(read_records(path2), df)


def test_published_style_file_and_interrupted_tail(tmp_path):
    path = tmp_path / "reward.csv"
    path.write_text(",".join(COLUMNS) + "\n"
                    "bear,1,1,2,2,1,0.0,False,0.5/0.25/0.75,0.5/0.5/0.75,1.0/0.0/0.0,1.0/0.0/1.0\n"
                    "bear,1,2,3,0,-1,0.0,False,0.5/0.5/0.7")   # half-written last line
    df = read_records(path)
    assert len(df) == 1
    t = row_to_transition(df.iloc[0])
    np.testing.assert_array_equal(t.state, [[0.5, 1], [0.25, 0], [0.75, 0]])
    np.testing.assert_array_equal(t.next_state[:, 1], [1, 0, 1])
    assert (t.action, t.reward_step, t.done, t.key) == (2, 1.0, False, ("bear", 1, 1))
    append_rows(path, _rows(np.random.default_rng(1), "bear", 1, 1, T=3))   # repairs the tail first
    assert len(read_records(path)) == 2


def test_completed_episodes_and_prefill_filter():
    rng = np.random.default_rng(2)
    rows = _rows(rng, "flat", 1, 8) + _rows(rng, "varied", 2, 4) + _rows(rng, "varied", 1, 6)
    for r in rows[:8]:                         # frame-mean J&F always 0.5: span 0
        r["state_iou"] = r["next_state_iou"] = np.full(5, 0.5)
    df = pd.DataFrame([{**r, **{c: encode_vector(r[c]) for c in ["state_iou", "next_state_iou", "annotated_frames",
                                                                   "next_annotated_frames"]}} for r in rows])
    assert completed_episodes(df, 4) == {("flat", 1): 2, ("varied", 2): 1, ("varied", 1): 1}
    assert varied_sequences(df, 0.05) == {"varied"}
    ts = prefill_transitions(df, 0.05)
    assert len(ts) == 10 and all(t.key[0] == "varied" for t in ts) and ts[0].state.shape == (5, 2)


@dataclass
class _Round:
    round: int
    frame: int
    frame_jf: np.ndarray
    counts: np.ndarray


@dataclass
class _Sample:
    sequence: str
    scribble_idx: int
    rounds: list


def test_episode_rows_from_loop_records():
    jf = [np.array([0.2, 0.4, 0.6]), np.array([0.5, 0.4, 0.6]), np.array([0.5, 0.7, 0.6])]
    counts = [np.array([0, 1, 0]), np.array([1, 1, 0]), np.array([1, 2, 0])]
    sample = _Sample("bear", 2, [_Round(1, 1, jf[0], counts[0]), _Round(2, 0, jf[1], counts[1]),
                                 _Round(3, 1, jf[2], counts[2])])
    calls = []

    def goal(seq, scr, rnd, m):
        calls.append((seq, scr, rnd, round(m, 9)))
        return 10.0 * rnd

    rows = episode_rows(sample, goal)
    assert [r["action"] for r in rows] == [0, 1]
    assert [r["reward_step"] for r in rows] == [1.0, -1.0]    # frame 0 had 0 scribbles; frame 1 had 1 (min 0)
    assert [(r["n_interaction"], r["n_interaction_next"], r["done"]) for r in rows] == [(1, 2, False), (2, 3, True)]
    assert calls == [("bear", 2, 2, 0.5), ("bear", 2, 3, 0.6)]
    assert [r["reward_done"] for r in rows] == [20.0, 30.0]
    assert encode_vector(rows[1]["annotated_frames"]) == "1/1/0"
    assert [r["reward_done"] for r in episode_rows(sample)] == [0.0, 0.0]
