"""The pretrain experience buffer: random-policy episodes with their goal rewards.

    python pretrain_agent.py                    # classic backend on the synthetic train split
    python pretrain_agent.py with paper         # as published: ATNet, DAVIS-2017 train, 10 epochs, seed 2021
    python pretrain_agent.py print_config

Needs {train_dir}/reward.csv (produce_reward.py, same dataset/split/rounds/window): the goal
reward of a transition compares the episode's frame-mean J&F after the round with the random
runs of the same (sequence, initial scribble, round) there. Writes {train_dir}/pretrain.csv,
appended per episode; re-running resumes.
"""
# ruff: noqa: F841  (sacred reads the config functions' local variables)
from __future__ import annotations

from _experiment import new_experiment, setup_logging
from VOS.registry import default_min_nb_nodes

ex = new_experiment("pretrain_agent")


@ex.config
def config():
    vos = "classic"          # VOS backend: classic | atnet | manet | ipn   (published: atnet)
    dataset = "synthetic"    # davis | ytbvos | synthetic | path to a DAVIS-layout root   (published: davis)
    split = "train"          # published: DAVIS-2017 train
    epochs = 10              # passes over every (sequence, initial scribble)   (published: 10)
    rounds = 5               # rounds per episode -> rounds - 1 transitions   (published: 5)
    window = 25              # frames per episode, around the initial scribble   (published: 25)
    seed = 2021              # published: 2021
    device = "auto"          # auto | cpu | cuda
    data_dir = "data"
    train_dir = "train"
    min_nb_nodes = default_min_nb_nodes(vos)   # the robot's, per network as published (VOS.registry)
    min_sigma = 0.01         # goal reward: sigma 0 (or from a single random run) is replaced by this
    floor_small_sigma = True   # ... and so is every sigma below it (built-in; published: False)
    sequences = None         # optional list of sequence names (default: the whole split)
    vos_options = {}         # passed to the backend
    threads = 1              # torch CPU threads
    progress = True
    workers = 1              # episodes in parallel: 1 = this process (no Ray); N = N Ray workers (README, "Scale")
    ray_address = None       # join a running Ray cluster ("auto" or host:port) instead of starting one
    gpus_per_worker = 1.0    # share of a GPU per worker when the device is CUDA


@ex.named_config
def paper():
    """The published run."""
    vos = "atnet"
    dataset = "davis"
    split = "train"
    seed = 2021
    epochs = 10
    rounds = 5
    window = 25
    floor_small_sigma = False


@ex.main
def main(vos, dataset, split, epochs, rounds, window, seed, device, data_dir, train_dir, min_nb_nodes, min_sigma,
         floor_small_sigma, sequences, vos_options, threads, progress, workers, ray_address, gpus_per_worker):
    import functools
    from pathlib import Path

    import torch

    from agent.records import read_records
    from agent.rewards import RewardStats
    from agent.training import check_identity
    from core.device import resolve_device
    from core.identity import file_ref
    from interaction.evaluate import checked_samples
    from interaction.factory import build_episode_parts
    from interaction.parallel import Fanout
    from interaction.training_runs import collect_episodes
    from VOS.registry import build_backend, canonical

    setup_logging()
    torch.set_num_threads(int(threads))
    spec, samples = checked_samples(dataset, data_dir, split, sequences)
    reward_csv = Path(train_dir) / "reward.csv"
    if not reward_csv.exists():
        raise FileNotFoundError(f"{reward_csv} not found: run produce_reward.py first (same dataset, split, "
                                "rounds and window)")
    stats = RewardStats.from_frame(read_records(reward_csv), min_sigma, floor_small=floor_small_sigma)
    out = Path(train_dir) / "pretrain.csv"
    # bound to the content of reward.csv: goal rewards from other statistics are refused, not mixed
    check_identity(out, dict(vos=canonical(vos), vos_options=dict(vos_options), dataset=spec.name, split=split,
                             rounds=rounds, window=window, seed=seed, min_nb_nodes=min_nb_nodes, min_sigma=min_sigma,
                             floor_small_sigma=bool(floor_small_sigma), sequences=list(sequences) if sequences else None,
                             reward_csv=file_ref(reward_csv)))
    dev = resolve_device(device)
    backend = build_backend(canonical(vos), dev, **dict(vos_options))
    build = functools.partial(build_episode_parts, canonical(vos), str(dev), "random", dict(vos_options))
    df = collect_episodes(spec, split, samples, backend, out, epochs=epochs, rounds=rounds, window=window,
                          min_nb_nodes=min_nb_nodes, seed=seed, stats=stats, progress=progress,
                          fanout=Fanout.from_config(workers, ray_address, gpus_per_worker, dev), build=build)
    print(f"{out}: {len(df)} transitions; goal reward mean {df['reward_done'].mean():.3f} "
          f"(std {df['reward_done'].std():.3f}); step reward mean {df['reward_step'].mean():.3f}")
    return len(df)


if __name__ == "__main__":
    ex.run_commandline()
