"""Train the frame-recommendation agent (double DQN, PROTOCOL.md §5).

    python train_agent.py                       # classic backend on the synthetic train split
    python train_agent.py with paper            # as published: ATNet, DAVIS-2017 train, 5 epochs, seed 2019
    python train_agent.py print_config

Needs {train_dir}/reward.csv (goal-reward statistics) and {train_dir}/pretrain.csv (replay
pre-fill). Writes {weights_dir}/agent.pt (the policy, published key layout) after every epoch,
a per-episode log {train_dir}/train_agent_log.csv and a resumable checkpoint
{train_dir}/agent_checkpoint.pt; re-running the same command resumes from the checkpoint.
"""
# ruff: noqa: F841  (sacred reads the config functions' local variables)
from __future__ import annotations

import os

from _experiment import new_experiment, setup_logging
from VOS.registry import default_min_nb_nodes

ex = new_experiment("train_agent")


@ex.config
def config():
    vos = "classic"          # VOS backend: classic | atnet | manet | ipn   (published: atnet)
    dataset = "synthetic"    # davis | ytbvos | synthetic | path to a DAVIS-layout root   (published: davis)
    split = "train"          # published: DAVIS-2017 train
    epochs = 5               # passes over every (sequence, initial scribble)   (published: 5)
    rounds = 5               # rounds per episode -> rounds - 1 transitions   (published: 5)
    window = 25              # frames per episode, around the initial scribble   (published: 25)
    seed = 2019              # published: 2019
    device = "auto"          # auto | cpu | cuda
    data_dir = "data"
    train_dir = "train"
    weights_dir = "weights"
    agent_weights = os.path.join(weights_dir, "agent.pt")
    min_nb_nodes = default_min_nb_nodes(vos)   # the robot's, per network as published (VOS.registry)
    min_sigma = 0.01         # goal reward: sigma 0 (or from a single random run) is replaced by this
    floor_small_sigma = True   # ... and so is every sigma below it (built-in; published: False)
    min_span = 0.05          # replay pre-fill: keep sequences whose frame-mean J&F spans more than this
    updates_per_episode = 14 # DQN updates after each episode (published: 14)
    batch_size = 32          # published: 32
    lr = 1e-3                # Adam learning rate (published: 5e-6, which barely moves the net in a short run)
    prefill_updates = 1000   # updates on the pre-filled replay alone before the first episode (published: 0)
    threads = 1              # torch CPU threads (the net is tiny: more threads only add overhead)
    checkpoint_every = 20    # episodes between checkpoints (also at the end of every epoch)
    sequences = None         # optional list of sequence names (default: the whole split)
    vos_options = {}         # passed to the backend
    progress = True


@ex.named_config
def paper():
    """The published run."""
    vos = "atnet"
    dataset = "davis"
    split = "train"
    seed = 2019
    epochs = 5
    rounds = 5
    window = 25
    floor_small_sigma = False
    lr = 5e-6
    prefill_updates = 0


@ex.main
def main(vos, dataset, split, epochs, rounds, window, seed, device, data_dir, train_dir, agent_weights,
         min_nb_nodes, min_sigma, floor_small_sigma, min_span, updates_per_episode, batch_size, lr, prefill_updates,
         threads, checkpoint_every, sequences, vos_options, progress):
    from pathlib import Path

    import torch

    from agent.records import read_records
    from agent.rewards import RewardStats
    from agent.training import check_identity, load_prefill
    from core.device import resolve_device
    from core.identity import file_ref
    from interaction.evaluate import checked_samples
    from interaction.training_runs import train_dqn
    from VOS.registry import build_backend, canonical

    setup_logging()
    torch.set_num_threads(int(threads))
    dev = resolve_device(device)
    spec, samples = checked_samples(dataset, data_dir, split, sequences)
    train_dir = Path(train_dir)
    reward_csv = train_dir / "reward.csv"
    if not reward_csv.exists():
        raise FileNotFoundError(f"{reward_csv} not found: run produce_reward.py first")
    stats = RewardStats.from_frame(read_records(reward_csv), min_sigma, floor_small=floor_small_sigma)
    checkpoint = train_dir / "agent_checkpoint.pt"
    prefill = [] if checkpoint.exists() else load_prefill(train_dir / "pretrain.csv", min_span)
    # bound to the content of the records it reads: a changed reward.csv or pretrain.csv is refused
    ident = check_identity(checkpoint, dict(vos=canonical(vos), vos_options=dict(vos_options), dataset=spec.name,
                                            split=split, rounds=rounds, window=window, seed=seed,
                                            min_nb_nodes=min_nb_nodes, min_sigma=min_sigma,
                                            floor_small_sigma=bool(floor_small_sigma), min_span=min_span,
                                            updates_per_episode=updates_per_episode, batch_size=batch_size, lr=lr,
                                            prefill_updates=prefill_updates,
                                            sequences=list(sequences) if sequences else None,
                                            reward_csv=file_ref(reward_csv),
                                            pretrain_csv=file_ref(train_dir / "pretrain.csv")))
    backend = build_backend(canonical(vos), dev, **dict(vos_options))
    st = train_dqn(spec, split, samples, backend, stats=stats, prefill=prefill, epochs=epochs, rounds=rounds,
                   window=window, min_nb_nodes=min_nb_nodes, seed=seed, device=dev, weights_path=agent_weights,
                   checkpoint_path=checkpoint, log_path=train_dir / "train_agent_log.csv",
                   checkpoint_every=checkpoint_every, updates_per_episode=updates_per_episode,
                   batch_size=batch_size, lr=lr, prefill_updates=prefill_updates, owner=ident, progress=progress)
    print(f"{agent_weights}: {st.episodes} episodes, {st.steps} actions, replay {len(st.replay)}")
    return st.episodes


if __name__ == "__main__":
    ex.run_commandline()
