"""The ``ours`` frame selector: the trained agent's greedy choice (PROTOCOL.md §3, §5)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from agent.dqn import greedy_action, make_state
from agent.qnet import load_agent

log = logging.getLogger(__name__)


def agent_state(ctx: Any) -> np.ndarray:
    """(T, 2) float32 state [quality, counts] of a RoundContext (quality: GT J&F in oracle,
    the QA prediction in wild; counts: times each frame was scribbled)."""
    if ctx.quality is None:
        raise ValueError("the agent needs per-frame quality (needs_quality=True) but the context has none")
    return make_state(ctx.quality, ctx.counts)


class AgentSelector:
    """Selector protocol of ``interaction.loop``: argmax of the Q-values, no exploration; may
    repeat frames. The frame is clamped to [0, T) (the session raises on out-of-range frames; README,
    *Differences*), never silently: each clamp is logged as a warning and kept in ``clamped`` as
    (T, frame the network chose)."""

    name = "ours"
    needs_quality = True

    def __init__(self, net: nn.Module, device: torch.device | str = "cpu") -> None:
        self.net = net.to(device).eval()
        self.device = device
        self.clamped: list[tuple[int, int]] = []
        source = getattr(net, "source", None)
        self.weight_files = [source] if source else None   # the run identity hashes the file

    @classmethod
    def from_weights(cls, path: str | Path = "weights/agent.pt", device: torch.device | str = "cpu") -> AgentSelector:
        return cls(load_agent(path, device), device)

    def __call__(self, ctx: Any) -> int:
        state = agent_state(ctx)
        frame = int(greedy_action(self.net, state, self.device))
        T = int(ctx.num_frames)
        if not 0 <= frame < T:
            log.warning("the agent chose frame %d of a %d-frame video; clamped to %d", frame, T,
                        int(np.clip(frame, 0, T - 1)))
            self.clamped.append((T, frame))
        return int(np.clip(frame, 0, T - 1))


def selector_from_weights(path: str | Path, device: torch.device | str = "cpu", *, qa: Any = None, tap: Any = None):
    """``method=ours`` from a weights file: the published layout (``weights/agent.pt``: QNet over the
    (T, 2) state, loaded strictly) gives :class:`AgentSelector`; an ``agent-v2`` checkpoint
    (``agent.imitation``) gives the v2 ranker's :class:`agent.imitation.V2Selector` (``qa``: the wild
    :class:`agent.imitation.FeatureQuality`; ``tap``: an :class:`agent.lookahead.BackendTap` that
    supplies the round's probabilities)."""
    from agent.imitation import V2Selector, checkpoint_kind, load_checkpoint

    if checkpoint_kind(path) == "agent-v2":
        return V2Selector(load_checkpoint(path, "agent-v2", device), qa=qa, tap=tap)
    return AgentSelector.from_weights(path, device)
