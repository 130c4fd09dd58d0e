"""The agent's training parts (PROTOCOL.md §5): what the episode runners of
:mod:`interaction.training_runs` build on, none of which runs an episode itself.

    epoch_seed / epoch_order   per-epoch seeds and sample order (fixed by (seed, epoch))
    EpsilonGreedySelector      the training-time frame selector
    TrainState, new_train_state, save_checkpoint, load_checkpoint, save_weights
    offline_updates            DQN updates on the replay alone (before the first episode)
    LOG_COLUMNS, append_log, truncate_log   the per-episode training log
    load_prefill, check_identity            inputs of train_agent.py and the runs' settings file
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from agent.dqn import (
    BATCH_SIZE,
    GAMMA,
    LR,
    ReplayBuffer,
    Transition,
    epsilon,
    epsilon_greedy_action,
    make_optimizer,
    update,
)
from agent.qnet import QNet
from agent.recommender import agent_state
from agent.records import append_rows, read_records
from core import checkpoint

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """The loop's seed for epoch ``epoch`` of a run seeded ``seed`` (distinct per epoch)."""
    return int(seed) * 1000 + int(epoch)


def epoch_order(samples: Sequence[tuple[str, int]], seed: int, epoch: int) -> list[tuple[str, int]]:
    """The samples of one epoch in a shuffled order fixed by (seed, epoch)."""
    perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(len(samples))
    return [samples[i] for i in perm]


# -- DQN training ---------------------------------------------------------------------------
class EpsilonGreedySelector:
    """The training-time selector: a uniform frame with probability epsilon(steps), else the
    policy's argmax. One step per action; ``steps`` and ``rng`` are checkpointed."""

    name = "ours-train"
    needs_quality = True

    def __init__(self, net: torch.nn.Module, device: torch.device | str, rng: np.random.Generator,
                 steps: int = 0) -> None:
        self.net, self.device, self.rng, self.steps = net, device, rng, int(steps)

    def __call__(self, ctx: Any) -> int:
        eps = epsilon(self.steps)
        self.steps += 1
        return epsilon_greedy_action(self.net, agent_state(ctx), eps, self.rng, self.device)


@dataclass
class TrainState:
    """Everything a resumed training run needs (saved with :func:`save_checkpoint`)."""

    policy: QNet
    target: QNet
    optimizer: torch.optim.Optimizer
    replay: ReplayBuffer
    steps: int = 0
    episodes: int = 0                       # episodes finished over all epochs
    explore_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    update_rng: np.random.Generator = field(default_factory=np.random.default_rng)

    def to_dict(self) -> dict:
        """Tensors, numbers, strings and containers only, so that it loads with weights_only=True."""
        replay = self.replay.state_dict()
        replay = {"capacity": replay["capacity"], "memory": [_transition_to_dict(t) for t in replay["memory"]]}
        return {"policy": self.policy.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "replay": replay,
                "steps": self.steps, "episodes": self.episodes,
                "explore_rng": self.explore_rng.bit_generator.state, "update_rng": self.update_rng.bit_generator.state}


def _transition_to_dict(t: Transition) -> dict:
    return {"state": torch.from_numpy(np.ascontiguousarray(t.state)), "action": int(t.action),
            "next_state": torch.from_numpy(np.ascontiguousarray(t.next_state)), "reward_step": float(t.reward_step),
            "reward_done": float(t.reward_done), "done": bool(t.done), "key": None if t.key is None else list(t.key)}


def _transition_from_dict(d: dict) -> Transition:
    key = d["key"]
    return Transition(d["state"].numpy(), int(d["action"]), d["next_state"].numpy(), float(d["reward_step"]),
                      float(d["reward_done"]), bool(d["done"]),
                      None if key is None else (str(key[0]), int(key[1]), int(key[2])))


CHECKPOINT_LAYOUT = ("an agent training checkpoint of train_agent.py (policy, target, optimizer, replay, steps, "
                     "episodes, explore_rng, update_rng)")


def new_train_state(device: torch.device | str, seed: int, prefill: Sequence[Transition],
                    capacity: int = 100_000, lr: float = LR) -> TrainState:
    torch.manual_seed(seed)
    policy = QNet().to(device)
    target = copy.deepcopy(policy)
    replay = ReplayBuffer(capacity)
    replay.extend(prefill)
    return TrainState(policy, target, make_optimizer(policy, lr=lr), replay,
                      explore_rng=np.random.default_rng([int(seed) & 0xFFFFFFFF, 1]),
                      update_rng=np.random.default_rng([int(seed) & 0xFFFFFFFF, 2]))


def save_checkpoint(state: TrainState, path: str | Path) -> None:
    """The training state, written atomically (:func:`core.checkpoint.save`)."""
    checkpoint.save(state.to_dict(), path)


