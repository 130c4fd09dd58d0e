"""Double DQN as published (PROTOCOL.md §5), in importable parts.

    batch = replay.sample(32, rng)
    info = update(policy, target, optimizer, batch, device, rng=rng)   # one TD step

States of one batch may have different lengths T (training windows are min(25, T) frames,
so videos shorter than 25 frames give shorter states). The network is bidirectional, so
zero-padding would change every frame's Q-value; instead states are grouped by length and
each group is run separately (:func:`q_values`), which is exact.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

GAMMA = 0.95
STEP_SCALE = 0.1      # y_step = gamma * Q' + 0.1 * r_step
DONE_SCALE = 0.1      # y_done = 0.1 * r_done
LR = 5e-6             # published; the built-in runs default to DEFAULT_LR (see train_agent.py)
DEFAULT_LR = 1e-3
WEIGHT_DECAY = 5e-4
BATCH_SIZE = 32
GRAD_CLAMP = 1.0
TARGET_COPY_PROB = 0.05
UPDATES_PER_EPISODE = 14


@dataclass
class Transition:
    """One decision. state/next_state: (T, 2) float32 [quality in [0, 1], scribble count];
    action: frame in [0, T); reward_step: +-1; reward_done: goal reward; done: last round.
    ``key`` = (sequence, scribble_idx, n_interaction) says where it came from (CSV columns sequence,
    scribble_iter, n_interaction)."""

    state: np.ndarray
    action: int
    next_state: np.ndarray
    reward_step: float
    reward_done: float
    done: bool = False
    key: tuple[str, int, int] | None = None


def make_state(quality: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(T,) quality in [0, 1] and (T,) scribble counts -> (T, 2) float32 state."""
    quality = np.asarray(quality, dtype=np.float32).reshape(-1)
    counts = np.asarray(counts, dtype=np.float32).reshape(-1)
    if quality.shape != counts.shape:
        raise ValueError(f"quality {quality.shape} and counts {counts.shape} differ in length")
    return np.stack([quality, counts], axis=1)


