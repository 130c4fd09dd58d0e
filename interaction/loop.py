"""The round loop: a real davisinteractive session, a VOS backend and a frame selector.

One sample = (sequence, initial scribble index). Round 1 uses the human (or synthetic) scribble;
after every round the backend's masks are scored by the session, the per-frame quality is
computed (``oracle``: ground-truth J&F averaged over objects; ``wild``: the QA network's
prediction averaged over objects), the selector picks the next frame and the session's robot
scribbles on exactly that frame (``next_scribble_frame_candidates=[frame]``).

Each sample runs in its own session with only its sequence registered, so that the package's
report stays small, a run can resume sample by sample, and the final summary is rebuilt from
the stored reports (:mod:`interaction.results`).
"""
from __future__ import annotations

import logging
import tempfile
import time
import zlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from agent.window import episode_window
from datasets import davis_compat as dc
from datasets.layout import DatasetError, DatasetSpec, registered
from interaction.metrics import jf_per_frame
from VOS.base import RoundOutput, VOSBackend

log = logging.getLogger(__name__)

QualityFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""wild quality: (frames (T,H,W,3) uint8 RGB, probs (T,K+1,H,W) float32) -> (T, K) predicted J&F."""


@dataclass
class RoundContext:
    """What a selector sees after round ``round``. Frame indices are window-relative."""

    round: int                   # rounds done so far (1-based)
    num_frames: int              # T of the video the selector sees (the window in training episodes)
    first_frame: int             # frame of the initial scribble
    annotated: list[int]         # frames scribbled so far, in order
    counts: np.ndarray           # (T,) int64, times each frame has been scribbled
    quality: np.ndarray | None   # (T,) in [0, 1]: the quality the recommender may use
    gt_quality: np.ndarray       # (T,) ground-truth J&F per frame, averaged over objects
    rng: np.random.Generator     # per-sample generator
    try_frames: Callable[[Sequence[int]], np.ndarray] | None = None  # oracle look-ahead


class Selector(Protocol):
    name: str
    needs_quality: bool

    def __call__(self, ctx: RoundContext) -> int: ...


@dataclass
class RoundRecord:
    round: int                   # 1-based
    frame: int                   # frame annotated in this round (window-relative)
    jf: float                    # object-weighted J&F over the whole video, as the session scores it
    frame_jf: np.ndarray         # (T,) ground-truth J&F per frame (window), averaged over objects
    quality: np.ndarray | None   # (T,) what the recommender saw after this round
    counts: np.ndarray           # (T,) scribble counts after this round
    next_frame: int | None = None  # frame chosen for the next round (None after the last round)
    next_rank: int | None = None   # its rank by ground-truth quality (0 = the worst frame)
    quality_pearson: float | None = None  # wild: correlation of predicted and true per-frame J&F
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("frame_jf", "quality", "counts"):
            if d[k] is not None:
                d[k] = np.asarray(d[k]).tolist()
        return d

    @classmethod
    def from_json(cls, d: dict) -> "RoundRecord":
        d = dict(d)
        d["frame_jf"] = np.asarray(d["frame_jf"], dtype=np.float64)
        d["counts"] = np.asarray(d["counts"], dtype=np.int64)
        if d.get("quality") is not None:
            d["quality"] = np.asarray(d["quality"], dtype=np.float64)
        return cls(**d)


@dataclass
class SampleRecord:
    sequence: str
    scribble_idx: int
    num_frames: int              # frames of the whole video
    first_frame: int             # initial scribble frame (whole-video index)
    window: tuple[int, int]      # (start, stop) of the frames the backend saw
    rounds: list[RoundRecord] = field(default_factory=list)

    @property
    def curve(self) -> list[float]:
        return [0.0] + [r.jf for r in self.rounds]

    def to_json(self) -> dict:
        return {"sequence": self.sequence, "scribble_idx": self.scribble_idx, "num_frames": self.num_frames,
                "first_frame": self.first_frame, "window": list(self.window),
                "rounds": [r.to_json() for r in self.rounds]}

    @classmethod
    def from_json(cls, d: dict) -> "SampleRecord":
        return cls(d["sequence"], int(d["scribble_idx"]), int(d["num_frames"]), int(d["first_frame"]),
                   tuple(d["window"]), [RoundRecord.from_json(r) for r in d["rounds"]])


def sample_rng(seed: int, sequence: str, scribble_idx: int) -> np.random.Generator:
    """A generator that depends only on (seed, sample): results do not depend on which samples ran
    before, so a resumed run draws exactly what an uninterrupted one would."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(sequence.encode()), int(scribble_idx)])


def score_masks(gt: np.ndarray, pred: np.ndarray, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) J and F of ``pred`` against ``gt`` with the benchmark's own metric functions."""
    j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=num_objects)
    f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=num_objects)
    return j, f


