"""Frame-selection methods (PROTOCOL.md §3) as pure functions, and selectors built on them.

A selector is called after each round with an :class:`interaction.loop.RoundContext` and returns
the frame the user should annotate next. ``needs_quality`` says whether it reads ``ctx.quality``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


# -- pure rules ------------------------------------------------------------------------
def select_random(rng: np.random.Generator, num_frames: int) -> int:
    """Uniform frame in [0, T); repeats allowed."""
    return int(rng.integers(0, num_frames))


def linspace_grid(num_frames: int, first_frame: int, max_frames: int = 8) -> list[int]:
    """The published evenly spaced grid of L = min(max_frames, T) frames containing ``first_frame``.

    If T < L + 1 the grid is every frame. Otherwise s = int(linspace(0, T-1, L+1)); 1 is added to
    every element until the first frame is in s; then the last element is dropped (or the first,
    when the first frame is the last element). Examples: (50, 0) -> [0, 6, ..., 42];
    (50, 49) -> [6, 12, ..., 42, 49]; (69, 35) -> [1, 9, 18, 26, 35, 43, 52, 60].
    """
    T = int(num_frames)
    if not 0 <= first_frame < T:
        raise ValueError(f"first frame {first_frame} outside the video (0..{T - 1})")
    L = min(max_frames, T)
    if T < L + 1:
        return list(range(T))
    s = np.linspace(0, T - 1, L + 1).astype(int)
    while first_frame not in s:
        s = s + 1
    s = s[1:] if s[-1] == first_frame else s[:-1]
    return [int(v) for v in s]


def select_linspace(num_frames: int, first_frame: int, annotated: Sequence[int], max_frames: int = 8) -> int:
    """The first grid frame, in ascending order, not annotated yet. When every grid frame has
    been annotated (short videos, or more rounds than grid frames), the least-annotated grid frame
    (ties: the lowest index), so that the method keeps cycling over its grid."""
    grid = linspace_grid(num_frames, first_frame, max_frames)
    done = set(int(a) for a in annotated)
    for f in grid:
        if f not in done:
            return f
    counts = {f: list(annotated).count(f) for f in grid}
    return min(grid, key=lambda f: (counts[f], f))


def select_worst(quality: np.ndarray, annotated: Sequence[int]) -> int:
    """The lowest-quality frame not annotated yet (ties: the lowest index); the global argmin
    when every frame has been annotated."""
    q = np.asarray(quality, dtype=np.float64)
    if q.ndim != 1 or len(q) == 0:
        raise ValueError(f"quality must be a non-empty (T,) vector, got shape {q.shape}")
    if np.isnan(q).any():                # argmin would pick a NaN frame as "the worst"
        raise ValueError(f"quality has NaN at frames {np.flatnonzero(np.isnan(q)).tolist()[:5]}: the quality "
                         f"network's weights are broken; retrain them or use the published assess_net.pt")
    masked = q.copy()
    masked[[a for a in set(annotated) if 0 <= a < len(q)]] = np.inf
    if np.all(np.isinf(masked)):
        return int(np.argmin(q))
    return int(np.argmin(masked))


def candidate_frames(num_frames: int, max_candidates: int = 0) -> list[int]:
    """All frames, or ``max_candidates`` evenly spaced ones (first and last included)."""
    if max_candidates <= 0 or max_candidates >= num_frames:
        return list(range(num_frames))
    return sorted(set(int(round(v)) for v in np.linspace(0, num_frames - 1, max_candidates)))


def select_best(scores: np.ndarray, candidates: Sequence[int]) -> int:
    """The candidate with the highest look-ahead score (ties: the lowest frame index)."""
    scores = np.asarray(scores, dtype=np.float64)
    order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i]))
    return int(candidates[order[0]])


# -- selectors -------------------------------------------------------------------------
@dataclass
class RandomSelector:
    name: str = "random"
    needs_quality: bool = False

    def __call__(self, ctx) -> int:
        return select_random(ctx.rng, ctx.num_frames)


@dataclass
class LinspaceSelector:
    name: str = "linspace"
    needs_quality: bool = False
    max_frames: int = 8

    def __call__(self, ctx) -> int:
        return select_linspace(ctx.num_frames, ctx.first_frame, ctx.annotated, self.max_frames)


@dataclass
class WorstSelector:
    name: str = "worst"
    needs_quality: bool = True

    def __call__(self, ctx) -> int:
        return select_worst(ctx.quality, ctx.annotated)


@dataclass
class GreedySelector:
    """One-step oracle look-ahead: let the robot scribble on each candidate frame, run
    the backend on a copy of its state, keep the frame with the best next-round J&F."""

    name: str = "greedy"
    needs_quality: bool = False
    max_candidates: int = 0

    def __call__(self, ctx) -> int:
        if ctx.try_frames is None:
            raise RuntimeError("greedy needs the oracle look-ahead (setting=oracle)")
        cands = candidate_frames(ctx.num_frames, self.max_candidates)
        return select_best(ctx.try_frames(cands), cands)


def beam_candidates(frame_jf: np.ndarray, grid: int = 4, worst: int = 2) -> list[int]:
    """Candidate frames of the look-ahead reference: ``grid`` evenly spaced frames (first and last
    included) and the ``worst`` lowest-J&F frames of ``frame_jf`` (T,) not already among them
    (ties: the lowest index). Sorted, distinct."""
    T = len(frame_jf)
    out = set(candidate_frames(T, grid))
    order = sorted(range(T), key=lambda t: (float(frame_jf[t]), t))
    extra = [t for t in order if t not in out][: max(0, int(worst))]
    return sorted(out | set(extra))


@dataclass
class BeamSelector:
    """Multi-step oracle look-ahead (the stronger reference, and the teacher of the v2 agent): a beam
    search of width ``beam`` and depth ``horizon`` (cut to the rounds left) over candidate frames
    (:func:`beam_candidates`: ``grid`` evenly spaced + the ``worst`` lowest-J&F frames of each
    simulated future), a path scored by the sum of the video's J&F after its rounds. Needs
    ``ctx.look_ahead`` (an :class:`agent.lookahead.LookAhead`, oracle setting only). Budget per
    decision: C + beam * C * (horizon - 1) backend rounds, C = grid + worst (6, 2, 2: 18)."""

    name: str = "beam"
    needs_quality: bool = False
    beam: int = 2
    horizon: int = 2
    grid: int = 4
    worst: int = 2
    rounds: int = 8
    tap: object = None   # agent.lookahead.BackendTap, when the loop does not provide ctx.look_ahead

    def __call__(self, ctx) -> int:
        from agent.lookahead import beam_search

        look = getattr(ctx, "look_ahead", None)
        if look is None and self.tap is not None and ctx.try_frames is not None:
            look = self.tap.look_ahead()
        if look is None:
            raise RuntimeError("beam needs the oracle look-ahead (setting=oracle)")
        horizon = max(1, min(self.horizon, self.rounds - int(ctx.round)))
        frame, _ = beam_search(look, lambda node: beam_candidates(node.frame_jf, self.grid, self.worst),
                               beam=self.beam, horizon=horizon)
        return frame


METHODS = ("random", "linspace", "worst", "greedy", "beam", "ours")


def build_selector(method: str, *, setting: str, agent=None, greedy_candidates: int = 0, rounds: int = 8):
    """The selector for ``method``; ``agent`` is the ``ours`` selector (agent.recommender)."""
    if method == "random":
        return RandomSelector()
    if method == "linspace":
        return LinspaceSelector()
    if method == "worst":
        return WorstSelector()
    if method == "greedy":
        if setting != "oracle":
            raise ValueError("method=greedy looks at ground truth: it runs in setting=oracle only")
        return GreedySelector(max_candidates=greedy_candidates)
    if method == "beam":
        if setting != "oracle":
            raise ValueError("method=beam looks at ground truth: it runs in setting=oracle only")
        return BeamSelector(rounds=rounds)
    if method == "ours":
        if agent is None:
            raise ValueError("method=ours needs the agent's weights (agent_weights)")
        return agent
    raise ValueError(f"unknown method '{method}'; known: {', '.join(METHODS)}")