class ReplayBuffer:
    """FIFO experience replay of :class:`Transition` (oldest dropped beyond ``capacity``)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = int(capacity)
        self.memory: deque[Transition] = deque(maxlen=self.capacity)

    def __len__(self) -> int:
        return len(self.memory)

    def push(self, transition: Transition) -> None:
        self.memory.append(transition)

    def extend(self, transitions: Iterable[Transition]) -> None:
        self.memory.extend(transitions)

    def sample(self, batch_size: int, rng: np.random.Generator) -> list[Transition]:
        """``batch_size`` transitions drawn uniformly without replacement (all when fewer)."""
        n = len(self.memory)
        idx = rng.choice(n, size=min(batch_size, n), replace=False)
        return [self.memory[i] for i in idx]

    def state_dict(self) -> dict:
        return {"capacity": self.capacity, "memory": list(self.memory)}

    def load_state_dict(self, state: dict) -> None:
        self.capacity = int(state["capacity"])
        self.memory = deque(state["memory"], maxlen=self.capacity)


def epsilon(steps: int, start: float = 0.7, end: float = 0.25, decay: float = 1000.0) -> float:
    """Exploration rate after ``steps`` actions: end + (start - end) * exp(-steps / decay)
    (published: 0.25 + 0.45 * exp(-steps / 1000))."""
    return end + (start - end) * math.exp(-steps / decay)


def q_values(net: nn.Module, states: Sequence[np.ndarray], device: torch.device | str) -> list[torch.Tensor]:
    """Q-values of states of possibly different lengths: list of (T_i,) tensors, in order.

    States of equal length run as one batch; the result keeps the autograd graph."""
    out: list[torch.Tensor | None] = [None] * len(states)
    groups: dict[int, list[int]] = {}
    for i, s in enumerate(states):
        groups.setdefault(len(s), []).append(i)
    for idx in groups.values():
        x = torch.as_tensor(np.stack([states[i] for i in idx]), dtype=torch.float32, device=device)
        q = net(x)
        for row, i in enumerate(idx):
            out[i] = q[row]
    return out  # type: ignore[return-value]


@torch.no_grad()
def double_dqn_next_value(policy: nn.Module, target: nn.Module, next_states: Sequence[np.ndarray],
                          device: torch.device | str) -> torch.Tensor:
    """(N,) Q_target(s', argmax_a Q_policy(s', a)): the policy picks, the target values."""
    q_pol = q_values(policy, next_states, device)
    q_tgt = q_values(target, next_states, device)
    return torch.stack([qt[qp.argmax()] for qp, qt in zip(q_pol, q_tgt, strict=True)])


def dqn_targets(next_value: torch.Tensor, reward_step: torch.Tensor, reward_done: torch.Tensor,
                gamma: float = GAMMA, step_scale: float = STEP_SCALE,
                done_scale: float = DONE_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """The two published regression targets, each (N,):
    y_step = gamma * next_value + step_scale * r_step and y_done = done_scale * r_done.
    As published, the done flag is not used (the last transition also bootstraps)."""
    return gamma * next_value + step_scale * reward_step, done_scale * reward_done


def dqn_loss(q_sa: torch.Tensor, y_step: torch.Tensor, y_done: torch.Tensor) -> torch.Tensor:
    """MSE(Q(s,a), y_step) + MSE(Q(s,a), y_done): scalar."""
    return nn.functional.mse_loss(q_sa, y_step) + nn.functional.mse_loss(q_sa, y_done)


def td_loss(policy: nn.Module, target: nn.Module, batch: Sequence[Transition], device: torch.device | str,
            gamma: float = GAMMA) -> torch.Tensor:
    """The TD loss of ``batch`` (differentiable w.r.t. the policy's parameters)."""
    next_value = double_dqn_next_value(policy, target, [t.next_state for t in batch], device)
    r_step = torch.tensor([t.reward_step for t in batch], dtype=torch.float32, device=device)
    r_done = torch.tensor([t.reward_done for t in batch], dtype=torch.float32, device=device)
    y_step, y_done = dqn_targets(next_value, r_step, r_done, gamma)
    q = q_values(policy, [t.state for t in batch], device)
    q_sa = torch.stack([qi[t.action] for qi, t in zip(q, batch, strict=True)])
    return dqn_loss(q_sa, y_step, y_done)


def make_optimizer(policy: nn.Module, lr: float = LR, weight_decay: float = WEIGHT_DECAY) -> torch.optim.Adam:
    return torch.optim.Adam(policy.parameters(), lr=lr, weight_decay=weight_decay)


def update(policy: nn.Module, target: nn.Module, optimizer: torch.optim.Optimizer, batch: Sequence[Transition],
           device: torch.device | str, rng: np.random.Generator, gamma: float = GAMMA,
           grad_clamp: float = GRAD_CLAMP, target_copy_prob: float = TARGET_COPY_PROB) -> dict[str, float]:
    """One optimisation step: TD loss, gradients clamped element-wise to [-grad_clamp, grad_clamp],
    then with probability ``target_copy_prob`` the policy's weights are copied into the target.
    Returns {'loss': float, 'target_copied': 0.0 or 1.0}."""
    policy.train()
    loss = td_loss(policy, target, batch, device, gamma)
    optimizer.zero_grad()
    loss.backward()
    for p in policy.parameters():
        if p.grad is not None:
            p.grad.clamp_(-grad_clamp, grad_clamp)
    optimizer.step()
    copied = bool(rng.random() < target_copy_prob)
    if copied:
        target.load_state_dict(policy.state_dict())
    return {"loss": float(loss.detach()), "target_copied": float(copied)}


@torch.no_grad()
def greedy_action(net: nn.Module, state: np.ndarray, device: torch.device | str) -> int:
    """argmax_t Q(state)[t] for one (T, 2) state."""
    net.eval()
    return int(q_values(net, [state], device)[0].argmax())


def epsilon_greedy_action(net: nn.Module, state: np.ndarray, eps: float, rng: np.random.Generator,
                          device: torch.device | str) -> int:
    """A uniform frame with probability ``eps``, else the greedy one."""
    if rng.random() < eps:
        return int(rng.integers(len(state)))
    return greedy_action(net, state, device)
