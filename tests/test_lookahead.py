"""The multi-step look-ahead reference against greedy and exhaustive search on a hand-made toy video."""
from __future__ import annotations

import itertools

import numpy as np

from agent.lookahead import LookAhead, beam_search, exhaustive_best
from agent.selection import BeamSelector, beam_candidates
from VOS.base import RoundOutput, VOSBackend

T = 6
# Annotating frame a makes the frames in REACH[a] correct among those whose nearest annotated frame
# (ties: the earlier one) is a; every other frame gets an empty mask. The video J&F is then exactly
# (number of correct frames) / T.
REACH = {0: {0, 1}, 1: {1, 4}, 2: {1, 2}, 3: {0, 2, 3}, 4: {3, 4}, 5: {3, 4, 5}}


class ToyBackend(VOSBackend):
    name = "toy"

    def _start(self) -> None:
        pass

    def _interact(self, frame: int, scribbles: dict) -> RoundOutput:
        n, H, W = self.frames.shape[:3]
        masks = np.zeros((n, H, W), np.uint8)
        for t in correct_frames(self.annotated):
            masks[t, :, : W // 2] = 1
        probs = np.stack([1.0 - masks, masks], axis=1).astype(np.float32)
        return RoundOutput(masks, probs)


def correct_frames(annotated) -> set[int]:
    out = set()
    for t in range(T):
        if annotated:
            d = min(abs(t - a) for a in annotated)
            near = min(a for a in annotated if abs(t - a) == d)
            if t in REACH[near]:
                out.add(t)
    return out


class ToyRobot:
    """Stands in for the benchmark's robot: one empty stroke list per frame (the toy ignores it)."""

    def interact(self, seq, pred, gt, nb_objects, frame):
        return {"sequence": seq, "scribbles": [[] for _ in range(len(gt))]}


def make_look():
    backend = ToyBackend()
    backend.start(np.zeros((T, 4, 8, 3), np.uint8), 1)
    gt = np.zeros((T, 4, 8), np.int64)
    gt[:, :, :4] = 1
    pred = np.zeros_like(gt)
    return backend, LookAhead(backend, ToyRobot(), "toy", pred, gt, 1)


def test_one_step_scores_are_the_hand_counts():
    backend, look = make_look()
    scores = look.try_frames(range(T))
    # by hand: annotating a alone makes REACH[a] correct
    np.testing.assert_allclose(scores, [len(REACH[a]) / T for a in range(T)])
    assert backend.annotated == []  # state restored


def test_beam_beats_greedy_and_matches_exhaustive_search():
    backend, look = make_look()
    cands = list(range(T))
    # greedy, two rounds: frame 3 (3 correct; ties with 5 go to the lower index), then frame 0 (4 correct)
    g1 = int(np.argmax(look.try_frames(cands)))
    assert g1 == 3
    g_value = len(correct_frames([3])) + max(len(correct_frames([3, f])) for f in cands)
    assert g_value == 7
    # by hand: 5 then 0 gives 3 + 5 = 8 correct frame-rounds
    path, value = exhaustive_best(look, cands, horizon=2)
    assert path == (5, 0) and abs(value - 8 / T) < 1e-9
    brute = max(sum(len(correct_frames(list(p[:i + 1]))) for i in range(2)) for p in itertools.product(cands, repeat=2))
    assert brute == 8
    frame, nodes = beam_search(look, cands, beam=2, horizon=2)
    assert frame == 5 and abs(nodes[0].value - 8 / T) < 1e-9 and nodes[0].value > g_value / T
    assert backend.annotated == []  # every trial undone
    # horizon 1 is greedy
    assert beam_search(look, cands, beam=1, horizon=1)[0] == g1


def test_beam_selector_uses_the_rounds_left():
    backend, look = make_look()

    class Ctx:
        round = 7            # one round left: horizon cut to 1, i.e. greedy over the candidates
        look_ahead = look
        num_frames = T

    sel = BeamSelector(beam=2, horizon=2, grid=T, worst=0, rounds=8)
    assert sel(Ctx()) == 3
    Ctx.round = 1
    assert sel(Ctx()) == 5


def test_beam_candidates_grid_plus_worst():
    q = np.array([0.9, 0.2, 0.8, 0.1, 0.7, 0.95, 0.3, 0.6, 0.5, 0.9])
    # grid of 3 over 10 frames: 0, 4 (round(4.5) = 4), 9; the two worst others: 3 (0.1), 1 (0.2)
    assert beam_candidates(q, grid=3, worst=2) == [0, 1, 3, 4, 9]


def test_backend_tap_keeps_the_round_not_the_trials():
    from agent.lookahead import BackendTap

    gt = np.zeros((T, 4, 8), np.int64)
    gt[:, :, :4] = 1
    tap = BackendTap(ToyBackend(), gt_of=lambda seq: gt, robot=ToyRobot())
    tap.start(np.zeros((T, 4, 8, 3), np.uint8), 1, sequence="toy")
    out = tap.interact(3, {"scribbles": [[] for _ in range(T)]})
    with tap.trial():
        tap.interact(5, {"scribbles": [[] for _ in range(T)]})
    assert tap.last is out and tap.annotated == [3]
    np.testing.assert_array_equal(tap.probs(), out.probs)
    look = tap.look_ahead()
    # from {3}: adding 0 makes frames 0, 1, 2, 3 correct; adding 5 makes 0, 2, 3, 5 correct (4 of 6 each)
    np.testing.assert_allclose(look.try_frames([0, 5]), [4 / T, 4 / T])
    assert tap.annotated == [3]
