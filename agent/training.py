"""The agent's training runs, as functions the three scripts call (PROTOCOL.md §5).

    collect_episodes(...)   random-policy episodes -> reward.csv (no goal reward) or
                            pretrain.csv (goal reward from reward.csv's statistics)
    train_dqn(...)          epsilon-greedy episodes, 14 DQN updates after each -> agent.pt

Every episode runs through :func:`interaction.loop.run_episodes` on the ``window``-frame window
around the initial scribble, ``rounds`` rounds (so ``rounds - 1`` transitions), in the oracle
setting (the state's quality is the ground-truth J&F, as in the published training).

Resuming. Records are appended per finished episode; ``collect_episodes`` counts the episodes
already in the file per sample and runs only the missing (epoch, sample) pairs. Each episode's
random generator depends only on (seed, epoch, sample), so a resumed run writes what an
uninterrupted one would. ``train_dqn`` checkpoints policy, target, optimizer, replay, step
counter, episode counter and generators atomically every ``checkpoint_every`` episodes and at the
end of each epoch, and restarts from the last checkpoint (later log rows are dropped).
"""
from __future__ import annotations

import copy
import csv
import io
import logging
import os
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
    UPDATES_PER_EPISODE,
    ReplayBuffer,
    Transition,
    epsilon,
    epsilon_greedy_action,
    make_optimizer,
    update,
)
from agent.qnet import QNet
from agent.recommender import agent_state
from agent.records import append_rows, completed_episodes, episode_rows, read_records, row_to_transition
from agent.rewards import RewardStats
from core.io import atomic_write_bytes

log = logging.getLogger(__name__)


def epoch_seed(seed: int, epoch: int) -> int:
    """The loop's seed for epoch ``epoch`` of a run seeded ``seed`` (distinct per epoch)."""
    return int(seed) * 1000 + int(epoch)


def epoch_order(samples: Sequence[tuple[str, int]], seed: int, epoch: int) -> list[tuple[str, int]]:
    """The samples of one epoch in a shuffled order fixed by (seed, epoch)."""
    perm = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch)]).permutation(len(samples))
    return [samples[i] for i in perm]


# -- random-policy episodes: reward.csv and pretrain.csv ---------------------------------------
def collect_episodes(spec, split: str, samples: Sequence[tuple[str, int]], backend, out_csv: str | Path, *,
                     epochs: int, rounds: int, window: int, min_nb_nodes: int, seed: int,
                     stats: RewardStats | None = None, progress: bool = True) -> pd.DataFrame:
    """Random-policy episodes over ``samples`` for ``epochs`` epochs, appended to ``out_csv``.

    ``stats`` given: each transition gets its goal reward (pretrain.csv); else reward_done = 0
    (reward.csv). Returns all records of the file."""
    from agent.selection import RandomSelector
    from interaction.loop import run_episodes

    out_csv = Path(out_csv)
    per_episode = rounds - 1
    if per_episode < 1:
        raise ValueError("episodes need at least 2 rounds to make a transition")
    done = completed_episodes(read_records(out_csv), per_episode)
    if done:
        log.info("resuming %s: %d episodes already recorded", out_csv, sum(done.values()))
    selector = RandomSelector()
    goal = stats.reward if stats is not None else None

    def save(rec, _report) -> None:
        append_rows(out_csv, episode_rows(rec, goal))

    for epoch in range(epochs):
        todo = [s for s in epoch_order(samples, seed, epoch) if done[(s[0], int(s[1]))] <= epoch]
        if not todo:
            continue
        run_episodes(spec, todo, split, backend, selector, rounds, setting="oracle", min_nb_nodes=min_nb_nodes,
                     seed=epoch_seed(seed, epoch), window=window, on_sample=save, progress=progress,
                     desc=f"{out_csv.stem} epoch {epoch + 1}/{epochs}")
    return read_records(out_csv)


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
        return {"policy": self.policy.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "replay": self.replay.state_dict(),
                "steps": self.steps, "episodes": self.episodes,
                "explore_rng": self.explore_rng.bit_generator.state, "update_rng": self.update_rng.bit_generator.state}


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
    buf = io.BytesIO()
    torch.save(state.to_dict(), buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, device: torch.device | str) -> TrainState:
    """A saved :class:`TrainState` (the optimizer keeps the learning rate it was saved with)."""
    d = torch.load(path, map_location=device, weights_only=False)   # our own file: holds the replay
    policy, target = QNet().to(device), QNet().to(device)
    policy.load_state_dict(d["policy"])
    target.load_state_dict(d["target"])
    opt = make_optimizer(policy)
    opt.load_state_dict(d["optimizer"])
    replay = ReplayBuffer()
    replay.load_state_dict(d["replay"])
    explore, upd = np.random.default_rng(), np.random.default_rng()
    explore.bit_generator.state = d["explore_rng"]
    upd.bit_generator.state = d["update_rng"]
    return TrainState(policy, target, opt, replay, int(d["steps"]), int(d["episodes"]), explore, upd)


def save_weights(policy: torch.nn.Module, path: str | Path) -> None:
    """The policy's state dict with the published key layout (loads with agent.qnet.load_agent)."""
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in policy.state_dict().items()}, buf)
    atomic_write_bytes(path, buf.getvalue())


LOG_COLUMNS = ["epoch", "episode", "sequence", "scribble_iter", "steps", "epsilon", "replay", "loss",
               "target_copies", "actions", "action_ranks", "reward_step", "reward_done", "final_frame_mean_jf",
               "final_jf"]


