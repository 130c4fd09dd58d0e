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

from agent.window import episode_window, window_scribbles
from datasets import davis_compat as dc
from datasets import davis_metrics
from datasets.layout import DatasetError, DatasetSpec, registered
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


#: score with davisinteractive's own functions instead of the project's (equal to 1e-6, tested in
#: tests/test_fast_metrics.py; several times slower); benchmarks/bench_eval.py sets it to time both
REFERENCE_METRICS = False


def score_masks(gt: np.ndarray, pred: np.ndarray, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, K) J and F of ``pred`` against ``gt``, the benchmark's definitions (``datasets.davis_metrics``)."""
    if REFERENCE_METRICS:
        j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=num_objects)
        f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=num_objects)
        return j, f
    return davis_metrics.jaccard_and_f(gt, pred, nb_objects=num_objects)


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
    for seq, scribble_idx in bar:
        bar.set_postfix_str(f"{seq}#{scribble_idx}" + (f" J&F {np.mean(running):.3f}" if running else ""))
        run = _SampleRun(spec, seq, int(scribble_idx), backend, selector, rounds, setting=setting,
                         quality_fn=quality_fn, robot=robot, seed=seed, window=window)
        rec, report = run.run(split, on_round)
        records.append(rec)
        running.append(rec.rounds[-1].jf)
        if on_sample is not None:
            on_sample(rec, report)
    bar.close()
    return records


def _load_sample(spec: DatasetSpec, seq: str) -> tuple[np.ndarray, np.ndarray, int]:
    """frames (T, H, W, 3) uint8, ground truth (T, H, W) int64 and the object count of ``seq``, checked
    against each other and the metadata (a clear error naming the folder to fix)."""
    frames = spec.frames(seq)
    gt = spec.annotations(seq).astype(np.int64)
    K = int(spec.sequences[seq]["num_objects"])
    if len(frames) != len(gt):
        raise DatasetError(f"{spec.root}: {seq} has {len(frames)} frames but {len(gt)} annotations; "
                           f"fix JPEGImages/480p/{seq} or Annotations/480p/{seq}")
    ids = np.unique(gt)
    extra = ids[(ids > K) & (ids != 255)]
    if len(extra):
        raise DatasetError(f"{spec.root / 'Annotations' / '480p' / seq}: object ids {extra.tolist()} found but the "
                           f"metadata says {K} objects; fix the masks or num_objects in the metadata")
    return frames, gt, K


def _patch_service(sess, robot, seq: str, gt: np.ndarray) -> None:
    """Two patches of the session's local service: our robot (its ``min_nb_nodes``), and the
    annotations already read for ``seq`` instead of re-reading every PNG each round (same values)."""
    service = sess.connector.service
    service.robot = robot
    read = service.davis.load_annotations
    service.davis.load_annotations = (
        lambda sequence, dtype=np.int64: gt.astype(dtype, copy=False) if sequence == seq else read(sequence, dtype))


