"""The one interface every VOS network sits behind.

A backend is a stateful predictor for one video at a time (like SAM 2's video predictor):

    backend.start(frames, num_objects)          # new video, state cleared
    out = backend.interact(frame, scribbles)    # one round: scribbles on `frame`
    snap = backend.get_state(); ...; backend.set_state(snap)   # try a frame, then undo

Object ids are 1..K in masks; channel k of ``probs`` is object k, channel 0 background.
"""
from __future__ import annotations

import abc
import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np


class BackendError(RuntimeError):
    """A backend cannot be built or run; the message says what to fix."""


@dataclass
class RoundOutput:
    """What a backend returns after one round.

    masks: (T, H, W) uint8 object ids (0 = background).
    probs: (T, K+1, H, W) float32 in [0, 1], channel k the probability of object k, channel 0
        background. Softmax backends (classic, MANet, IPN) sum to 1 over channels; ATNet's channels
        are independent per-object sigmoids (channel 0 = 1 - max_k), as the published wrapper kept them.
    timings: seconds spent per named step of the round (at least ``total``).
    """

    masks: np.ndarray
    probs: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class VOSBackend(abc.ABC):
    """Base class: subclasses implement ``_start``, ``_interact`` and list their state.

    ``device`` is a resolved ``torch.device`` or a string; backends that use no torch ignore it.
    """

    name: str = "base"
    #: which scribbles the network wants each round: "all" (every round so far) or "last"
    scribble_history: str = "last"

    def __init__(self, device: Any = "cpu", **options: Any) -> None:
        self.device = device
        self.options = options
        self.frames: np.ndarray | None = None
        self.num_objects = 0
        self.scribbles: list[tuple[int, dict]] = []   # (frame, scribble dict) per round
        self.annotated: list[int] = []

    # -- public verbs ---------------------------------------------------------------
    def start(self, frames: np.ndarray, num_objects: int, sequence: str | None = None) -> None:
        """Begin a new video. frames: (T, H, W, 3) uint8 RGB; num_objects: K >= 1."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
        if num_objects < 1:
            raise ValueError(f"num_objects must be >= 1, got {num_objects}")
        self.frames = frames
        self.num_objects = int(num_objects)
        self.sequence = sequence
        self.scribbles = []
        self.annotated = []
        self._start()

    def interact(self, frame: int, scribbles: dict) -> RoundOutput:
        """One round. scribbles: davisinteractive dict {'scribbles': [per frame: [stroke, ...]]}
        holding this round's strokes on ``frame`` (may be empty when the robot drew nothing)."""
        if self.frames is None:
            raise BackendError("call start() before interact()")
        T = len(self.frames)
        if not 0 <= frame < T:
            raise ValueError(f"frame {frame} outside the video (0..{T - 1})")
        self.scribbles.append((int(frame), scribbles))
        self.annotated.append(int(frame))
        t0 = time.perf_counter()
        out = self._interact(int(frame), scribbles)
        out.timings.setdefault("total", time.perf_counter() - t0)
        self._check_output(out)
        return out

    def get_state(self) -> dict:
        """A deep copy of everything a later round depends on."""
        return copy.deepcopy({k: getattr(self, k) for k in self._state_keys()})

    def set_state(self, state: dict) -> None:
        for k, v in copy.deepcopy(state).items():
            setattr(self, k, v)

    @contextmanager
    def trial(self) -> Iterator[None]:
        """Run rounds inside the block, then restore the state from before it."""
        snap = self.get_state()
        try:
            yield
        finally:
            self.set_state(snap)

    # -- for subclasses -------------------------------------------------------------
    def _state_keys(self) -> list[str]:
        """Attributes that make up the per-video state. Frames and caches that never change
        within a video (flow, features) are left out: they are shared, not copied."""
        return ["scribbles", "annotated"]

    @abc.abstractmethod
    def _start(self) -> None: ...

    @abc.abstractmethod
    def _interact(self, frame: int, scribbles: dict) -> RoundOutput: ...

    def _check_output(self, out: RoundOutput) -> None:
        T, H, W = self.frames.shape[:3]
        K = self.num_objects
        if out.masks.shape != (T, H, W) or out.masks.dtype != np.uint8:
            raise BackendError(f"{self.name}: masks {out.masks.shape} {out.masks.dtype}, expected {(T, H, W)} uint8")
        if out.probs.shape != (T, K + 1, H, W) or out.probs.dtype != np.float32:
            raise BackendError(f"{self.name}: probs {out.probs.shape} {out.probs.dtype}, expected {(T, K + 1, H, W)} float32")
