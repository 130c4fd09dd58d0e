"""Test-only pieces shared by several test files."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from datasets import davis_compat as dc
from VOS._checkout import CHECKOUTS
from VOS.base import RoundOutput, VOSBackend

REPO = Path(__file__).resolve().parents[1]
#: pinned, unmodified snapshots of the three networks' repositories beside the repository (CI runs in a
#: fresh clone with a copy of shared/ next to it: <clone>/../shared/vos-checkouts)
SHARED_CHECKOUTS = REPO.parent / "shared" / "vos-checkouts"
#: a file every complete checkout holds
CHECKOUT_MARKERS = {"atnet": "networks/atnet.py", "manet": "networks/IntVOS.py", "ipn": "interaction_net.py"}


def checkout_path(backend: str) -> Path:
    """The checkout the tests use for ``backend`` ('atnet', 'manet', 'ipn'): VOS/<Name> when it holds
    one, else the shared snapshot ../shared/vos-checkouts/<Name>."""
    name = CHECKOUTS[backend].name
    own = REPO / "VOS" / name
    return own if (own / CHECKOUT_MARKERS[backend]).is_file() else SHARED_CHECKOUTS / name


def checkout_available(backend: str) -> bool:
    """True when VOS/<Name> holds the checkout or the shared snapshots folder exists (then a missing or
    incomplete snapshot fails the tests that need it instead of skipping them)."""
    return (REPO / "VOS" / CHECKOUTS[backend].name / CHECKOUT_MARKERS[backend]).is_file() or SHARED_CHECKOUTS.is_dir()


def checkout_marks(backend: str) -> list:
    """The marks of a test that needs the checkout of ``backend``: ``checkout``, and a skip only when
    no checkout can be had (neither VOS/<Name> nor ../shared/vos-checkouts)."""
    info = CHECKOUTS[backend]
    return [pytest.mark.checkout,
            pytest.mark.skipif(not checkout_available(backend),
                               reason=f"{info.name} checkout missing: {info.clone_command()} "
                                      f"(or put the snapshots at {SHARED_CHECKOUTS})")]


def needs_checkout(backend: str):
    """Decorator applying :func:`checkout_marks`."""
    def mark(test):
        for m in checkout_marks(backend):
            test = m(test)
        return test

    return mark


def require_checkout_path(backend: str) -> Path:
    """:func:`checkout_path`, failing (not skipping) when it does not hold the checkout."""
    path = checkout_path(backend)
    if not (path / CHECKOUT_MARKERS[backend]).is_file():
        pytest.fail(f"{path} does not hold the {CHECKOUTS[backend].name} checkout "
                    f"({CHECKOUT_MARKERS[backend]} missing)")
    return path


class ScribbleFillBackend(VOSBackend):
    """A deterministic stand-in VOS network for loop tests (not a mock of the benchmark): on each
    annotated frame it labels the pixels under the scribbles and the rows/columns they span, and
    copies each annotated frame's mask to its neighbours within ``reach`` frames (nearest anchor
    wins). Its accuracy therefore depends on which frames are annotated, like a real network."""

    name = "scribble-fill"

    def __init__(self, device="cpu", reach: int = 1, **options):
        super().__init__(device, **options)
        self.reach = reach

    def _start(self) -> None:
        self.anchors: dict[int, np.ndarray] = {}

    def _state_keys(self):
        return super()._state_keys() + ["anchors"]

    def _interact(self, frame, scribbles):
        T, H, W = self.frames.shape[:3]
        m = self.anchors.get(frame, np.zeros((H, W), np.uint8)).copy()
        for stroke in scribbles["scribbles"][frame]:
            pts = (np.asarray(stroke["path"]) * [W, H]).astype(int)
            pts = np.clip(pts, 0, [W - 1, H - 1])
            x0, y0 = pts.min(0)
            x1, y1 = pts.max(0)
            if stroke["object_id"] > 0:
                m[max(0, y0 - 2): y1 + 3, max(0, x0 - 2): x1 + 3] = stroke["object_id"]
            else:
                m[pts[:, 1], pts[:, 0]] = 0
        self.anchors[frame] = m
        masks = np.zeros((T, H, W), np.uint8)
        dist = np.full(T, np.inf)
        for a, am in self.anchors.items():
            for t in range(max(0, a - self.reach), min(T, a + self.reach + 1)):
                if abs(t - a) < dist[t]:
                    dist[t], masks[t] = abs(t - a), am
        K = self.num_objects
        probs = np.eye(K + 1, dtype=np.float32)[masks].transpose(0, 3, 1, 2).copy()
        return RoundOutput(masks, probs, {})


def object_weighted_jf(gt: np.ndarray, pred: np.ndarray, k: int) -> float:
    j = dc.batched_jaccard(gt, pred, average_over_objects=False, nb_objects=k)
    f = dc.batched_f_measure(gt, pred, average_over_objects=False, nb_objects=k)
    return float((0.5 * (j + f)).mean(axis=0).mean())


def two_bars_clip(T: int = 6, H: int = 64, W: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """frames (T, H, W, 3) uint8 RGB and gt (T, H, W) uint8: a horizontal and a vertical bar,
    moving; the adapters' tests run their networks on it."""
    rng = np.random.default_rng(0)
    gt = np.zeros((T, H, W), np.uint8)
    for t in range(T):
        gt[t, 14:22, 10 + 2 * t: 60 + 2 * t] = 1
        gt[t, 24:58, 72 - t: 80 - t] = 2
    colours = np.array([[60, 80, 70], [210, 70, 40], [40, 90, 220]], np.float64)
    frames = np.clip(colours[gt] + rng.normal(0, 10, (T, H, W, 3)), 0, 255).astype(np.uint8)
    return frames, gt


@contextmanager
def torch_threads(n: int):
    """Two torch threads on a busy 2-core machine thrash; one is several times faster here."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def parts_dying_once(marker: str, *args):
    """The evaluation's parts, except that the first worker to run a round (when ``marker`` does
    not exist yet) dies on the spot, as a crashed or killed machine would."""
    import os
    from pathlib import Path

    from interaction.factory import build_eval_parts

    backend, selector, quality_fn = build_eval_parts(*args)
    interact = backend.interact

    def dying(*a, **k):
        if not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(1)
        return interact(*a, **k)

    backend.interact = dying
    return backend, selector, quality_fn
