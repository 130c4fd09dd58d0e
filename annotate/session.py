"""An annotation session on a user's own video: scribble, propagate, see the predicted quality of every
frame and the frame to correct next.

State is explicit, as in SAM 2's video predictor::

    s = Session.open("clip.mp4", num_objects=2)              # video read at the working size (annotate.video)
    r = s.add_scribbles(scribbles)                           # one round: davisinteractive dict, one frame
    s.masks, s.probs, s.quality, s.recommendation            # (T,h,w) ids, (T,K+1,h,w), (T,) in [0,1], frame
    s.undo(); s.save("ws/"); s = Session.load("ws/")          # exact: the next round equals an uninterrupted one
    s.export_masks("out/masks"); s.export_overlay("out/overlay.mp4")

Quality is the QA network's predicted J&F per frame and object, averaged over objects (as in the wild
setting of the evaluation). Recommendation methods: ``ours`` (the DQN agent on [quality, times scribbled]),
``worst`` (lowest predicted quality among frames not annotated yet), ``linspace``, ``random`` (the pure
rules of :mod:`agent.selection`). A method whose weights are missing falls back to ``linspace``, which
needs none, and the recommendation says so. The session sits above the parts (backends, agent, QA
network); none of them imports it.
"""
from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from agent.dqn import greedy_action, make_state
from agent.selection import select_linspace, select_random, select_worst
from annotate import store
from annotate.export import overlay_frame, write_palette_png, write_video
from annotate.scribbles import ScribbleError, round_scribbles
from annotate.video import MAX_PIXELS, MAX_SIDE, Video, VideoError, load_video
from core.device import resolve_device
from core.errors import InputError
from core.io import atomic_write_bytes, atomic_write_json
from VOS.base import BackendError
from VOS.registry import build_backend, canonical

log = logging.getLogger(__name__)

METHODS = ("ours", "worst", "linspace", "random")
#: the rule used when the requested one needs weights that are missing: it reads no quality and no network
FALLBACK = "linspace"
WORKSPACE_VERSION = 1

Progress = Callable[[str, float], None]
"""progress(stage, fraction in [0, 1]) called as a round goes: 'segmenting', 'quality', 'recommending', 'done'."""


class SessionError(InputError, ValueError):
    """A request the session cannot carry out; nothing done so far is changed. The message says what to do."""


@dataclass
class Recommendation:
    """The frame to annotate next. ``method``: the rule that chose it; ``requested``: the one asked for
    (they differ when weights are missing, and ``note`` says why)."""

    frame: int
    method: str
    requested: str
    note: str = ""

    def to_json(self) -> dict:
        return {"frame": self.frame, "method": self.method, "requested": self.requested, "note": self.note}


@dataclass
class Round:
    """One round. ``quality``: (T,) predicted J&F after it (None without QA weights), ``quality_objects`` (T, K).
    masks/backend_before are kept for the last ``undo_depth`` rounds, probs for the last two (an undo without
    them replays the rounds)."""

    index: int
    frame: int
    scribbles: dict
    quality: np.ndarray | None
    quality_objects: np.ndarray | None
    recommendation: Recommendation | None
    rng_before: dict
    timings: dict[str, float] = field(default_factory=dict)
    masks: np.ndarray | None = None
    probs: np.ndarray | None = None
    backend_before: dict | None = None


