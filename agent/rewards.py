"""The agent's two rewards (PROTOCOL.md §5).

Step reward: +1 when the chosen frame was among the least-scribbled frames at decision
time, else -1 (it pushes the agent to spread its scribbles).

Goal reward: how much better than a random policy the episode does after the round,
(m - mu - sigma) / sigma, with m the frame-mean J&F after the round and mu, sigma the
mean and sample standard deviation (ddof 1) of that quantity over the random-policy
runs of the same (sequence, initial scribble, round) in ``reward.csv``.

sigma == 0 (all random runs equal) or undefined (a single run): sigma is replaced by
``min_sigma`` (default 0.01, one J&F point), so the reward stays finite and keeps its
sign and order (the published code divides by zero there). That is all ``with paper`` does
(``floor_small=False``). The built-in default (``floor_small=True``) also raises every
0 < sigma < ``min_sigma`` to ``min_sigma``: a handful of random runs that agree to a fraction of a
point would otherwise turn a J&F difference of one point into a goal reward of tens or hundreds.
Replaced keys are counted in :attr:`RewardStats.floored`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MIN_SIGMA = 0.01
Key = tuple[str, int, int]   # (sequence, scribble_idx, round after the action); CSV column scribble_iter


def step_reward(counts: np.ndarray, action: int) -> float:
    """counts: (T,) scribble counts at decision time; +1.0 if counts[action] is minimal, else -1.0."""
    counts = np.asarray(counts).reshape(-1)
    return 1.0 if counts[int(action)] == counts.min() else -1.0


def goal_reward(m: float, mu: float, sigma: float) -> float:
    """(m - mu - sigma) / sigma; m, mu in [0, 1], sigma > 0."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return (m - mu - sigma) / sigma


def frame_mean(vec: np.ndarray | str) -> float:
    """Mean of a per-frame J&F vector, given as an array or '/'-joined string."""
    if isinstance(vec, str):
        vec = np.array(vec.split("/"), dtype=np.float64)
    return float(np.mean(vec))


@dataclass
class RewardStats:
    """mu and sigma of the random policy's frame-mean J&F per (sequence, scribble_idx, round).

    Built from reward.csv rows: the round is ``n_interaction_next`` and m the mean of
    ``next_state_iou`` (the state after the action)."""

    table: dict[Key, tuple[float, float, int]]   # key -> (mu, sigma as used, number of runs)
    min_sigma: float = MIN_SIGMA
    floored: set[Key] = field(default_factory=set)
    floor_small: bool = True

    @classmethod
    def from_frame(cls, df: pd.DataFrame, min_sigma: float = MIN_SIGMA, floor_small: bool = True) -> RewardStats:
        """Statistics of reward.csv rows. sigma 0 / undefined -> ``min_sigma`` (> 0); with ``floor_small``
        (built-in default; published: False) also every sigma < ``min_sigma``."""
        if not min_sigma > 0:
            raise ValueError(f"min_sigma must be > 0 (it replaces sigma 0), got {min_sigma}")
        if df.empty:
            raise ValueError("reward.csv holds no rows: run produce_reward.py first")
        m = df["next_state_iou"].map(frame_mean)
        keys = list(zip(df["sequence"].astype(str), df["scribble_iter"].astype(int),
                        df["n_interaction_next"].astype(int), strict=True))
        grouped = pd.DataFrame({"key": keys, "m": m}).groupby("key")["m"]
        mu, sd, n = grouped.mean(), grouped.std(ddof=1), grouped.count()
        table, floored = {}, set()
        for key in mu.index:
            sigma = float(sd[key])
            if not np.isfinite(sigma) or sigma == 0 or (floor_small and sigma < min_sigma):
                floored.add(key)
                sigma = min_sigma
            table[key] = (float(mu[key]), sigma, int(n[key]))
        if floored:
            what = f"sigma < {min_sigma:g}" if floor_small else "sigma 0"
            log.warning("%d of %d (sequence, scribble, round) keys have %s or a single run: sigma set to %g",
                        len(floored), len(table), what, min_sigma)
        return cls(table, min_sigma, floored, floor_small)

    def reward(self, sequence: str, scribble_idx: int, round_: int, m: float) -> float:
        """Goal reward of frame-mean J&F ``m`` after round ``round_`` of this sample."""
        key = (str(sequence), int(scribble_idx), int(round_))
        if key not in self.table:
            raise KeyError(f"no random-policy runs for {key} in reward.csv: run produce_reward.py "
                           "on the same dataset, split, rounds and window")
        mu, sigma, _ = self.table[key]
        return goal_reward(m, mu, sigma)
