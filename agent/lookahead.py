"""Oracle look-ahead after a round: what annotating a frame next would give, by simulation.

A :class:`LookAhead` holds what the loop knows after a round (the backend, the benchmark's robot, the
submitted masks and the ground truth); ``step(frame)`` lets the robot scribble on ``frame`` of the
current masks, as the session would, and runs one backend round. Everything runs inside
``backend.trial()`` / ``get_state`` / ``set_state``, so the backend is left exactly as it was.

Two references are built on it:

- ``greedy`` (agent.selection): one step over a candidate set, the best next-round J&F;
- :func:`beam_search`: a ``horizon``-step beam search of width ``beam`` over candidate frames, scoring a
  path by the sum of the video's J&F after each of its rounds (the rounds' share of the round-AUC);
  it returns the first frame of the best path. Budget per decision, in backend rounds:
  ``C + beam * C * (horizon - 1)`` for C candidates (C = 6, beam 2, horizon 2: 18 rounds).

Frame indices are window-relative (0 .. stop - start - 1). Scores are object-weighted J&F in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from agent.window import window_scribbles
from datasets import davis_compat as dc
from datasets import davis_metrics


def object_weighted(gt: np.ndarray, pred: np.ndarray, num_objects: int) -> tuple[float, np.ndarray]:
    """(video J&F: per object mean over frames, then mean over objects; (T,) per-frame J&F) of
    ``pred`` (T,H,W) against ``gt`` (T,H,W), with the benchmark's metric functions."""
    j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=num_objects)
    f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=num_objects)
    return davis_metrics.object_weighted_jf(j, f), davis_metrics.jf_per_frame(j, f)


@dataclass
class Node:
    """One simulated future: the frames annotated along it, the sum of the J&F after each of its
    rounds, the full-video masks (T_video,H,W) int64 and the backend state after its last round."""

    path: tuple[int, ...]
    value: float
    pred: np.ndarray
    state: Any
    jf: float = 0.0
    frame_jf: np.ndarray | None = None   # (T_window,) per-frame J&F after the node's last round


class LookAhead:
    """The oracle simulator of one round (see the module doc).

    backend: a started ``VOS.base.VOSBackend`` (its state is restored after every call);
    robot: davisinteractive's ``InteractiveScribblesRobot``; seq: sequence name; pred: (T_video,H,W)
    masks submitted this round (ground truth outside the window); gt: (T_video,H,W) int64 ground
    truth; start, stop: the window the backend sees.
    """

    def __init__(self, backend, robot, seq: str, pred: np.ndarray, gt: np.ndarray, num_objects: int,
                 start: int = 0, stop: int | None = None) -> None:
        self.backend, self.robot, self.seq = backend, robot, seq
        self.pred, self.gt, self.K = pred, gt, int(num_objects)
        self.start = int(start)
        self.stop = int(len(gt) if stop is None else stop)
        self.rounds_run = 0   # backend rounds simulated (the budget actually spent)

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    def _step(self, pred: np.ndarray, frame: int) -> tuple[np.ndarray, float, np.ndarray]:
        """Scribble on ``frame`` of ``pred`` and run one backend round (no state restore):
        (new masks, window J&F, (T_window,) per-frame J&F)."""
        scr = self.robot.interact(self.seq, pred, self.gt, nb_objects=self.K, frame=self.start + int(frame))
        out = self.backend.interact(int(frame), window_scribbles(scr, self.start, self.stop))
        self.rounds_run += 1
        new = pred.copy()
        new[self.start:self.stop] = out.masks
        jf, per_frame = object_weighted(self.gt[self.start:self.stop], new[self.start:self.stop].astype(np.int64),
                                        self.K)
        return new, jf, per_frame

    def try_frames(self, candidates: Sequence[int]) -> np.ndarray:
        """(C,) window J&F after one more round on each candidate (the greedy look-ahead)."""
        scores = []
        for c in candidates:
            with self.backend.trial():
                _, jf, _ = self._step(self.pred, int(c))
            scores.append(jf)
        return np.asarray(scores, dtype=np.float64)

    def expand(self, node: Node, candidates: Sequence[int], keep_state: bool = True) -> list[Node]:
        """The children of ``node``, one per candidate frame (backend restored afterwards). Without
        ``keep_state`` the children carry no backend state (they cannot be expanded; saves memory)."""
        root = self.backend.get_state()
        children = []
        try:
            for c in candidates:
                self.backend.set_state(node.state)
                pred, jf, per_frame = self._step(node.pred, int(c))
                children.append(Node(node.path + (int(c),), node.value + jf, pred,
                                     self.backend.get_state() if keep_state else None, jf, per_frame))
        finally:
            self.backend.set_state(root)
        return children

    def root(self) -> Node:
        """The present: no simulated round, the current masks and backend state."""
        if not hasattr(self, "_root_frame_jf"):
            self._root_jf, self._root_frame_jf = object_weighted(
                self.gt[self.start:self.stop], self.pred[self.start:self.stop].astype(np.int64), self.K)
        return Node((), 0.0, self.pred, self.backend.get_state(), self._root_jf, self._root_frame_jf)