class _SampleRun:
    """One sample's episode, step by step: :meth:`begin` on the initial scribble (window, backend,
    record), then per round :meth:`interact`, :meth:`score`, :meth:`assess`, :meth:`select`,
    :meth:`submit`. Frame indices it hands to the backend and the selector are window-relative."""

    def __init__(self, spec: DatasetSpec, seq: str, scribble_idx: int, backend: VOSBackend, selector: Selector,
                 rounds: int, *, setting: str, quality_fn: QualityFn | None, robot, seed: int,
                 window: int | None) -> None:
        self.spec, self.seq, self.scribble_idx = spec, seq, scribble_idx
        self.backend, self.selector, self.rounds = backend, selector, rounds
        self.setting, self.quality_fn, self.robot, self.window = setting, quality_fn, robot, window
        self.frames, self.gt, self.K = _load_sample(spec, seq)
        self.rng = sample_rng(seed, seq, scribble_idx)
        self.cache = _ScoreCache()
        self.scorer = davis_metrics.MaskScorer(self.gt, self.K)
        self.record: SampleRecord | None = None
        self.start, self.stop = 0, len(self.gt)
        self.counts = np.zeros(0, dtype=np.int64)
        self.annotated: list[int] = []
        self.requested: int | None = None       # whole-video frame asked of the robot last round

    def begin(self, scribbles: dict) -> None:
        """The initial scribble arrived: set the window around its frame and start the backend."""
        frames_with = dc.annotated_frames(scribbles)
        if not frames_with:
            raise RuntimeError(f"{self.spec.root}/Scribbles/{self.seq}/{self.scribble_idx:03d}.json has no stroke")
        first, T = int(frames_with[0]), len(self.gt)
        self.start, self.stop = episode_window(T, first, self.window) if self.window else (0, T)
        self.backend.start(self.frames[self.start:self.stop], self.K, sequence=self.seq)
        self.counts = np.zeros(self.stop - self.start, dtype=np.int64)
        self.annotated = []
        self.record = SampleRecord(self.seq, self.scribble_idx, T, first, (self.start, self.stop))

    def interact(self, scribbles: dict) -> tuple[int, RoundOutput]:
        """One backend round on the scribbled frame (window-relative). The robot may draw nothing (no
        error region it can skeletonise): the round still counts, on the frame that was requested."""
        frames_with = dc.annotated_frames(scribbles)
        lframe = (int(frames_with[0]) if frames_with else int(self.requested)) - self.start
        out = self.backend.interact(lframe, window_scribbles(scribbles, self.start, self.stop))
        self.counts[lframe] += 1
        self.annotated.append(lframe)
        return lframe, out

    def score(self, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """The whole-video prediction (ground truth outside the window), cached for the session's own
        scoring; returns it, the window's (T',) J&F per frame and the object-weighted J&F."""
        pred = self.gt.copy() if self.window else np.zeros_like(self.gt)
        pred[self.start:self.stop] = masks
        if REFERENCE_METRICS:
            j, f = score_masks(self.gt, pred, self.K)
        else:
            # Outside the window the prediction is the ground truth: J = F = 1 there exactly.
            j, f = np.ones((len(self.gt), self.K)), np.ones((len(self.gt), self.K))
            j[self.start:self.stop], f[self.start:self.stop] = self.scorer.score(masks, self.start)
        self.cache.set(pred, j, f)
        return pred, davis_metrics.jf_per_frame(j, f)[self.start:self.stop], davis_metrics.object_weighted_jf(j, f)

    def assess(self, probs: np.ndarray, frame_jf: np.ndarray) -> tuple[np.ndarray | None, float | None]:
        """The quality the recommender sees (oracle: ``frame_jf``; wild: the QA prediction averaged over
        objects, or None without a QA network) and, in wild, its Pearson correlation with ``frame_jf``."""
        if self.setting == "oracle":
            return frame_jf, None
        if self.quality_fn is None:
            return None, None
        quality = np.asarray(self.quality_fn(self.frames[self.start:self.stop], probs), dtype=np.float64).mean(axis=1)
        if not np.all(np.isfinite(quality)):   # NaN would be taken for the worst frame, or break the agent
            bad = np.flatnonzero(~np.isfinite(quality)).tolist()
            source = getattr(self.quality_fn, "source", None) or type(self.quality_fn).__name__
            raise ValueError(f"the quality network ({source}) predicted NaN/inf quality for frames {bad[:5]} of "
                             f"{self.seq}#{self.scribble_idx}; "
                             f"its weights are broken: retrain them or use the published assess_net.pt")
        pearson = float(np.corrcoef(quality, frame_jf)[0, 1]) if np.std(quality) > 0 and np.std(frame_jf) > 0 else None
        return quality, pearson

    def select(self, rr: RoundRecord, pred: np.ndarray) -> int:
        """The next frame (window-relative); after the last round the current one. A frame outside the
        window is an error (a selector bug), never clamped silently (the agent clamps its own frame,
        loudly: agent.recommender.AgentSelector)."""
        if rr.round >= self.rounds:
            return rr.frame
        look = (_look_ahead(self.backend, self.robot, self.seq, pred, self.gt, self.K, self.start, self.stop)
                if self.setting == "oracle" else None)
        ctx = RoundContext(rr.round, self.stop - self.start, self.record.first_frame - self.start,
                           list(self.annotated), self.counts.copy(), rr.quality, rr.frame_jf, self.rng, look)
        nxt = int(self.selector(ctx))
        if not 0 <= nxt < self.stop - self.start:
            raise ValueError(f"selector '{self.selector.name}' chose frame {nxt} for {self.seq}#{self.scribble_idx} after round "
                             f"{rr.round}, outside the {self.stop - self.start} frames it sees (0..{self.stop - self.start - 1}); "
                             f"fix the selector")
        rr.next_frame, rr.next_rank = nxt, _rank(rr.frame_jf, nxt)
        return nxt

    def submit(self, sess, pred: np.ndarray, nxt: int) -> None:
        """Hand the prediction to the session; its robot scribbles on ``nxt`` next."""
        self.requested = self.start + nxt
        sess.submit_masks(pred, next_scribble_frame_candidates=[self.requested])
        self.cache.clear()

    def round(self, sess, scribbles: dict, new: bool, on_round) -> None:
        """One round, timed step by step into the round record."""
        t_round = time.perf_counter()
        if new:
            self.begin(scribbles)
        lframe, out = self.interact(scribbles)
        t0 = time.perf_counter()
        pred, frame_jf, jf = self.score(out.masks)
        t_score = time.perf_counter() - t0
        t0 = time.perf_counter()
        quality, pearson = self.assess(out.probs, frame_jf)
        t_quality = time.perf_counter() - t0
        rr = RoundRecord(len(self.annotated), lframe, jf, frame_jf, quality, self.counts.copy(),
                         quality_pearson=pearson)
        t0 = time.perf_counter()
        nxt = self.select(rr, pred)
        t_select = time.perf_counter() - t0
        self.record.rounds.append(rr)
        t0 = time.perf_counter()
        self.submit(sess, pred, nxt)
        rr.timings = {"backend": float(out.timings.get("total", 0.0)), "quality": t_quality,
                      "recommender": t_select, "evaluator": time.perf_counter() - t0 + t_score,
                      "round": time.perf_counter() - t_round}
        if on_round is not None:
            on_round(self.record, rr, out)

    def run(self, split: str, on_round) -> tuple[SampleRecord, pd.DataFrame]:
        """The sample in its own session (only its sequence registered); the record and the session's report."""
        with registered(self.spec, [self.seq], split) as subset, \
                tempfile.TemporaryDirectory(prefix="ivosw-session-") as tmp:
            sess = dc.DavisInteractiveSession(host="localhost", davis_root=str(self.spec.root), subset=subset,
                                              max_nb_interactions=self.rounds, max_time=None,
                                              metric_to_optimize="J_AND_F", report_save_dir=tmp)
            with sess:
                sess.samples = [(self.seq, self.scribble_idx)]
                _patch_service(sess, self.robot, self.seq, self.gt)
                try:
                    while sess.next():
                        _, scribbles, new = sess.get_scribbles(only_last=True)
                        self.round(sess, scribbles, new, on_round)
                finally:
                    self.cache.clear()
                report = sess.get_report()
        return self.record, report


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
                out = backend.interact(int(c), window_scribbles(scr, start, stop))
            j, f = score_masks(gt[start:stop], out.masks.astype(np.int64), K)
            scores.append(davis_metrics.object_weighted_jf(j, f))
        return np.asarray(scores)

    return try_frames