def load_checkpoint(path: str | Path, device: torch.device | str) -> TrainState:
    """A saved :class:`TrainState` (the optimizer keeps the learning rate it was saved with), loaded with
    weights_only=True; a file of another layout -> CheckpointError naming it."""
    d = checkpoint.load(path, expected=CHECKPOINT_LAYOUT, map_location=device,
                        fix="delete it to start the training over")
    missing = [k for k in ("policy", "target", "optimizer", "replay", "steps", "episodes", "explore_rng", "update_rng")
               if not isinstance(d, dict) or k not in d]
    if missing:
        raise checkpoint.CheckpointError(f"{path} lacks {missing}: expected {CHECKPOINT_LAYOUT}; delete it to start "
                                         f"the training over")
    policy, target = QNet().to(device), QNet().to(device)
    checkpoint.load_into(policy, d["policy"], path, expected=CHECKPOINT_LAYOUT)
    checkpoint.load_into(target, d["target"], path, expected=CHECKPOINT_LAYOUT)
    opt = make_optimizer(policy)
    opt.load_state_dict(d["optimizer"])
    replay = ReplayBuffer()
    replay.load_state_dict({"capacity": d["replay"]["capacity"],
                            "memory": [_transition_from_dict(t) for t in d["replay"]["memory"]]})
    explore, upd = np.random.default_rng(), np.random.default_rng()
    explore.bit_generator.state = d["explore_rng"]
    upd.bit_generator.state = d["update_rng"]
    return TrainState(policy, target, opt, replay, int(d["steps"]), int(d["episodes"]), explore, upd)


def save_weights(policy: torch.nn.Module, path: str | Path, owner: dict[str, Any] | None = None) -> None:
    """The policy's state dict with the published key layout (loads with agent.qnet.load_agent), written
    atomically. With ``owner`` (the training run's identity) it is an export
    (:func:`core.checkpoint.export`): a file there that this run did not write, such as the published
    agent.pt, is refused, never overwritten."""
    state = {k: v.detach().cpu() for k, v in policy.state_dict().items()}
    if owner is None:
        checkpoint.save(state, path)
    else:
        checkpoint.export(state, path, owner=owner,
                          fix="train into another file (agent_weights=... or weights_dir=...) or move it away")


LOG_COLUMNS = ["epoch", "episode", "sequence", "scribble_iter", "steps", "epsilon", "replay", "loss",
               "target_copies", "actions", "action_ranks", "reward_step", "reward_done", "final_frame_mean_jf",
               "final_jf"]


def append_log(path: str | Path, row: dict) -> None:
    """Append one row with :data:`LOG_COLUMNS` to the training log (header when new, fsynced)."""
    append_rows(path, [row], LOG_COLUMNS)


def truncate_log(path: str | Path, episodes: int) -> None:
    """Drop log rows of episodes after the checkpoint we resume from."""
    path = Path(path)
    if not path.exists() or path.stat().st_size == 0:
        return
    df = pd.read_csv(path)
    df = df[df["episode"] < episodes]
    from core.io import atomic_write_text

    atomic_write_text(path, df.to_csv(index=False, lineterminator="\n"))


def offline_updates(st: TrainState, n: int, device: torch.device | str, batch_size: int = BATCH_SIZE,
                    gamma: float = GAMMA, progress: bool = True) -> list[float]:
    """``n`` DQN updates on the replay as it is (no episodes): the losses, in order.

    Used on the pre-filled replay before the first episode (``prefill_updates``; published: 0)."""
    from tqdm.auto import tqdm

    losses: list[float] = []
    if n <= 0 or len(st.replay) < batch_size:
        if n > 0:
            log.warning("replay holds %d < %d transitions: no offline updates", len(st.replay), batch_size)
        return losses
    bar = tqdm(range(n), desc="offline updates on the pre-filled replay", disable=not progress, unit="update")
    for _ in bar:
        info = update(st.policy, st.target, st.optimizer, st.replay.sample(batch_size, st.update_rng), device,
                      st.update_rng, gamma)
        losses.append(info["loss"])
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    return losses


def load_prefill(pretrain_csv: str | Path, min_span: float = 0.05) -> list[Transition]:
    """The pretrain buffer's transitions of sequences whose frame-mean J&F spans more than ``min_span``."""
    from agent.records import prefill_transitions

    df = read_records(pretrain_csv)
    if df.empty:
        raise FileNotFoundError(f"no pretrain records at {pretrain_csv}: run pretrain_agent.py first")
    out = prefill_transitions(df, min_span)
    log.info("pre-fill: %d of %d pretrain transitions (sequences with frame-mean J&F span > %g)",
             len(out), len(df), min_span)
    return out


def check_identity(out_path: str | Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Refuse to append to (resume) an output made with other settings or inputs: ``<out>.run.json``
    beside the output records its identity (settings, and input files as sha256 refs, see
    :mod:`core.identity`). Returns the normalised identity."""
    from core.identity import check_identity as check

    out = Path(out_path)
    return check(out.with_name(out.name + ".run.json"), identity, has_outputs=out.exists(), what=str(out),
                 fix=f"use another train_dir, or delete {out} (and {out.name}.run.json) to start it over")