def beam_search(look: LookAhead, candidates: Sequence[int] | Callable[[Node], Sequence[int]], *,
                beam: int = 2, horizon: int = 2) -> tuple[int, list[Node]]:
    """First frame of the best ``horizon``-round path found by a beam of width ``beam``.

    ``candidates`` is a frame list, or a function of the node being expanded that returns one.
    At every depth each kept node is expanded over its candidates and the ``beam`` children with the
    highest path value (sum of the J&F after each simulated round) are kept; ties go to the lower
    frame sequence. Returns (frame, final beam, best first). With ``horizon=1`` this is greedy.
    """
    if beam < 1 or horizon < 1:
        raise ValueError(f"beam and horizon must be >= 1, got {beam}, {horizon}")
    cand_fn = candidates if callable(candidates) else (lambda node, c=list(candidates): c)
    nodes = [look.root()]
    for depth in range(int(horizon)):
        last = depth == int(horizon) - 1
        children = [ch for n in nodes for ch in look.expand(n, cand_fn(n), keep_state=not last)]
        if not children:
            break
        children.sort(key=lambda n: (-n.value, n.path))
        nodes = children[: int(beam)]
    return int(nodes[0].path[0]), nodes


def exhaustive_best(look: LookAhead, candidates: Sequence[int], horizon: int) -> tuple[tuple[int, ...], float]:
    """The best ``horizon``-round path over ``candidates`` by exhaustive search (for tests; C^horizon
    rounds): (path, sum of J&F along it)."""
    best: tuple[tuple[int, ...], float] = ((), -np.inf)
    nodes = [look.root()]
    for _ in range(horizon):
        nodes = [ch for n in nodes for ch in look.expand(n, candidates)]
    for n in nodes:
        if n.value > best[1] + 1e-12 or (abs(n.value - best[1]) <= 1e-12 and n.path < best[0]):
            best = (n.path, n.value)
    return best


class BackendTap:
    """A backend wrapper that remembers the last round's output outside look-ahead trials, so that a
    selector can see the round's probabilities and rebuild the oracle look-ahead without the loop
    handing them over. Pass the tap to the loop in place of the backend; everything else is the
    wrapped backend's (``annotated``, ``get_state``, ...).

    ``gt_of(sequence) -> (T, H, W) int64`` gives the ground truth for :meth:`look_ahead` (oracle only);
    ``robot`` is the benchmark's robot (``datasets.davis_compat.robot_for``, as the loop's).
    Runs without a frame window only (the masks of the tap are the whole video's).
    """

    def __init__(self, backend, gt_of=None, robot=None) -> None:
        self.inner = backend
        self.gt_of = gt_of
        self.robot = robot
        self.sequence: str | None = None
        self.last = None
        self._depth = 0
        self._gt: tuple[str, np.ndarray] | None = None

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def start(self, frames: np.ndarray, num_objects: int, sequence: str | None = None) -> None:
        self.inner.start(frames, num_objects, sequence=sequence)
        self.sequence, self.last = sequence, None

    def interact(self, frame: int, scribbles: dict):
        out = self.inner.interact(frame, scribbles)
        if self._depth == 0:
            self.last = out
        return out

    def trial(self):
        from contextlib import contextmanager

        @contextmanager
        def block():
            self._depth += 1
            try:
                with self.inner.trial():
                    yield
            finally:
                self._depth -= 1
        return block()

    def probs(self) -> np.ndarray:
        if self.last is None:
            raise RuntimeError("no round has run on this backend yet")
        return self.last.probs

    def look_ahead(self) -> LookAhead:
        """The oracle look-ahead of the present round (needs ``gt_of`` and ``robot``)."""
        if self.gt_of is None or self.robot is None or self.last is None:
            raise RuntimeError("the tap needs gt_of, robot and a finished round for the look-ahead")
        if self._gt is None or self._gt[0] != self.sequence:
            self._gt = (self.sequence, np.asarray(self.gt_of(self.sequence), dtype=np.int64))
        gt = self._gt[1]
        if len(gt) != len(self.last.masks):
            raise RuntimeError("BackendTap.look_ahead runs without a frame window only")
        return LookAhead(self.inner, self.robot, self.sequence, self.last.masks.astype(np.int64), gt,
                         self.inner.num_objects)
