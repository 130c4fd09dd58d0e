"""Benchmark figures computed from per-frame results (pure functions, no I/O)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def round_auc(curve: Sequence[float]) -> float:
    """The published, index-based AUC of a curve [0, m1, ..., mN]: trapz(c) / (len(c) - 1)
    = (m1 + ... + m_{N-1} + mN / 2) / N."""
    c = np.asarray(curve, dtype=np.float64)
    if len(c) < 2:
        raise ValueError("a curve needs at least two points")
    return float(((c[1:] + c[:-1]) / 2).sum() / (len(c) - 1))


def curve_from_report(report: pd.DataFrame, rounds: int, metric: str = "j_and_f") -> list[float]:
    """Object-weighted curve [0, m1, ..., m_rounds] as davisinteractive's summary computes it:
    rows averaged over frames per (interaction, sequence, scribble, object), then over rows per
    interaction. Missing interactions of a sample repeat its previous value, as the package does."""
    per_obj = (report.groupby(["interaction", "sequence", "scribble_idx", "object_id"])[metric]
               .mean().unstack("interaction"))
    per_obj = per_obj.reindex(columns=range(1, rounds + 1)).ffill(axis=1).fillna(0.0)
    return [0.0] + [float(v) for v in per_obj.mean(axis=0).values]
