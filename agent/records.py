"""Transition records on disk: ``train/reward.csv`` and ``train/pretrain.csv``.

One row per transition with the published columns (so the published files load)::

    sequence, scribble_iter, n_interaction, n_interaction_next, action, reward_step,
    reward_done, done, state_iou, next_state_iou, annotated_frames, next_annotated_frames

``n_interaction`` is the number of rounds done at the state (1-based) and
``n_interaction_next`` = n_interaction + 1; ``state_iou`` / ``next_state_iou`` are the
per-frame quality vectors (GT J&F averaged over objects, in [0, 1]) and
``annotated_frames`` / ``next_annotated_frames`` the per-frame scribble counts, all
'/'-joined over the frames of the episode's window. In reward.csv ``reward_done`` is 0
(the goal reward needs the statistics that file is made to provide).

Runs append the rows of each finished episode and flush, so an interrupted run resumes:
:func:`open_records` first drops a trailing partial episode (rows after the last ``done`` row, which
a kill during the append can leave), then :func:`completed_episodes` counts the episodes on disk per
sample.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd

from agent.dqn import Transition, make_state
from agent.rewards import frame_mean, step_reward

log = logging.getLogger(__name__)

COLUMNS = ["sequence", "scribble_iter", "n_interaction", "n_interaction_next", "action", "reward_step",
           "reward_done", "done", "state_iou", "next_state_iou", "annotated_frames", "next_annotated_frames"]
VECTOR_COLUMNS = ["state_iou", "next_state_iou", "annotated_frames", "next_annotated_frames"]
_DTYPES = {"sequence": str, "scribble_iter": int, "n_interaction": int, "n_interaction_next": int, "action": int,
           "reward_step": float, "reward_done": float, "state_iou": str, "next_state_iou": str,
           "annotated_frames": str, "next_annotated_frames": str}


def encode_vector(values: Iterable[Any]) -> str:
    """'/'-join a vector: ints as ints, floats in their shortest exact form (round trips)."""
    out = []
    for v in values:
        if isinstance(v, (int, np.integer)):
            out.append(str(int(v)))
        else:
            out.append(repr(float(v)))
    return "/".join(out)


def decode_vector(text: str, dtype: Any = np.float64) -> np.ndarray:
    """Inverse of :func:`encode_vector` (also reads published files, which write counts as floats).
    An array passes through (rows built in memory by :func:`episode_rows`)."""
    if not isinstance(text, str):
        return np.asarray(text, dtype=np.float64).astype(dtype)
    return np.array(text.split("/"), dtype=np.float64).astype(dtype)


# -- writing --------------------------------------------------------------------------
def _repair_tail(path: Path) -> None:
    """Cut a half-written last line left by an interrupted run."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def drop_partial_episode(path: str | os.PathLike) -> int:
    """Cut a trailing partial episode from a transition record file: every row after the last
    ``done`` row (and a half-written last line). An episode is appended with one write, but a kill
    during that write can leave some of its complete lines, which would skew the reward statistics
    and the pre-fill. Returns the number of rows dropped (logged)."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return 0
    data = path.read_bytes()
    keep = data[:data.rfind(b"\n") + 1]
    lines = keep.splitlines(keepends=True)
    if not lines:
        return 0
    header = lines[0].decode().rstrip("\n").split(",")
    if "done" not in header:
        raise ValueError(f"{path}: not a transition record file (no 'done' column); move it away")
    col = header.index("done")
    end = 1
    for i, line in enumerate(lines[1:], start=1):
        fields = next(csv.reader([line.decode()]), [])
        if len(fields) == len(header) and fields[col].strip().lower() in ("true", "1", "1.0"):
            end = i + 1
    dropped = len(lines) - end
    if dropped or len(keep) != len(data):
        from core.io import atomic_write_bytes

        atomic_write_bytes(path, b"".join(lines[:end]))
        log.warning("%s: dropped %d rows of an episode an interrupted run left unfinished", path, dropped)
    return dropped


def open_records(path: str | os.PathLike) -> pd.DataFrame:
    """The records of a file a run is about to append to: a trailing partial episode is dropped
    from the file first (:func:`drop_partial_episode`), then :func:`read_records`."""
    drop_partial_episode(path)
    return read_records(path)


def append_rows(path: str | os.PathLike, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Append rows (dicts with ``columns``, default the transition :data:`COLUMNS`) to a CSV, writing
    the header when the file is new; vector columns given as arrays are '/'-joined. One write per
    call, flushed and fsynced (call it once per finished episode); a half-written last line left by
    an interrupted run is cut first. The one CSV append of the project."""
    columns = COLUMNS if columns is None else list(columns)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _repair_tail(path)
    new = not path.exists() or path.stat().st_size == 0
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    if new:
        writer.writeheader()
    for row in rows:
        row = dict(row)
        for c in VECTOR_COLUMNS:
            if c in row and not isinstance(row[c], str):
                row[c] = encode_vector(row[c])
        if "done" in row:
            row["done"] = bool(row["done"])
        writer.writerow({c: row[c] for c in columns})
    with open(path, "a", newline="") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