class _ScoreCache:
    """The session scores every submission; we have already scored it (the oracle quality needs it
    before submitting). The service's metric functions are wrapped so that, for the exact array we
    submit, they return our result instead of computing it twice. Any other array is scored normally."""

    def __init__(self) -> None:
        import davisinteractive.evaluation.service as service

        self.service = service
        self.pred: np.ndarray | None = None
        self.j = self.f = None
        if not getattr(service.batched_jaccard, "_ivosw_cached", False):
            orig_j, orig_f = service.batched_jaccard, service.batched_f_measure

            def jaccard(gt, pred, *a, **k):
                c = _ScoreCache.current
                return c.j if c is not None and pred is c.pred else orig_j(gt, pred, *a, **k)

            def f_measure(gt, pred, *a, **k):
                c = _ScoreCache.current
                return c.f if c is not None and pred is c.pred else orig_f(gt, pred, *a, **k)

            jaccard._ivosw_cached = f_measure._ivosw_cached = True
            service.batched_jaccard, service.batched_f_measure = jaccard, f_measure

    current: "_ScoreCache | None" = None

    def set(self, pred: np.ndarray, j: np.ndarray, f: np.ndarray) -> None:
        self.pred, self.j, self.f = pred, j, f
        _ScoreCache.current = self

    def clear(self) -> None:
        self.pred = self.j = self.f = None
        _ScoreCache.current = None


def _window_scribbles(scribbles: dict, start: int, stop: int) -> dict:
    return {"sequence": scribbles.get("sequence"), "scribbles": scribbles["scribbles"][start:stop]}


def _rank(values: np.ndarray, index: int) -> int:
    """Rank of ``values[index]`` in ascending order (0 = lowest; ties share the best rank)."""
    return int(np.sum(values < values[index]))


def run_episodes(spec: DatasetSpec, samples: Sequence[tuple[str, int]], split: str, backend: VOSBackend,
                 selector: Selector, rounds: int, *, setting: str = "oracle", quality_fn: QualityFn | None = None,
                 min_nb_nodes: int = 4, seed: int = 0, window: int | None = None,
                 on_round: Callable[[SampleRecord, RoundRecord, RoundOutput], None] | None = None,
                 on_sample: Callable[[SampleRecord, pd.DataFrame], None] | None = None,
                 progress: bool = True, desc: str | None = None) -> list[SampleRecord]:
    """Run ``rounds`` rounds on every (sequence, scribble index) of ``samples``; see the module doc.

    With ``window=L`` each episode runs on the L-frame window around the initial scribble frame
    (``agent.window.episode_window``): the backend sees only the window, ground truth is submitted
    outside it, and every index the selector sees is window-relative.
    """
    if setting not in ("oracle", "wild"):
        raise ValueError(f"setting must be 'oracle' or 'wild', got '{setting}'")
    if setting == "wild" and getattr(selector, "needs_quality", False) and quality_fn is None:
        raise ValueError(f"method {selector.name} in the wild setting needs the quality-assessment network")
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    robot = dc.robot_for(min_nb_nodes)
    records: list[SampleRecord] = []
    bar = tqdm(list(samples), desc=desc or f"{selector.name}/{setting}", unit="sample", disable=not progress,
               dynamic_ncols=True)
    running: list[float] = []
    for seq, idx in bar:
        bar.set_postfix_str(f"{seq}#{idx}" + (f" J&F {np.mean(running):.3f}" if running else ""))
        rec, report = _run_sample(spec, seq, int(idx), split, backend, selector, rounds, setting=setting,
                                  quality_fn=quality_fn, robot=robot, seed=seed, window=window, on_round=on_round)
        records.append(rec)
        running.append(rec.rounds[-1].jf)
        if on_sample is not None:
            on_sample(rec, report)
    bar.close()
    return records


