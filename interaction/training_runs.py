"""The agent's training runs: the episodes behind the three training scripts (PROTOCOL.md §5).

    collect_episodes(...)   random-policy episodes -> reward.csv (no goal reward) or
                            pretrain.csv (goal reward from reward.csv's statistics)
    train_dqn(...)          epsilon-greedy episodes, 14 DQN updates after each -> agent.pt
    collect_decisions(...)  the v2 agent's labelled decisions (look-ahead teacher, agent.imitation)

Every episode runs through :func:`interaction.loop.run_episodes` on the ``window``-frame window
around the initial scribble, ``rounds`` rounds (so ``rounds - 1`` transitions), in the oracle
setting (the state's quality is the ground-truth J&F, as in the published training). The parts
(Q-network, DQN update, rewards, records, checkpoints) are in :mod:`agent`; this module only
drives them from the loop, so imports run downward (agent < interaction).

Resuming. Records are appended per finished episode; ``collect_episodes`` counts the episodes
already in the file per sample and runs only the missing (epoch, sample) pairs. Each episode's
random generator depends only on (seed, epoch, sample), so a resumed run writes what an
uninterrupted one would. ``train_dqn`` checkpoints policy, target, optimizer, replay, step
counter, episode counter and generators atomically every ``checkpoint_every`` episodes and at the
end of each epoch, and restarts from the last checkpoint (later log rows are dropped).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from agent.dqn import BATCH_SIZE, GAMMA, LR, UPDATES_PER_EPISODE, Transition, epsilon, update
from agent.records import append_rows, completed_episodes, episode_rows, open_records, read_records, row_to_transition
from agent.rewards import RewardStats
from agent.selection import RandomSelector
from agent.training import (
    EpsilonGreedySelector,
    TrainState,
    append_log,
    epoch_order,
    epoch_seed,
    load_checkpoint,
    new_train_state,
    offline_updates,
    save_checkpoint,
    save_weights,
    truncate_log,
)
from interaction.loop import run_episodes

log = logging.getLogger(__name__)


def collect_episodes(spec, split: str, samples: Sequence[tuple[str, int]], backend, out_csv: str | Path, *,
                     epochs: int, rounds: int, window: int, min_nb_nodes: int, seed: int,
                     stats: RewardStats | None = None, progress: bool = True, fanout=None,
                     build=None) -> pd.DataFrame:
    """Random-policy episodes over ``samples`` for ``epochs`` epochs, appended to ``out_csv``.

    ``stats`` given: each transition gets its goal reward (pretrain.csv); else reward_done = 0
    (reward.csv). Returns all records of the file. ``fanout`` with several workers (an
    :class:`interaction.parallel.Fanout`): every missing (epoch, sample) episode runs on Ray workers
    whose backend ``build()`` makes (e.g. ``interaction.factory.build_episode_parts``); rows are
    appended in the serial order, so the file is the one a single process writes."""
    out_csv = Path(out_csv)
    per_episode = rounds - 1
    if per_episode < 1:
        raise ValueError("episodes need at least 2 rounds to make a transition")
    done = completed_episodes(open_records(out_csv), per_episode)
    if done:
        log.info("resuming %s: %d episodes already recorded", out_csv, sum(done.values()))
    selector = RandomSelector()
    goal = stats.reward if stats is not None else None

    def save(rec, _report) -> None:
        append_rows(out_csv, episode_rows(rec, goal))

    if fanout is not None and not fanout.serial:
        from interaction.parallel import EpisodeSettings, Job, run_jobs

        jobs = [Job(s, int(i), epoch_seed(seed, epoch)) for epoch in range(epochs)
                for s, i in epoch_order(samples, seed, epoch) if done[(s, int(i))] <= epoch]
        run_jobs(jobs, EpisodeSettings(spec, split, rounds, min_nb_nodes=min_nb_nodes, window=window),
                 lambda _job, rec, report, _extra: save(rec, report), fanout, build=build, ordered=True,
                 progress=progress, desc=f"{out_csv.stem} ({epochs} epochs)")
        return read_records(out_csv)
    for epoch in range(epochs):
        todo = [s for s in epoch_order(samples, seed, epoch) if done[(s[0], int(s[1]))] <= epoch]
        if not todo:
            continue
        run_episodes(spec, todo, split, backend, selector, rounds, setting="oracle", min_nb_nodes=min_nb_nodes,
                     seed=epoch_seed(seed, epoch), window=window, on_sample=save, progress=progress,
                     desc=f"{out_csv.stem} epoch {epoch + 1}/{epochs}")
    return read_records(out_csv)



def train_dqn(spec, split: str, samples: Sequence[tuple[str, int]], backend, *, stats: RewardStats,
              prefill: Sequence[Transition], epochs: int, rounds: int, window: int, min_nb_nodes: int, seed: int,
              device: torch.device | str, weights_path: str | Path, checkpoint_path: str | Path,
              log_path: str | Path, checkpoint_every: int = 20, updates_per_episode: int = UPDATES_PER_EPISODE,
              batch_size: int = BATCH_SIZE, gamma: float = GAMMA, lr: float = LR, prefill_updates: int = 0,
              owner: dict | None = None, progress: bool = True) -> TrainState:
    """Train the agent; writes ``weights_path`` (policy, published layout) at the end of every epoch.

    A new run starts with a replay holding ``prefill`` and, when ``prefill_updates`` > 0, that
    many updates on it alone (then a checkpoint and ``weights_path``). Each epoch then runs every
    sample once (shuffled) with the epsilon-greedy policy; after each episode its ``rounds - 1``
    transitions (step reward, goal reward from ``stats``) join the replay and
    ``updates_per_episode`` updates follow. Adam with learning rate ``lr`` (published 5e-6).
    ``epochs=0`` with ``prefill_updates`` > 0 trains offline only.

    ``owner`` (the run's identity) makes ``weights_path`` an export that this run owns: a file there it
    did not write (the published agent.pt) is refused, not overwritten. A finished run exports the
    weights of its last checkpoint again on every call, so a kill between the last checkpoint and
    the export never leaves ``weights_path`` one epoch old."""
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
            save_weights(st.policy, weights_path, owner)
    truncate_log(log_path, st.episodes)
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
        append_log(log_path, {
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
        save_weights(st.policy, weights_path, owner)
        log.info("epoch %d/%d done: %d episodes, %d steps, eps %.3f; weights -> %s", epoch + 1, epochs,
                 st.episodes, st.steps, epsilon(st.steps), weights_path)
    if st.episodes >= epochs * n:   # finished: the export is the last checkpoint's policy, even after a kill
        save_weights(st.policy, weights_path, owner)
    return st


def collect_decisions(spec, split: str, samples: Sequence[tuple[str, int]], backend, out_dir: str | Path, *,
                      rounds: int, min_nb_nodes: int, seed: int, n_random: int = 6, n_worst: int = 2,
                      progress: bool = True) -> list[list[dict]]:
    """The v2 agent's training data: one oracle episode per sample, whole videos, driven by
    :class:`agent.imitation.CollectSelector` through an :class:`agent.lookahead.BackendTap` (at every
    decision the one-round look-ahead gains of ``n_random`` random + ``n_worst`` worst frames, the
    round's object features and true per-object J&F are recorded). Each sample's records are pickled
    to ``out_dir/<seq>__<k>.pkl`` (atomically) as it finishes; samples already there are not run again
    (the generator depends only on (seed, sample), so a resumed run collects what an uninterrupted one
    would). Returns one list of records per sample, in the order of ``samples``."""
    import pickle

    from agent.imitation import CollectSelector
    from agent.lookahead import BackendTap
    from core.io import atomic_write_bytes
    from datasets import davis_compat as dc
    from interaction.results import sample_key

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tap = BackendTap(backend, gt_of=lambda s: spec.annotations(s), robot=dc.robot_for(min_nb_nodes))
    selector = CollectSelector(tap, n_random=n_random, n_worst=n_worst)

    def save(rec, _report) -> None:
        atomic_write_bytes(out_dir / f"{sample_key(rec.sequence, rec.scribble_idx)}.pkl", pickle.dumps(selector.decisions))
        log.info("collected %s#%d: %d decisions", rec.sequence, rec.scribble_idx, len(selector.decisions))
        selector.decisions = []

    todo = [s for s in samples if not (out_dir / f"{sample_key(*s)}.pkl").exists()]
    if todo:
        run_episodes(spec, todo, split, tap, selector, rounds, setting="oracle", min_nb_nodes=min_nb_nodes, seed=seed,
                     on_sample=save, progress=progress, desc="collect (look-ahead labels)")
    return [pickle.loads((out_dir / f"{sample_key(*s)}.pkl").read_bytes()) for s in samples]