# -- reading --------------------------------------------------------------------------
def read_records(path: str | os.PathLike) -> pd.DataFrame:
    """All rows of complete episodes of a record CSV (an empty frame with :data:`COLUMNS` if the file
    does not exist): a half-written last line and the rows after the last ``done`` row (an episode
    an interrupted run left unfinished) are left out. Vector columns stay '/'-joined strings;
    ``done`` is bool."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame({c: pd.Series(dtype=object if c in VECTOR_COLUMNS or c == "sequence" else float)
                             for c in COLUMNS})
    df = pd.read_csv(path, dtype={c: str for c in ["sequence", *VECTOR_COLUMNS]}, keep_default_na=False)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a transition record file, missing columns {missing}")
    df = df[COLUMNS]
    df = df[(df[VECTOR_COLUMNS] != "").all(axis=1)]           # a half-written last row
    df = df.astype({c: t for c, t in _DTYPES.items() if t is not str})
    df["done"] = df["done"].map(lambda v: str(v).strip().lower() in ("true", "1", "1.0"))
    if df["done"].any():                                       # rows of an unfinished last episode
        df = df.iloc[: int(np.flatnonzero(df["done"].to_numpy())[-1]) + 1]
    return df.reset_index(drop=True)


def completed_episodes(df: pd.DataFrame, transitions_per_episode: int) -> Counter:
    """Episodes on disk per (sequence, scribble_idx) (column ``scribble_iter``): rows // transitions_per_episode."""
    rows = Counter(zip(df["sequence"].astype(str), df["scribble_iter"].astype(int), strict=True))
    return Counter({k: n // transitions_per_episode for k, n in rows.items()})


def row_to_transition(row: Any) -> Transition:
    """One record row (a pandas row or dict) -> :class:`Transition` with (T, 2) states."""
    return Transition(
        state=make_state(decode_vector(row["state_iou"]), decode_vector(row["annotated_frames"])),
        action=int(row["action"]),
        next_state=make_state(decode_vector(row["next_state_iou"]), decode_vector(row["next_annotated_frames"])),
        reward_step=float(row["reward_step"]),
        reward_done=float(row["reward_done"]),
        done=bool(row["done"]),
        key=(str(row["sequence"]), int(row["scribble_iter"]), int(row["n_interaction"])),
    )


def varied_sequences(df: pd.DataFrame, min_span: float = 0.05) -> set[str]:
    """Sequences whose frame-mean J&F (over all states in ``df``) spans more than ``min_span``."""
    if df.empty:
        return set()
    m = pd.concat([
        pd.DataFrame({"sequence": df["sequence"], "m": df["state_iou"].map(frame_mean)}),
        pd.DataFrame({"sequence": df["sequence"], "m": df["next_state_iou"].map(frame_mean)}),
    ])
    g = m.groupby("sequence")["m"]
    span = g.max() - g.min()
    return set(span[span > min_span].index.astype(str))


def prefill_transitions(df: pd.DataFrame, min_span: float = 0.05) -> list[Transition]:
    """Transitions of the pretrain buffer that pre-fill the replay: rows of varied sequences only."""
    keep = varied_sequences(df, min_span)
    return [row_to_transition(r) for _, r in df[df["sequence"].astype(str).isin(keep)].iterrows()]


# -- from the interaction loop ---------------------------------------------------------
def episode_rows(sample: Any, goal_reward: Callable[[str, int, int, float], float] | None = None
                 ) -> list[dict[str, Any]]:
    """Record rows of one finished episode (an ``interaction.loop.SampleRecord``), one per
    decision: state after round i, action = frame annotated in round i+1, next state after
    round i+1 (i = 1 .. rounds-1). ``goal_reward(sequence, scribble_idx, round, m)`` gives
    ``reward_done`` (0 when None, as in reward.csv). States use the GT per-frame J&F."""
    rounds = sample.rounds
    rows = []
    for i in range(1, len(rounds)):
        before, after = rounds[i - 1], rounds[i]
        action = int(after.frame)
        m = frame_mean(after.frame_jf)
        rows.append({
            "sequence": sample.sequence, "scribble_iter": int(sample.scribble_idx),
            "n_interaction": int(before.round), "n_interaction_next": int(after.round),
            "action": action,
            "reward_step": step_reward(before.counts, action),
            "reward_done": 0.0 if goal_reward is None else goal_reward(sample.sequence, sample.scribble_idx,
                                                                        after.round, m),
            "done": i == len(rounds) - 1,
            "state_iou": np.asarray(before.frame_jf, dtype=np.float64),
            "next_state_iou": np.asarray(after.frame_jf, dtype=np.float64),
            "annotated_frames": np.asarray(before.counts, dtype=np.int64),
            "next_annotated_frames": np.asarray(after.counts, dtype=np.int64),
        })
    return rows