def _append_log(path: Path, row: dict) -> None:
    new = not path.exists() or path.stat().st_size == 0
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_COLUMNS, lineterminator="\n")
    if new:
        w.writeheader()
    w.writerow(row)
    with open(path, "a", newline="") as fh:
        fh.write(buf.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def _truncate_log(path: Path, episodes: int) -> None:
    """Drop log rows of episodes after the checkpoint we resume from."""
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


def train_dqn(spec, split: str, samples: Sequence[tuple[str, int]], backend, *, stats: RewardStats,
              prefill: Sequence[Transition], epochs: int, rounds: int, window: int, min_nb_nodes: int, seed: int,
              device: torch.device | str, weights_path: str | Path, checkpoint_path: str | Path,
              log_path: str | Path, checkpoint_every: int = 20, updates_per_episode: int = UPDATES_PER_EPISODE,
              batch_size: int = BATCH_SIZE, gamma: float = GAMMA, lr: float = LR, prefill_updates: int = 0,
              progress: bool = True) -> TrainState:
    """Train the agent; writes ``weights_path`` (policy, published layout) at the end of every epoch.

    A new run starts with a replay holding ``prefill`` and, when ``prefill_updates`` > 0, that
    many updates on it alone (then a checkpoint and ``weights_path``). Each epoch then runs every
    sample once (shuffled) with the epsilon-greedy policy; after each episode its ``rounds - 1``
    transitions (step reward, goal reward from ``stats``) join the replay and
    ``updates_per_episode`` updates follow. Adam with learning rate ``lr`` (published 5e-6).
    ``epochs=0`` with ``prefill_updates`` > 0 trains offline only."""
    from interaction.loop import run_episodes

    checkpoint_path, log_path = Path(checkpoint_path), Path(log_path)
    if checkpoint_path.exists():
        st = load_checkpoint(checkpoint_path, device)
        log.info("resuming from %s: %d episodes, %d steps, replay %d", checkpoint_path, st.episodes, st.steps,
                 len(st.replay))
    else:
        st = new_train_state(device, seed, prefill, lr=lr)
        log.info("new agent; replay pre-filled with %d transitions", len(st.replay))
        if prefill_updates > 0:
            losses = offline_updates(st, prefill_updates, device, batch_size, gamma, progress)
            if losses:
                log.info("%d offline updates: loss %.4f (first 50) -> %.4f (last 50)", len(losses),
                         np.mean(losses[:50]), np.mean(losses[-50:]))
            save_checkpoint(st, checkpoint_path)
            save_weights(st.policy, weights_path)
    _truncate_log(log_path, st.episodes)
    selector = EpsilonGreedySelector(st.policy, device, st.explore_rng, st.steps)
    n = len(samples)

    def after_episode(rec, _report) -> None:
        rows = episode_rows(rec, stats.reward)
        st.replay.extend(row_to_transition(r) for r in rows)
        losses, copies = [], 0
        if len(st.replay) >= batch_size:
            for _ in range(updates_per_episode):
                info = update(st.policy, st.target, st.optimizer, st.replay.sample(batch_size, st.update_rng),
                              device, st.update_rng, gamma)
                losses.append(info["loss"])
                copies += int(info["target_copied"])
        st.steps = selector.steps
        ranks = [r.next_rank for r in rec.rounds[:-1]]
        _append_log(log_path, {
            "epoch": st.episodes // n, "episode": st.episodes, "sequence": rec.sequence,
            "scribble_iter": rec.scribble_idx, "steps": st.steps, "epsilon": epsilon(st.steps),
            "replay": len(st.replay), "loss": float(np.mean(losses)) if losses else float("nan"),
            "target_copies": copies, "actions": "/".join(str(r["action"]) for r in rows),
            "action_ranks": "/".join(str(r) for r in ranks),
            "reward_step": float(sum(r["reward_step"] for r in rows)),
            "reward_done": float(sum(r["reward_done"] for r in rows)),
            "final_frame_mean_jf": float(np.mean(rec.rounds[-1].frame_jf)), "final_jf": float(rec.rounds[-1].jf)})
        st.episodes += 1
        if checkpoint_every and st.episodes % checkpoint_every == 0 and st.episodes % n:
            save_checkpoint(st, checkpoint_path)

    for epoch in range(st.episodes // n, epochs):
        order = epoch_order(samples, seed, epoch)
        todo = order[st.episodes - epoch * n:]
        run_episodes(spec, todo, split, backend, selector, rounds, setting="oracle", min_nb_nodes=min_nb_nodes,
                     seed=epoch_seed(seed, epoch), window=window, on_sample=after_episode, progress=progress,
                     desc=f"train epoch {epoch + 1}/{epochs}")
        save_checkpoint(st, checkpoint_path)
        save_weights(st.policy, weights_path)
        log.info("epoch %d/%d done: %d episodes, %d steps, eps %.3f; weights -> %s", epoch + 1, epochs,
                 st.episodes, st.steps, epsilon(st.steps), weights_path)
    if st.episodes >= epochs * n and not Path(weights_path).exists():   # epochs=0 and no offline updates
        save_weights(st.policy, weights_path)
    return st


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


def check_identity(out_path: str | Path, identity: dict[str, Any]) -> None:
    """Refuse to append to (resume) an output made with other settings: ``<out>.run.json`` beside
    the output records the settings that decide its content."""
    import json

    from core.io import atomic_write_json

    side = Path(out_path).with_name(Path(out_path).name + ".run.json")
    if Path(out_path).exists() and side.exists():
        old = json.loads(side.read_text())
        diff = {k: (old.get(k), v) for k, v in identity.items() if old.get(k) != v}
        if diff:
            raise ValueError(f"{out_path} was made with other settings {diff} (was, now): move it away or use "
                             "another train_dir")
    atomic_write_json(side, identity)
