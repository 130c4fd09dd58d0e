"""Training data of the quality-assessment network: probability maps of an oracle-``worst`` run.

    python generate_data.py                     # classic backend on the synthetic train split
    python generate_data.py with paper          # as published: ATNet, DAVIS-2017 train, 5 rounds
    python generate_data.py print_config

For every sequence of the split and every initial scribble in ``scribbles`` (published: the first only),
runs ``rounds`` rounds of the oracle-worst protocol on the full video and saves each round's probability
maps as ``{out_dir}/interaction-<n>/scribble-<s>/<seq>/probs/<obj>/<frame:05d>.png`` (prob × 255), with
``{out_dir}/index.csv`` listing every (round, object, frame) and its target J&F (``prob > 0.8`` against
the object's ground truth). Re-running the same command after an interruption resumes.
"""
# ruff: noqa: F841  (sacred reads the config functions' local variables)
from __future__ import annotations

from _experiment import new_experiment, setup_logging
from VOS.registry import default_min_nb_nodes

ex = new_experiment("generate_data")


@ex.config
def config():
    vos = "classic"          # VOS backend: classic | atnet | manet | ipn   (published: atnet)
    dataset = "synthetic"    # davis | ytbvos | synthetic | path to a DAVIS-layout root   (published: davis)
    split = "train"          # published: DAVIS-2017 train
    rounds = 5               # published: 5
    method = "worst"         # the protocol that makes the data (only worst, as published)
    setting = "oracle"       # frames chosen by ground-truth quality (only oracle, as published)
    scribbles = [1]          # initial scribble indices per sequence (published: the first only)
    seed = 0
    device = "auto"          # auto | cpu | cuda
    data_dir = "data"
    out_dir = f"{data_dir}/quality_assessment"
    min_nb_nodes = default_min_nb_nodes(vos)   # the robot's, per network as published (VOS.registry)
    sequences = None         # optional list of sequence names (default: the whole split)
    vos_options = {}         # passed to the backend
    progress = True
    workers = 1              # samples in parallel: 1 = this process (no Ray); N = N Ray workers (README, "Scale")
    ray_address = None       # join a running Ray cluster ("auto" or host:port) instead of starting one
    gpus_per_worker = 1.0    # share of a GPU per worker when the device is CUDA


@ex.named_config
def paper():
    """The published data: ATNet on DAVIS-2017 train, oracle-worst, 5 rounds, first scribble, full videos."""
    vos = "atnet"
    dataset = "davis"
    split = "train"
    rounds = 5
    scribbles = [1]


@ex.main
def main(vos, dataset, split, rounds, method, setting, scribbles, seed, device, data_dir, out_dir, min_nb_nodes,
         sequences, vos_options, progress, workers, ray_address, gpus_per_worker):
    import functools

    from core.device import resolve_device
    from datasets.layout import check_files, resolve
    from interaction.factory import build_episode_parts
    from interaction.parallel import Fanout
    from interaction.qa_runs import generate_qa_data
    from VOS.registry import build_backend, canonical

    if method != "worst" or setting != "oracle":
        raise ValueError("the QA data is made with the oracle-worst protocol only (method=worst, setting=oracle)")
    setup_logging()
    spec = resolve(dataset, data_dir)
    seqs = spec.subset(split, sequences)
    if not seqs:
        raise ValueError(f"split '{split}' of {spec.root} has no sequences")
    check_files(spec, seqs)
    dev = resolve_device(device)
    backend = build_backend(canonical(vos), dev, **dict(vos_options))
    build = functools.partial(build_episode_parts, canonical(vos), str(dev), "worst", dict(vos_options))
    index = generate_qa_data(spec, split, backend, out_dir, rounds=rounds, scribbles=[int(s) for s in scribbles],
                             sequences=sequences, min_nb_nodes=min_nb_nodes, seed=seed, progress=progress,
                             fanout=Fanout.from_config(workers, ray_address, gpus_per_worker, dev), build=build)
    usable = int((index["both_empty"].astype(int) == 0).sum()) if len(index) else 0
    print(f"{out_dir}/index.csv: {len(index)} maps ({usable} usable for training) "
          f"from {index['sequence'].nunique() if len(index) else 0} sequences")
    return len(index)


if __name__ == "__main__":
    ex.run_commandline()
