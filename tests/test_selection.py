"""Selection rules against hand-worked cases (PROTOCOL.md §3)."""
from __future__ import annotations

import numpy as np
import pytest

from agent.selection import (
    build_selector,
    candidate_frames,
    linspace_grid,
    select_best,
    select_linspace,
    select_random,
    select_worst,
)


@pytest.mark.parametrize("T, first, grid", [
    (50, 0, [0, 6, 12, 18, 24, 30, 36, 42]),
    (50, 49, [6, 12, 18, 24, 30, 36, 42, 49]),
    (69, 35, [1, 9, 18, 26, 35, 43, 52, 60]),
    (8, 3, [0, 1, 2, 3, 4, 5, 6, 7]),        # T < L + 1: every frame
    (9, 4, [0, 1, 2, 3, 4, 5, 6, 7]),        # linspace(0, 8, 9) = 0..8 holds 4: drop the last
    (9, 8, [1, 2, 3, 4, 5, 6, 7, 8]),        # the first frame is the last element: drop the first
])
def test_linspace_grid(T, first, grid):
    assert linspace_grid(T, first) == grid
    assert first in grid and len(grid) == min(8, T)


def test_linspace_annotates_in_ascending_order_skipping_done():
    assert select_linspace(50, 49, [49]) == 6
    assert select_linspace(50, 49, [49, 6, 12]) == 18
    assert select_linspace(69, 35, [35]) == 1
    # grid exhausted: least-annotated grid frame, lowest index first
    assert select_linspace(4, 2, [2, 0, 1, 3]) == 0
    assert select_linspace(4, 2, [2, 0, 1, 3, 0]) == 1


def test_worst():
    q = np.array([0.9, 0.2, 0.5, 0.2, 0.1])
    assert select_worst(q, []) == 4
    assert select_worst(q, [4]) == 1          # tie 0.2 at 1 and 3: the lowest index
    assert select_worst(q, [4, 1]) == 3
    assert select_worst(q, [0, 1, 2, 3, 4]) == 4   # all annotated: global argmin


def test_random_is_uniform_and_seeded():
    a = [select_random(np.random.default_rng(7), 10) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    draws = np.array([select_random(rng, 5) for _ in range(5000)])
    assert draws.min() == 0 and draws.max() == 4
    assert np.all(np.abs(np.bincount(draws) / 5000 - 0.2) < 0.03)


def test_candidates_and_best():
    assert candidate_frames(5) == [0, 1, 2, 3, 4]
    assert candidate_frames(50, 5) == [0, 12, 24, 37, 49]   # round(0, 12.25, 24.5, 36.75, 49), half to even
    assert select_best(np.array([0.5, 0.7, 0.7]), [10, 3, 20]) == 3


def test_build_selector_errors():
    with pytest.raises(ValueError, match="oracle"):
        build_selector("greedy", setting="wild")
    with pytest.raises(ValueError, match="unknown method"):
        build_selector("best", setting="oracle")
    assert build_selector("linspace", setting="wild").needs_quality is False