def _run_sample(spec: DatasetSpec, seq: str, idx: int, split: str, backend: VOSBackend, selector: Selector,
                rounds: int, *, setting: str, quality_fn: QualityFn | None, robot, seed: int,
                window: int | None, on_round) -> tuple[SampleRecord, pd.DataFrame]:
    frames = spec.frames(seq)
    gt = spec.annotations(seq).astype(np.int64)
    K = int(spec.sequences[seq]["num_objects"])
    T = len(gt)
    if len(frames) != T:
        raise DatasetError(f"{spec.root}: {seq} has {len(frames)} frames but {T} annotations; "
                           f"fix JPEGImages/480p/{seq} or Annotations/480p/{seq}")
    ids = np.unique(gt)
    extra = ids[(ids > K) & (ids != 255)]
    if len(extra):
        raise DatasetError(f"{spec.root / 'Annotations' / '480p' / seq}: object ids {extra.tolist()} found but the "
                           f"metadata says {K} objects; fix the masks or num_objects in the metadata")
    rng = sample_rng(seed, seq, idx)
    cache = _ScoreCache()
    record: SampleRecord | None = None
    start, stop = 0, T
    requested: int | None = None
    counts = np.zeros(0, dtype=np.int64)
    annotated: list[int] = []

    with registered(spec, [seq], split) as subset, tempfile.TemporaryDirectory(prefix="ivosw-session-") as tmp:
        sess = dc.DavisInteractiveSession(host="localhost", davis_root=str(spec.root), subset=subset,
                                          max_nb_interactions=rounds, max_time=None,
                                          metric_to_optimize="J_AND_F", report_save_dir=tmp)
        with sess:
            sess.samples = [(seq, idx)]
            service = sess.connector.service
            service.robot = robot
            # The service re-reads every annotation PNG each round; it gets the array we already
            # read from the same files (same values, same shape) instead.
            read = service.davis.load_annotations
            service.davis.load_annotations = (
                lambda sequence, dtype=np.int64: gt.astype(dtype, copy=False) if sequence == seq else read(sequence, dtype))
            try:
                while sess.next():
                    t_round = time.perf_counter()
                    _, scribbles, new = sess.get_scribbles(only_last=True)
                    frames_with = dc.annotated_frames(scribbles)
                    if new:
                        if not frames_with:
                            raise RuntimeError(f"{spec.root}/Scribbles/{seq}/{idx:03d}.json has no stroke")
                        first = int(frames_with[0])
                        start, stop = episode_window(T, first, window) if window else (0, T)
                        backend.start(frames[start:stop], K, sequence=seq)
                        counts = np.zeros(stop - start, dtype=np.int64)
                        annotated = []
                        record = SampleRecord(seq, idx, T, first, (start, stop))
                    # The robot may draw nothing (no error region it can skeletonise): the round
                    # still counts, on the frame that was requested.
                    gframe = int(frames_with[0]) if frames_with else int(requested)
                    lframe = gframe - start
                    out = backend.interact(lframe, _window_scribbles(scribbles, start, stop))
                    counts[lframe] += 1
                    annotated.append(lframe)
                    r = len(annotated)

                    t0 = time.perf_counter()
                    pred = gt.copy() if window else np.zeros_like(gt)
                    pred[start:stop] = out.masks
                    j, f = score_masks(gt, pred, K)
                    cache.set(pred, j, f)
                    frame_jf = jf_per_frame(j, f)[start:stop]
                    jf = float((0.5 * (j + f)).mean(axis=0).mean())
                    t_score = time.perf_counter() - t0

                    t0 = time.perf_counter()
                    quality, pearson = None, None
                    if setting == "oracle":
                        quality = frame_jf
                    elif quality_fn is not None:
                        quality = np.asarray(quality_fn(frames[start:stop], out.probs), dtype=np.float64).mean(axis=1)
                        if np.std(quality) > 0 and np.std(frame_jf) > 0:
                            pearson = float(np.corrcoef(quality, frame_jf)[0, 1])
                    t_quality = time.perf_counter() - t0

                    rr = RoundRecord(r, lframe, jf, frame_jf, quality, counts.copy(), quality_pearson=pearson)
                    t0 = time.perf_counter()
                    if r < rounds:
                        ctx = RoundContext(r, stop - start, record.first_frame - start, list(annotated), counts.copy(),
                                           quality, frame_jf, rng,
                                           _look_ahead(backend, robot, seq, pred, gt, K, start, stop)
                                           if setting == "oracle" else None)
                        nxt = int(np.clip(int(selector(ctx)), 0, stop - start - 1))
                        rr.next_frame, rr.next_rank = nxt, _rank(frame_jf, nxt)
                    else:
                        nxt = lframe
                    t_select = time.perf_counter() - t0
                    record.rounds.append(rr)

                    t0 = time.perf_counter()
                    requested = start + nxt
                    sess.submit_masks(pred, next_scribble_frame_candidates=[requested])
                    t_eval = time.perf_counter() - t0 + t_score
                    cache.clear()
                    rr.timings = {"backend": float(out.timings.get("total", 0.0)), "quality": t_quality,
                                  "recommender": t_select, "evaluator": t_eval,
                                  "round": time.perf_counter() - t_round}
                    if on_round is not None:
                        on_round(record, rr, out)
            finally:
                cache.clear()
            report = sess.get_report()
    return record, report


def _look_ahead(backend: VOSBackend, robot, seq: str, pred: np.ndarray, gt: np.ndarray, K: int,
                start: int, stop: int) -> Callable[[Sequence[int]], np.ndarray]:
    """Oracle look-ahead for greedy: for each candidate frame, the robot scribbles on it (as the
    session would), the backend runs one round on a copy of its state, and the window's
    object-weighted J&F is returned."""

    def try_frames(candidates: Sequence[int]) -> np.ndarray:
        scores = []
        for c in candidates:
            scr = robot.interact(seq, pred, gt, nb_objects=K, frame=start + int(c))
            with backend.trial():
                out = backend.interact(int(c), _window_scribbles(scr, start, stop))
            j, f = score_masks(gt[start:stop], out.masks.astype(np.int64), K)
            scores.append(float((0.5 * (j + f)).mean(axis=0).mean()))
        return np.asarray(scores)

    return try_frames