class Session:
    """See the module doc. Build one with :meth:`open` (a path) or the constructor (a :class:`Video`)."""

    def __init__(self, video: Video, num_objects: int = 1, backend: str = "classic", method: str = "ours",
                 weights_dir: str | os.PathLike = "weights", qa_weights: str | os.PathLike | None = None,
                 agent_weights: str | os.PathLike | None = None, device: str = "auto", seed: int = 0,
                 backend_options: dict | None = None, undo_depth: int = 3, qa_batch_size: int = 16,
                 max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS) -> None:
        if int(num_objects) < 1:
            raise SessionError(f"num_objects must be at least 1, got {num_objects}")
        if method not in METHODS:
            raise SessionError(f"unknown method '{method}'; known: {', '.join(METHODS)}")
        try:
            self.backend_name = canonical(backend)
        except BackendError as e:
            raise SessionError(str(e)) from None
        self.video = video
        self.num_objects = int(num_objects)
        self.method = method
        self.seed = int(seed)
        self.device_name = str(device)
        self.device = resolve_device(device)
        self.backend_options = dict(backend_options or {})
        self.undo_depth = max(1, int(undo_depth))
        self.max_side, self.max_pixels = int(max_side), int(max_pixels)
        wdir = Path(weights_dir)
        self.qa_path = Path(qa_weights) if qa_weights else wdir / "assess_net.pt"
        self.agent_path = Path(agent_weights) if agent_weights else wdir / "agent.pt"
        self.assessor, self.qa_status = self._load_qa(qa_batch_size)
        self.agent, self.agent_status = self._load_agent()
        try:
            self.backend = build_backend(self.backend_name, self.device, **self.backend_options)
        except BackendError as e:
            raise SessionError(f"backend {self.backend_name} cannot be built: {e}") from None
        self.backend.start(video.frames, self.num_objects, sequence=self.name)
        self.rng = np.random.default_rng(self.seed)
        self.rounds: list[Round] = []
        self.masks: np.ndarray | None = None
        self.probs: np.ndarray | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, num_objects: int = 1, *, max_side: int = MAX_SIDE,
             max_pixels: int = MAX_PIXELS, **kwargs: Any) -> Session:
        """Read the video at ``path`` (file or folder of frames) and start a session on it."""
        try:
            video = load_video(path, max_side=max_side, max_pixels=max_pixels)
        except VideoError as e:
            raise SessionError(str(e)) from None
        return cls(video, num_objects, max_side=max_side, max_pixels=max_pixels, **kwargs)

    def _load_qa(self, batch_size: int) -> tuple[Any, str]:
        if not self.qa_path.is_file():
            return None, (f"no QA network weights at {self.qa_path}: no predicted quality; train them "
                          f"(`python generate_data.py && python quality_assessment.py`) or place the published "
                          f"assess_net.pt there")
        from agent.quality import QualityAssessor, load_quality_net

        try:
            net = load_quality_net(self.qa_path, self.device)
        except (RuntimeError, ValueError, KeyError, OSError) as e:
            raise SessionError(f"{self.qa_path} is not a QA network checkpoint ({e}); remove it or give "
                               f"qa_weights= the right file") from None
        return QualityAssessor(net, self.device, batch_size=batch_size), f"QA network {self.qa_path} ({net.backbone})"

    def _load_agent(self) -> tuple[Any, str]:
        if not self.agent_path.is_file():
            return None, (f"no agent weights at {self.agent_path}: train them (`python produce_reward.py && "
                          f"python pretrain_agent.py && python train_agent.py`) or place the published agent.pt there")
        from agent.qnet import load_agent

        try:
            net = load_agent(self.agent_path, self.device)
        except (RuntimeError, ValueError, KeyError, OSError) as e:
            raise SessionError(f"{self.agent_path} is not an agent checkpoint ({e}); remove it or give "
                               f"agent_weights= the right file") from None
        return net, f"agent {self.agent_path}"

    # -- what a caller reads ------------------------------------------------------------
    @property
    def name(self) -> str:
        return Path(self.video.source).stem or "video"

    @property
    def num_frames(self) -> int:
        return self.video.num_frames

    @property
    def annotated(self) -> list[int]:
        return [r.frame for r in self.rounds]

    @property
    def counts(self) -> np.ndarray:
        """(T,) int64 times each frame has been scribbled."""
        return np.bincount(np.asarray(self.annotated, np.int64), minlength=self.num_frames).astype(np.int64)

    @property
    def quality(self) -> np.ndarray | None:
        """(T,) predicted J&F per frame in [0, 1], averaged over objects, after the last round (None before a
        round or without QA weights)."""
        return self.rounds[-1].quality if self.rounds else None

    @property
    def quality_objects(self) -> np.ndarray | None:
        return self.rounds[-1].quality_objects if self.rounds else None

    @property
    def recommendation(self) -> Recommendation | None:
        return self.rounds[-1].recommendation if self.rounds else None

    def resolve_method(self, method: str | None = None) -> tuple[str, str]:
        """(the rule that will run, why it differs from ``method``, or '')."""
        method = method or self.method
        if method not in METHODS:
            raise SessionError(f"unknown method '{method}'; known: {', '.join(METHODS)}")
        missing = []
        if method in ("worst", "ours") and self.assessor is None:
            missing.append(self.qa_status)
        if method == "ours" and self.agent is None:
            missing.append(self.agent_status)
        if missing:
            return FALLBACK, (f"{method} needs trained weights ({'; '.join(missing)}); recommending with "
                              f"{FALLBACK}, a rule that needs no weights")
        return method, ""

    def status(self) -> dict:
        """Plain-JSON summary for a UI."""
        used, note = self.resolve_method()
        return {"video": self.video.source, "name": self.name, "num_frames": self.num_frames,
                "full_size": list(self.video.full_size), "work_size": list(self.video.work_size),
                "num_objects": self.num_objects, "backend": self.backend_name, "method": self.method,
                "method_used": used, "method_note": note, "qa": self.qa_status, "agent": self.agent_status,
                "has_quality": self.assessor is not None, "rounds": len(self.rounds), "annotated": self.annotated,
                "quality": None if self.quality is None else [round(float(q), 4) for q in self.quality],
                "recommendation": None if self.recommendation is None else self.recommendation.to_json(),
                "can_undo": bool(self.rounds)}

    # -- one round ----------------------------------------------------------------------
    def add_scribbles(self, scribbles: dict | list, frame: int | None = None,
                      progress: Progress | None = None) -> Round:
        """Run one round with ``scribbles`` (a davisinteractive dict with strokes on one frame, or a list of
        strokes with ``frame``). On any error nothing changes (the backend's state is restored)."""
        progress = progress or (lambda stage, frac: None)
        try:
            frame, scr = round_scribbles(scribbles, self.num_frames, self.num_objects, frame, self.name)
        except ScribbleError as e:
            raise SessionError(str(e)) from None
        snapshot = self.backend.get_state()
        rng_before = copy.deepcopy(self.rng.bit_generator.state)
        progress("segmenting", 0.0)
        t0 = time.perf_counter()
        try:
            out = self.backend.interact(frame, scr)
        except Exception:
            self.backend.set_state(snapshot)
            raise
        timings = {"backend": time.perf_counter() - t0}
        rnd = Round(len(self.rounds) + 1, frame, scr, None, None, None, rng_before, timings,
                    out.masks, out.probs, snapshot)
        try:
            progress("quality", 0.6)
            t0 = time.perf_counter()
            rnd.quality_objects, rnd.quality = self._assess(out.probs)
            timings["quality"] = time.perf_counter() - t0
            self._push(rnd)
            progress("recommending", 0.9)
            t0 = time.perf_counter()
            rnd.recommendation = self._recommend(self.method)
            timings["recommend"] = time.perf_counter() - t0
        except Exception:
            if self.rounds and self.rounds[-1] is rnd:
                self._pop_to_previous()
            else:
                self.backend.set_state(snapshot)
            self.rng.bit_generator.state = rng_before
            raise
        progress("done", 1.0)
        log.info("round %d on frame %d: backend %.2fs, quality %.2fs; next frame %d (%s)", rnd.index, frame,
                 timings["backend"], timings.get("quality", 0.0), rnd.recommendation.frame, rnd.recommendation.method)
        return rnd

    def _assess(self, probs: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        if self.assessor is None:
            return None, None
        per_obj = np.asarray(self.assessor(self.video.frames, probs), np.float64)   # (T, K) in [0, 1]
        return per_obj, per_obj.mean(axis=1)

    def _push(self, rnd: Round) -> None:
        self.rounds.append(rnd)
        self.masks, self.probs = rnd.masks, rnd.probs
        # keep what undo needs for the last undo_depth rounds (probabilities, the largest arrays, for the
        # last two only); a round undone without them is replayed
        for old in self.rounds[:-self.undo_depth - 1]:
            old.masks = old.probs = old.backend_before = None
        if len(self.rounds) > self.undo_depth:
            self.rounds[-self.undo_depth - 1].backend_before = None
        for old in self.rounds[:-2]:
            old.probs = None

    def recommend(self, method: str | None = None) -> Recommendation:
        """Recompute the recommendation after the last round with ``method`` (default: the session's); it
        becomes the session's recommendation and ``method`` its method."""
        if not self.rounds:
            raise SessionError("no round yet: scribble on a frame first")
        method = method or self.method
        rec = self._recommend(method)
        self.method = method
        self.rounds[-1].recommendation = rec
        return rec

    def _recommend(self, method: str) -> Recommendation:
        used, note = self.resolve_method(method)
        T, annotated = self.num_frames, self.annotated
        if used == "random":
            frame = select_random(self.rng, T)
        elif used == "linspace":
            frame = select_linspace(T, annotated[0], annotated)
        elif used == "worst":
            frame = select_worst(self.quality, annotated)
        else:
            frame = greedy_action(self.agent, make_state(self.quality, self.counts), self.device)
        return Recommendation(int(np.clip(frame, 0, T - 1)), used, method, note)

    # -- undo and replay ----------------------------------------------------------------
    def undo(self) -> Round | None:
        """Drop the last round: masks, quality, recommendation and the backend's state are those after the
        round before (exactly). Returns the round that is now the last one (None when none is left)."""
        if not self.rounds:
            raise SessionError("nothing to undo: no round yet")
        self._pop_to_previous()
        return self.rounds[-1] if self.rounds else None

    def _pop_to_previous(self) -> None:
        last = self.rounds.pop()
        self.rng.bit_generator.state = last.rng_before
        if not self.rounds:
            self.backend.start(self.video.frames, self.num_objects, sequence=self.name)
            self.masks = self.probs = None
            return
        prev = self.rounds[-1]
        if last.backend_before is not None and prev.masks is not None and prev.probs is not None:
            self.backend.set_state(last.backend_before)
        else:
            out = self._replay(self.rounds)
            prev.masks, prev.probs = out.masks, out.probs
        self.masks, self.probs = prev.masks, prev.probs

    def _replay(self, rounds: list[Round]):
        """Restart the backend and run ``rounds`` again (backends are deterministic): their last output."""
        log.info("replaying %d round(s)", len(rounds))
        self.backend.start(self.video.frames, self.num_objects, sequence=self.name)
        out = None
        for r in rounds:
            out = self.backend.interact(r.frame, r.scribbles)
        return out

    # -- masks at the source's size -----------------------------------------------------
    def full_masks(self, t: int) -> np.ndarray:
        """(H, W) uint8 object ids of frame ``t`` at the source's size (one-hot maps resized bilinearly,
        then arg-max: smoother outlines than nearest-neighbour)."""
        if self.masks is None:
            raise SessionError("no masks yet: run a round first")
        m = self.masks[t]
        H, W = self.video.full_size
        if m.shape == (H, W):
            return m.copy()
        K1 = self.num_objects + 1
        best = np.full((H, W), -1.0, np.float32)
        out = np.zeros((H, W), np.uint8)
        for k in range(K1):
            plane = cv2.resize((m == k).astype(np.float32), (W, H), interpolation=cv2.INTER_LINEAR)
            np.copyto(out, np.uint8(k), where=plane > best)
            np.maximum(best, plane, out=best)
        return out

    def overlay(self, t: int, alpha: float = 0.5) -> np.ndarray:
        """(h, w, 3) uint8 RGB of frame ``t`` at the working size with its masks blended in (DAVIS colours)."""
        return overlay_frame(self.video.frames[t], None if self.masks is None else self.masks[t], alpha)

    def export_masks(self, out_dir: str | os.PathLike, full_size: bool = True) -> list[Path]:
        """One DAVIS-palette PNG per frame (``00000.png``...), at the source's size unless ``full_size=False``."""
        if self.masks is None:
            raise SessionError("no masks to export yet: run a round first")
        out = Path(out_dir)
        return [write_palette_png(out / f"{t:05d}.png", self.full_masks(t) if full_size else self.masks[t])
                for t in range(self.num_frames)]

    def export_overlay(self, path: str | os.PathLike, fps: float | None = None) -> Path:
        """An mp4 (or .avi) of the frames with the masks overlaid, at the working size."""
        if self.masks is None:
            raise SessionError("no masks to export yet: run a round first")
        return write_video(path, (self.overlay(t) for t in range(self.num_frames)), fps or self.video.fps or 24.0)

    # -- workspace ----------------------------------------------------------------------
    def save(self, workspace: str | os.PathLike) -> Path:
        """Write the session to ``workspace`` (a folder): settings, every round's scribbles and results, the
        backend's state (or, if it cannot be stored, the rounds are replayed on load), the current masks
        (exact) and probabilities (float16). Each file is written atomically."""
        ws = Path(workspace)
        ws.mkdir(parents=True, exist_ok=True)
        backend_state = "replay"
        if self.rounds:
            try:
                store.save(ws / "backend_state.json", self.backend.get_state())
                backend_state = "stored"
            except store.StoreError as e:
                log.warning("backend %s state cannot be stored (%s): the rounds will be replayed on load",
                            self.backend_name, e)
            store.save(ws / "outputs.json", {"masks": self.masks, "probs": self.probs.astype(np.float16)})
        meta = {"version": WORKSPACE_VERSION, "video": self.video.source, "fingerprint": self.video.fingerprint,
                "num_frames": self.num_frames, "full_size": list(self.video.full_size),
                "work_size": list(self.video.work_size), "max_side": self.max_side, "max_pixels": self.max_pixels,
                "num_objects": self.num_objects, "backend": self.backend_name,
                "backend_options": self.backend_options, "method": self.method, "seed": self.seed,
                "device": self.device_name, "qa_weights": str(self.qa_path), "agent_weights": str(self.agent_path),
                "undo_depth": self.undo_depth, "backend_state": backend_state,
                "rng": self.rng.bit_generator.state, "rounds": [self._round_json(r) for r in self.rounds]}
        atomic_write_json(ws / "workspace.json", meta)
        return ws

    @staticmethod
    def _round_json(r: Round) -> dict:
        return {"index": r.index, "frame": r.frame, "scribbles": r.scribbles,
                "quality": None if r.quality is None else r.quality.tolist(),
                "quality_objects": None if r.quality_objects is None else r.quality_objects.tolist(),
                "recommendation": None if r.recommendation is None else r.recommendation.to_json(),
                "rng_before": r.rng_before, "timings": r.timings}

    @classmethod
    def load(cls, workspace: str | os.PathLike, video: str | os.PathLike | None = None, **overrides: Any) -> Session:
        """Reopen a workspace written by :meth:`save`, on its video (or ``video``, which must be the same
        one). ``overrides``: weights_dir/qa_weights/agent_weights/device/method."""
        ws = Path(workspace)
        meta_path = ws / "workspace.json"
        if not meta_path.is_file():
            raise SessionError(f"{ws}: not a workspace (no workspace.json); save one with Session.save or the "
                               f"page's Save button")
        import json

        meta = json.loads(meta_path.read_text())
        if meta.get("version") != WORKSPACE_VERSION:
            raise SessionError(f"{meta_path}: workspace version {meta.get('version')}, this code reads {WORKSPACE_VERSION}")
        src = video if video is not None else meta["video"]
        try:
            vid = load_video(src, max_side=meta["max_side"], max_pixels=meta["max_pixels"])
        except VideoError as e:
            raise SessionError(f"workspace {ws}: its video cannot be read ({e}); pass the video's new path") from None
        if vid.fingerprint != meta["fingerprint"]:
            raise SessionError(
                f"workspace {ws} was made on another video ({meta['video']}: {meta['num_frames']} frames, "
                f"{meta['full_size'][1]}x{meta['full_size'][0]}); {src} has {vid.num_frames} frames, "
                f"{vid.full_size[1]}x{vid.full_size[0]} and other content. Open that video, or start a new workspace")
        kw = {"num_objects": meta["num_objects"], "backend": meta["backend"], "method": meta["method"],
              "seed": meta["seed"], "device": meta["device"], "qa_weights": meta["qa_weights"],
              "agent_weights": meta["agent_weights"], "backend_options": meta["backend_options"],
              "undo_depth": meta["undo_depth"], "max_side": meta["max_side"], "max_pixels": meta["max_pixels"]}
        if "weights_dir" in overrides:
            wd = Path(overrides.pop("weights_dir"))
            kw["qa_weights"], kw["agent_weights"] = wd / "assess_net.pt", wd / "agent.pt"
        kw.update(overrides)
        s = cls(vid, **kw)
        s._restore(ws, meta)
        return s

    def _restore(self, ws: Path, meta: dict) -> None:
        for d in meta["rounds"]:
            rec = d.get("recommendation")
            self.rounds.append(Round(
                d["index"], d["frame"], d["scribbles"],
                None if d["quality"] is None else np.asarray(d["quality"], np.float64),
                None if d["quality_objects"] is None else np.asarray(d["quality_objects"], np.float64),
                Recommendation(**rec) if rec else None, d["rng_before"], d.get("timings", {})))
        self.rng.bit_generator.state = meta["rng"]
        if not self.rounds:
            return
        if meta.get("backend_state") == "stored":
            self.backend.set_state(store.load(ws / "backend_state.json"))
            outs = store.load(ws / "outputs.json")
            self.masks, self.probs = outs["masks"], outs["probs"].astype(np.float32)
        else:
            out = self._replay(self.rounds)
            self.masks, self.probs = out.masks, out.probs
        self.rounds[-1].masks, self.rounds[-1].probs = self.masks, self.probs

    def write_quality_csv(self, path: str | os.PathLike) -> Path:
        """frame, quality (mean over objects), quality_obj1..K, times_scribbled, recommended (0/1)."""
        if not self.rounds:
            raise SessionError("no round yet")
        q, qo = self.quality, self.quality_objects
        rec = self.recommendation.frame if self.recommendation else -1
        cols = ["frame", "quality"] + [f"quality_obj{k}" for k in range(1, self.num_objects + 1)] + [
            "times_scribbled", "recommended"]
        lines = [",".join(cols)]
        counts = self.counts
        for t in range(self.num_frames):
            vals = [str(t), "" if q is None else f"{q[t]:.6f}"]
            vals += ["" if qo is None else f"{qo[t, k]:.6f}" for k in range(self.num_objects)]
            vals += [str(int(counts[t])), str(int(t == rec))]
            lines.append(",".join(vals))
        return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


__all__ = ["FALLBACK", "METHODS", "Recommendation", "Round", "Session", "SessionError"]
