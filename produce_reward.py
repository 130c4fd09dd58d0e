"""Random-policy episodes whose per-round J&F statistics define the agent's goal reward.

    python produce_reward.py                    # classic backend on the synthetic train split
    python produce_reward.py with paper         # as published: ATNet, DAVIS-2017 train, 30 epochs, seed 2020
    python produce_reward.py print_config

Writes {train_dir}/reward.csv, one row per transition (rounds - 1 per episode), appended as each
episode finishes; re-running the same command after an interruption resumes.
"""
# ruff: noqa: F841  (sacred reads the config functions' local variables)
from __future__ import annotations

from _experiment import new_experiment, setup_logging
from VOS.registry import default_min_nb_nodes

ex = new_experiment("produce_reward")


@ex.config
def config():
    vos = "classic"          # VOS backend: classic | atnet | manet | ipn   (published: atnet)
    dataset = "synthetic"    # davis | ytbvos | synthetic | path to a DAVIS-layout root   (published: davis)
    split = "train"          # published: DAVIS-2017 train
    epochs = 30              # passes over every (sequence, initial scribble)   (published: 30)
    rounds = 5               # rounds per episode -> rounds - 1 transitions   (published: 5)
    window = 25              # frames per episode, around the initial scribble   (published: 25)
    seed = 2020              # published: 2020
    device = "auto"          # auto | cpu | cuda
    data_dir = "data"
    train_dir = "train"
    min_nb_nodes = default_min_nb_nodes(vos)   # the robot's, per network as published (VOS.registry)
    sequences = None         # optional list of sequence names (default: the whole split)
    vos_options = {}         # passed to the backend
    threads = 1              # torch CPU threads
    progress = True
    workers = 1              # samples in parallel: 1 = this process (no Ray); N = N Ray workers (README, "Scale")
    ray_address = None       # join a running Ray cluster ("auto" or host:port) instead of starting one
    gpus_per_worker = 1.0    # share of a GPU per worker when the device is CUDA


@ex.named_config
def paper():
    """The published run."""
    vos = "atnet"
    dataset = "davis"
    split = "train"
    seed = 2020
    epochs = 30
    rounds = 5
    window = 25


@ex.main
def main(vos, dataset, split, epochs, rounds, window, seed, device, data_dir, train_dir, min_nb_nodes, sequences,
         vos_options, threads, progress, workers, ray_address, gpus_per_worker):
    import functools
    from pathlib import Path

    import torch

    from agent.training import check_identity
    from core.device import resolve_device
    from interaction.evaluate import checked_samples
    from interaction.factory import build_episode_parts
    from interaction.parallel import Fanout
    from interaction.training_runs import collect_episodes
    from VOS.registry import build_backend, canonical

    setup_logging()
    torch.set_num_threads(int(threads))
    spec, samples = checked_samples(dataset, data_dir, split, sequences)
    out = Path(train_dir) / "reward.csv"
    check_identity(out, dict(vos=canonical(vos), vos_options=dict(vos_options), dataset=spec.name, split=split,
                             rounds=rounds, window=window, seed=seed, min_nb_nodes=min_nb_nodes,
                             sequences=list(sequences) if sequences else None))
    dev = resolve_device(device)
    backend = build_backend(canonical(vos), dev, **dict(vos_options))
    build = functools.partial(build_episode_parts, canonical(vos), str(dev), "random", dict(vos_options))
    df = collect_episodes(spec, split, samples, backend, out, epochs=epochs, rounds=rounds, window=window,
                          min_nb_nodes=min_nb_nodes, seed=seed, progress=progress,
                          fanout=Fanout.from_config(workers, ray_address, gpus_per_worker, dev), build=build)
    print(f"{out}: {len(df)} transitions from {len(samples)} samples x {epochs} epochs")
    return len(df)


if __name__ == "__main__":
    ex.run_commandline()
